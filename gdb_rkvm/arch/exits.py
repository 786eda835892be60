"""Guest exits: why a guest running at EL1 under stage 2 came back to EL2, as one reason a command can
filter on (`rkvm exit catch --reason R`) and one line a person reads.

A synchronous exit's reason comes from ESR_EL2.EC (the classes are arch/esr.py's); IRQ, FIQ and
SError exits are told by the vector slot they enter (an IRQ or FIQ writes no syndrome).
"""

from dataclasses import dataclass
from enum import Enum

from . import esr as esr_mod
from .fields import MASK64, bits
from .sysregs import encoding_name


class ExitReason(str, Enum):
    HVC = "hvc"
    SMC = "smc"
    DABT = "dabt"
    IABT = "iabt"
    WFX = "wfx"
    SYSREG = "sysreg"
    FPSIMD = "fpsimd"
    IRQ = "irq"
    FIQ = "fiq"
    SERROR = "serror"
    DEBUG = "debug"
    OTHER = "other"


REASON_NAMES = [r.value for r in ExitReason]   # what --reason accepts

_BY_EC = {
    0x12: ExitReason.HVC, 0x16: ExitReason.HVC,
    0x13: ExitReason.SMC, 0x17: ExitReason.SMC,
    0x24: ExitReason.DABT, 0x20: ExitReason.IABT,
    0x01: ExitReason.WFX,
    0x18: ExitReason.SYSREG, 0x03: ExitReason.SYSREG, 0x04: ExitReason.SYSREG, 0x05: ExitReason.SYSREG,
    0x06: ExitReason.SYSREG, 0x08: ExitReason.SYSREG, 0x0C: ExitReason.SYSREG,
    0x07: ExitReason.FPSIMD, 0x19: ExitReason.FPSIMD, 0x1D: ExitReason.FPSIMD, 0x28: ExitReason.FPSIMD,
    0x2C: ExitReason.FPSIMD,
    0x2F: ExitReason.SERROR,
    0x30: ExitReason.DEBUG, 0x31: ExitReason.DEBUG, 0x32: ExitReason.DEBUG, 0x33: ExitReason.DEBUG,
    0x34: ExitReason.DEBUG, 0x35: ExitReason.DEBUG, 0x38: ExitReason.DEBUG, 0x3A: ExitReason.DEBUG,
    0x3C: ExitReason.DEBUG,
}

# where the guest resumes if the VMM just ERETs: ELR_EL2 is after the instruction for HVC and SVC, at it
# for the traps below (a VMM that emulates them adds 4 to ELR_EL2)
_ELR_AT_INSTRUCTION = {0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0C, 0x13, 0x17, 0x18, 0x19, 0x1D, 0x20, 0x24}


def reason_for_ec(ec: int) -> ExitReason:
    """The one reason a synchronous exit with ESR_EL2.EC = `ec` has. The current-EL aborts (EC 0x21,
    0x25) are EL2's own faults, not guest exits: OTHER."""
    return _BY_EC.get(ec & 0x3F, ExitReason.OTHER)


@dataclass(frozen=True)
class GuestExit:
    reason: ExitReason
    esr: int | None
    ec: int | None
    ec_name: str
    detail: str                 # "WFI", "MSR SCTLR_EL1, x0", "HVC #0x0", "Data Abort ..."
    wfx: str | None = None      # WFI | WFE | WFIT | WFET (ISS.TI)
    sysreg: str | None = None   # the trapped register's name
    sysreg_write: bool | None = None
    imm16: int | None = None    # HVC/SMC/BRK immediate
    elr_at_instruction: bool = False   # ELR_EL2 points at the trapping instruction (emulate, then skip it)

    def line(self) -> str:
        """One line: reason, EC and what happened."""
        ec = f"EC {self.ec:#04x} {self.ec_name}: " if self.ec is not None else ""
        return f"{self.reason.value:7} {ec}{self.detail}"

    def to_dict(self) -> dict:
        return {**self.__dict__, "reason": self.reason.value, "text": self.line()}


def classify(esr: int | None, kind: str = "sync") -> GuestExit:
    """A guest exit from ESR_EL2 and the vector kind it entered: 'sync', 'irq', 'fiq' or 'serror'
    (Lower EL, AArch64: VBAR_EL2 + 0x400, 0x480, 0x500, 0x580). IRQ/FIQ exits ignore `esr`."""
    if kind == "irq":
        return GuestExit(ExitReason.IRQ, None, None, "IRQ", "physical IRQ while the guest ran (HCR_EL2.IMO)")
    if kind == "fiq":
        return GuestExit(ExitReason.FIQ, None, None, "FIQ", "physical FIQ while the guest ran (HCR_EL2.FMO)")
    esr = (esr or 0) & MASK64
    ec, iss = esr_mod.exception_class(esr), bits(esr, 24, 0)
    decoded = esr_mod.decode(esr, "ESR_EL2")
    detail = decoded.summary.split(": ", 1)[-1]
    reason = ExitReason.SERROR if kind == "serror" else reason_for_ec(ec)
    extra: dict = {}
    if reason is ExitReason.WFX:
        extra["wfx"] = ("WFI", "WFE", "WFIT", "WFET")[bits(iss, 1, 0)]
    elif ec == esr_mod.EC_SYS64:
        extra["sysreg"] = encoding_name(*esr_mod.sys64_encoding(iss))
        extra["sysreg_write"] = not bits(iss, 0, 0)
    elif ec in (0x12, 0x13, 0x16, 0x17, 0x3C):
        extra["imm16"] = bits(iss, 15, 0)
    return GuestExit(reason, esr, ec, esr_mod.ec_name(ec), detail, elr_at_instruction=ec in _ELR_AT_INSTRUCTION,
                     **extra)


def parse_reason(text: str) -> ExitReason:
    """A --reason argument as an ExitReason (ValueError naming the accepted ones)."""
    try:
        return ExitReason(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown exit reason {text!r}: one of {', '.join(REASON_NAMES)}") from None


def in_guest_by_address(el: int | None, va: int | None) -> bool:
    """Whether EL1 code at `va` is the lab's guest rather than the host kernel, for a record that
    carries no HCR_EL2 (QEMU's exception log). The host kernel runs its EL1 code in the upper VA
    range (TTBR1_EL1, bit 55 set) once its MMU is on; the guest runs in the lower range (its image
    at IPA 0x80000000, its own stage 1 in TTBR0_EL1). A heuristic by design: host code that runs
    with its MMU off (early boot, soft restart) also has bit 55 clear, and a guest's EL0 is not told
    from the host's."""
    return el == 1 and va is not None and not (va >> 55) & 1
