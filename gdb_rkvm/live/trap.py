"""One trap into EL2 as a typed record, and the filter that picks traps; pure (no `import gdb`) so
that both are unit-tested on register values. `live/trap_watch.py` reads those values from GDB.

A trap is seen at one of three places: an EL2 vector slot (ENTRY: the exception is being taken),
an SMC instruction of the kernel before it runs (SMC_SITE), or an ERET of the EL2 code (RETURN).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from gdb_rkvm.arch import esr, exits, pstate, regfields, smccc, stage2_fault, vectors
from gdb_rkvm.arch.fields import MASK64
from gdb_rkvm.model import stub_abi

ENTRY, SMC_SITE, RETURN = "entry", "smc-site", "return"

# The kernel's hyp-stub HVC calls (arch/arm64/include/asm/virt.h), x0 = the call.
KERNEL_HYP_STUB_CALLS = {0: "HVC_SET_VECTORS", 1: "HVC_SOFT_RESTART", 2: "HVC_RESET_VECTORS", 3: "HVC_FINALISE_EL2"}

# ESR_EL2.EC values a plain `hvc catch` wants (an SMC trapped by HCR_EL2.TSC arrives as SMC64).
HVC_OR_SMC = frozenset({esr.EC_HVC64, esr.EC_SMC64})


def function_name(x0: int) -> str:
    """A name for the function ID in x0: the kernel's hyp-stub calls, rkvm's own, SMCCC fast calls."""
    if x0 in KERNEL_HYP_STUB_CALLS:
        return KERNEL_HYP_STUB_CALLS[x0]
    for name, value in stub_abi.hvc_calls().items():
        if value == x0:
            return f"RKVM_HVC_{name}"
    fid = smccc.decode_function_id(x0)
    return fid.label if fid is not None else ""


@dataclass(frozen=True)
class Trap:
    """What a CPU stopped on the way into (or out of) EL2 knows about that trap."""

    cpu: int
    kind: str                       # ENTRY, SMC_SITE or RETURN
    pc: int                         # the vector slot, the SMC instruction or the ERET (EL2: a PA)
    pstate: int                     # SPSR_EL2 (ENTRY, RETURN); the CPU's own PSTATE at an SMC_SITE
    esr: int | None = None          # ESR_EL2 (ENTRY)
    elr: int | None = None          # ELR_EL2 (ENTRY, RETURN)
    vbar: int | None = None         # VBAR_EL2 of the table entered (ENTRY)
    registers: tuple[int, ...] = () # x0, x1, ... as far as they were read
    smc_imm: int | None = None      # the SMC instruction's imm16 (SMC_SITE)
    smc_goes_to: str | None = None  # "EL3" or "EL2 (HCR_EL2.TSC traps it)" (SMC_SITE)
    ret: int | None = None          # x0 at the ERET that ended this trap, when seen
    caller_symbol: str | None = None
    handler_symbol: str | None = None  # the EL2 name of pc
    elr_symbol: str | None = None
    guest: bool | None = None       # HCR_EL2.VM: at an ENTRY a guest exit, at a RETURN an ERET into the
                                    # guest (None: not read)
    far: int | None = None          # FAR_EL2 / HPFAR_EL2 of a guest's abort, read after the filter
    hpfar: int | None = None

    @property
    def stale_esr(self) -> bool:
        """An IRQ or FIQ entry: the CPU writes no ESR_EL2 for it, what it holds is an older exception's."""
        return self.kind == ENTRY and self.vector_kind in ("irq", "fiq")

    @property
    def ec(self) -> int | None:
        if self.kind == SMC_SITE:
            return esr.EC_SMC64
        return None if self.esr is None or self.stale_esr else esr.exception_class(self.esr)

    @property
    def is_hvc(self) -> bool:
        return self.ec == esr.EC_HVC64

    @property
    def is_smc(self) -> bool:
        return self.ec == esr.EC_SMC64

    @property
    def imm16(self) -> int | None:
        """HVC #imm16 from ESR_EL2.ISS[15:0]; the SMC instruction's own immediate at an SMC site."""
        if self.kind == SMC_SITE:
            return self.smc_imm
        return None if self.esr is None or self.stale_esr else esr.hvc_immediate(self.esr)

    @property
    def esr_summary(self) -> str:
        if self.kind == SMC_SITE:
            return f"SMC #{self.smc_imm:#x}"
        if self.stale_esr:
            return f"{self.vector_kind.upper()} (no syndrome: ESR_EL2 is not written for it)"
        return "" if self.esr is None else esr.decode(self.esr).summary

    @property
    def slot_offset(self) -> int | None:
        return None if self.vbar is None else self.pc - self.vbar

    @property
    def slot(self) -> str:
        return "" if self.slot_offset is None else vectors.slot_name(self.slot_offset)

    @property
    def from_mode(self) -> str:
        return pstate.mode_name(self.pstate)

    @property
    def from_el(self) -> int | None:
        if self.kind == SMC_SITE:
            return pstate.current_el_from_cpsr(self.pstate)
        return pstate.exception_level(self.pstate)

    @property
    def caller(self) -> int | None:
        """The trapping instruction: ELR_EL2 is the one after an HVC (its preferred return address)."""
        if self.kind == SMC_SITE:
            return self.pc
        if self.elr is None:
            return None
        return (self.elr - 4) & MASK64 if self.is_hvc else self.elr

    @property
    def vector_kind(self) -> str:
        """'sync', 'irq', 'fiq' or 'serror' from the slot entered (an IRQ/FIQ leaves ESR_EL2 stale)."""
        off = self.slot_offset
        return "sync" if off is None else ("sync", "irq", "fiq", "serror")[(off // vectors.SLOT_SIZE) % 4]

    @property
    def exit(self) -> exits.GuestExit | None:
        """Why the guest came back to EL2, for an entry taken while HCR_EL2.VM = 1; None otherwise."""
        if self.kind != ENTRY or not self.guest:
            return None
        return exits.classify(self.esr, self.vector_kind)

    @property
    def ipa(self) -> int | None:
        """A guest abort's IPA: HPFAR_EL2.FIPA the page, FAR_EL2[11:0] the offset."""
        if self.hpfar is None or self.far is None:
            return None
        return stage2_fault.fault_ipa(self.far, self.hpfar)

    def x(self, n: int) -> int | None:
        return self.registers[n] if n < len(self.registers) else None

    @property
    def function(self) -> str:
        return function_name(self.registers[0]) if self.registers else ""

    @property
    def call(self) -> str:
        """'PSCI CPU_ON(target_cpu=...)' when x0 is an SMCCC function ID and x1..x3 were read, else ''."""
        if len(self.registers) < 4:
            return ""
        decoded = smccc.decode_call(*self.registers[:4])
        return decoded.summary if decoded is not None else ""

    def to_dict(self) -> dict:
        """The JSON shape `rkvm hvc last --json` and step-el2's "entry" have always had."""
        out = {
            "cpu": self.cpu, "pc": self.pc, "slot": self.slot, "slot_offset": self.slot_offset,
            "esr": self.esr, "esr_summary": self.esr_summary, "ec": self.ec, "is_hvc": self.is_hvc,
            "imm16": self.imm16, "elr": self.elr, "spsr": None if self.kind == SMC_SITE else self.pstate,
            "from_mode": self.from_mode, "from_el": self.from_el, "caller": self.caller,
            "caller_symbol": self.caller_symbol, "registers": {f"x{n}": v for n, v in enumerate(self.registers)},
            "function": self.function, "handler_symbol": self.handler_symbol, "is_smc": self.is_smc,
            "call": self.call,
        }
        if self.kind == SMC_SITE:
            out["goes_to"] = self.smc_goes_to
        if self.guest is not None:
            ex = self.exit
            out.update(guest=self.guest, exit=ex.to_dict() if ex else None, far=self.far, hpfar=self.hpfar,
                       ipa=self.ipa if ex and ex.reason in (exits.ExitReason.DABT, exits.ExitReason.IABT) else None)
        return out

    def to_json(self) -> dict:
        """--json (model/records.to_json) prints the published dict, not the raw fields."""
        return self.to_dict()


Symbolizer = Callable[[int], "str | None"]


def _regs(values: Mapping[str, int], count: int) -> tuple[int, ...]:
    return tuple(values[f"x{n}"] for n in range(count) if f"x{n}" in values)


def entry(cpu: int, pc: int, vbar: int, values: Mapping[str, int], symbol: Symbolizer | None = None,
          el2_symbol: Symbolizer | None = None) -> Trap:
    """A trap at VBAR_EL2 + slot, from ESR_EL2/ELR_EL2/SPSR_EL2 and x0.. in `values`; names looked up
    only when a symbolizer is given (the hot path of a trace leaves them out)."""
    hcr = values.get("HCR_EL2")
    tr = Trap(cpu=cpu, kind=ENTRY, pc=pc, pstate=values["SPSR_EL2"], esr=values["ESR_EL2"],
              elr=values["ELR_EL2"], vbar=vbar, registers=_regs(values, 8),
              guest=None if hcr is None else regfields.stage2_enabled(hcr),
              far=values.get("FAR_EL2"), hpfar=values.get("HPFAR_EL2"))
    return named(tr, symbol, el2_symbol)


def named(tr: Trap, symbol: Symbolizer | None, el2_symbol: Symbolizer | None) -> Trap:
    """The same trap with its caller, ELR and handler named. A guest's addresses are the guest's own
    VAs: the host's symbols do not name them."""
    if tr.guest:
        symbol = None
    return replace(tr, caller_symbol=symbol(tr.caller) if symbol and tr.caller is not None else tr.caller_symbol,
                   elr_symbol=symbol(tr.elr) if symbol and tr.elr is not None else tr.elr_symbol,
                   handler_symbol=el2_symbol(tr.pc) if el2_symbol and tr.kind != SMC_SITE else tr.handler_symbol)


def smc_site(cpu: int, pc: int, imm: int, values: Mapping[str, int], hcr_el2: int | None,
             symbol: Symbolizer | None = None) -> Trap:
    """A CPU on an SMC instruction that has not run yet: x0..x7 and its own PSTATE (cpsr) in `values`;
    HCR_EL2 (None when unreadable) says whether EL2 traps it (HCR_EL2.TSC) or it goes to EL3."""
    cpsr = values["cpsr"]
    tsc = hcr_el2 is not None and regfields.smc_traps_to_el2(hcr_el2)
    goes_to = "EL2 (HCR_EL2.TSC traps it)" if tsc and pstate.current_el_from_cpsr(cpsr) == 1 else "EL3"
    tr = Trap(cpu=cpu, kind=SMC_SITE, pc=pc, pstate=cpsr, registers=_regs(values, 8), smc_imm=imm,
              smc_goes_to=goes_to)
    return named(tr, symbol, None)


def eret(cpu: int, pc: int, values: Mapping[str, int], symbol: Symbolizer | None = None,
         el2_symbol: Symbolizer | None = None) -> Trap:
    """A CPU on an ERET of the EL2 code: SPSR_EL2 (the mode it returns to), ELR_EL2 and x0 in `values`."""
    hcr = values.get("HCR_EL2")  # at an ERET, HCR_EL2.VM says which world it returns to
    tr = Trap(cpu=cpu, kind=RETURN, pc=pc, pstate=values["SPSR_EL2"], elr=values["ELR_EL2"],
              registers=_regs(values, 1), ret=values.get("x0"),
              guest=None if hcr is None else regfields.stage2_enabled(hcr))
    return named(tr, symbol, el2_symbol)


@dataclass(frozen=True)
class TrapFilter:
    """Which traps a watch hands on. `classes` is a set of ESR_EL2.EC values (None: any class);
    `guest` picks guest exits (HCR_EL2.VM = 1 at the entry) or the host's own traps, and `reasons`
    guest exits by arch/exits reason, so a guest-exit catch (`--reason dabt`) is
    `TrapFilter(classes=None, guest=True, reasons=frozenset({"dabt"}))`: a host's HVC never matches it."""

    imm: int | None = None
    cpu: int | None = None
    from_el: int | None = None
    function_id: int | None = None
    classes: frozenset[int] | None = HVC_OR_SMC
    guest: bool | None = None       # True: guest exits only (HCR_EL2.VM = 1); False: the host's traps only
    reasons: frozenset[str] | None = None   # arch/exits.ExitReason values (guest exits only)

    def matches(self, tr: Trap) -> bool:
        if self.guest is not None and bool(tr.guest) != self.guest:
            return False
        if self.reasons is not None and (tr.exit is None or tr.exit.reason.value not in self.reasons):
            return False
        if self.classes is not None and tr.ec not in self.classes:
            return False
        if self.imm is not None and tr.imm16 != self.imm:
            return False
        if self.cpu is not None and tr.cpu != self.cpu:
            return False
        if self.function_id is not None and tr.x(0) != self.function_id:
            return False
        return self.from_el is None or tr.from_el == self.from_el

    def describe(self) -> str:
        parts = [f"imm16 == {self.imm:#x}" if self.imm is not None else "",
                 f"CPU {self.cpu}" if self.cpu is not None else "",
                 f"from EL{self.from_el}" if self.from_el is not None else "",
                 f"x0 == {self.function_id:#x}" if self.function_id is not None else "",
                 f"exit reason {' or '.join(sorted(self.reasons))}" if self.reasons is not None else "",
                 {True: "guest exits", False: "from the host"}.get(self.guest, "") if self.reasons is None else ""]
        return ", ".join(p for p in parts if p) or "every HVC"


ANY_TRAP = TrapFilter(classes=None)
HVC_OR_SMC_FILTER = TrapFilter()
