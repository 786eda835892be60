"""The stub's HVC ABI and page layout, read from stub/rkvm_abi.h (the one place they are defined)."""

import re
from dataclasses import dataclass
from functools import cache

from gdb_rkvm.arch.stage2_fault import fault_ipa
from gdb_rkvm.paths import REPO

ABI_HEADER = REPO / "stub" / "rkvm_abi.h"
_DEFINE = re.compile(r"^#define\s+([A-Z][A-Z0-9_]*)\s+([^/\n]+?)\s*(?:/\*.*)?$", re.MULTILINE)
_IDENT = re.compile(r"[A-Z_][A-Z0-9_]*")


@cache
def constants() -> dict[str, int]:
    """Every numeric #define in rkvm_abi.h, by name (earlier names may be used in later ones)."""
    out: dict[str, int] = {}
    for name, expr in _DEFINE.findall(ABI_HEADER.read_text()):
        expr = _IDENT.sub(lambda m: str(out.get(m.group(0), m.group(0))), expr)
        if re.fullmatch(r"[0-9a-fx<>\s()+*-]+", expr):
            out[name] = int(eval(expr, {"__builtins__": {}}))  # digits and operators only
    return out


def value(name: str) -> int:
    return constants()[name]


def sysreg_selectors() -> dict[str, int]:
    """RKVM_HVC_READ_SYSREG selectors: {'VBAR_EL2': 0, ...}."""
    return {k[len("RKVM_SYSREG_"):]: v for k, v in constants().items()
            if k.startswith("RKVM_SYSREG_") and k != "RKVM_SYSREG_NR"}


def hvc_calls() -> dict[str, int]:
    """rkvm's own HVC function IDs by name ('PING': 0x524b0001, ...)."""
    return {k[len("RKVM_HVC_"):]: v for k, v in constants().items()
            if k.startswith("RKVM_HVC_") and k not in ("RKVM_HVC_IMM", "RKVM_HVC_BASE", "RKVM_HVC_NR")}


def debug_events() -> dict[str, int]:
    """rkvm.ko's debugger-hook events by name ('installed-cpu': 1, ...), from RKVM_EV_* in the header."""
    return {k[len("RKVM_EV_"):].lower().replace("_", "-"): v for k, v in constants().items()
            if k.startswith("RKVM_EV_")}


EVENTS = debug_events()
EVENT_NAMES = {v: k for k, v in EVENTS.items()}


@dataclass(frozen=True)
class DebugEvent:
    """One call of rkvm_debug_event(event, cpu, stub_pa, arg), as the hook's x0..x3 carry it."""

    event: str          # 'installed-cpu', ... or the number when unknown
    cpu: int
    stub_pa: int
    arg: int

    @classmethod
    def from_registers(cls, x0: int, x1: int, x2: int, x3: int) -> "DebugEvent":
        number = x0 & 0xFFFFFFFF   # u32 event, u32 cpu: the upper halves are not defined by the ABI
        return cls(EVENT_NAMES.get(number, str(number)), x1 & 0xFFFFFFFF, x2, x3)

    def to_dict(self) -> dict:
        return {"event": self.event, "cpu": self.cpu, "stub_pa": self.stub_pa, "arg": self.arg}


def cpu_records(page: bytes, cpus: list[int]) -> dict:
    """Per-CPU slots of a stub page (its bytes): HVC and ping counts, the SP_EL2 the stub set, the
    fault record. A CPU at or past RKVM_MAX_CPUS has no slot (the page holds that many): None, never
    a read of the next field or past the page."""
    c = constants()

    def u64(off):
        return int.from_bytes(page[off:off + 8], "little")

    out = {}
    for cpu in cpus:
        if not 0 <= cpu < c["RKVM_MAX_CPUS"] or len(page) < c["RKVM_OFF_CODE"]:
            out[cpu] = None
            continue
        f = c["RKVM_OFF_FAULT"] + cpu * c["RKVM_FAULT_SIZE"]
        out[cpu] = {
            "hvc_count": u64(c["RKVM_OFF_HVC_COUNT"] + 8 * cpu), "ping_count": u64(c["RKVM_OFF_PING_COUNT"] + 8 * cpu),
            "stack_top": u64(c["RKVM_OFF_STACK_TOP"] + 8 * cpu),
            "fault": None if not u64(f + c["RKVM_FAULT_COUNT"]) else {
                "count": u64(f + c["RKVM_FAULT_COUNT"]), "esr": u64(f + c["RKVM_FAULT_ESR"]),
                "elr": u64(f + c["RKVM_FAULT_ELR"]), "far": u64(f + c["RKVM_FAULT_FAR"]),
                "spsr": u64(f + c["RKVM_FAULT_SPSR"]), "vector": u64(f + c["RKVM_FAULT_VECTOR"]),
                "x0": u64(f + c["RKVM_FAULT_X0"]), "mpidr": u64(f + c["RKVM_FAULT_MPIDR"])},
        }
    return out


# ---- the guest world: RKVM_HVC_VCPU_RUN's vCPU, the per-CPU host save area, exit reasons ----

def _u64(data: bytes, off: int) -> int:
    return int.from_bytes(data[off:off + 8], "little")


def el1_fields() -> dict[str, int]:
    """An EL1 context's registers by architectural name ('SCTLR_EL1': 0, ..., 'TPIDR_EL0': 0x90)."""
    out = {}
    for k, v in constants().items():
        if k.startswith("RKVM_EL1_") and k != "RKVM_EL1_SIZE":
            name = k[len("RKVM_EL1_"):]
            out[name if name.endswith("_EL0") else name + "_EL1"] = v
    return out


def exit_reasons() -> dict[int, str]:
    """RKVM_EXIT_* by number: {1: 'sync', 2: 'irq', ...}."""
    return {v: k[len("RKVM_EXIT_"):].lower() for k, v in constants().items() if k.startswith("RKVM_EXIT_")}


def _el1_context(data: bytes, base: int) -> dict[str, int]:
    return {name: _u64(data, base + off) for name, off in el1_fields().items()}


@dataclass(frozen=True)
class ExitRecord:
    """The last exit a vCPU took, as the stub saved it."""

    reason: str          # 'sync', 'irq', ... or the number when unknown
    esr: int             # ESR_EL2
    far: int             # FAR_EL2
    hpfar: int           # HPFAR_EL2
    count: int

    @property
    def ipa(self) -> int:
        """The faulting IPA of a stage-2 abort: HPFAR_EL2.FIPA gives the page, FAR_EL2 the offset in it."""
        return fault_ipa(self.far, self.hpfar)


@dataclass(frozen=True)
class VcpuState:
    """A vCPU structure (RKVM_VCPU_*), read from its bytes."""

    x: tuple[int, ...]   # x0..x30
    sp_el0: int
    sp_el1: int
    pc: int
    pstate: int
    hcr_el2: int
    vttbr_el2: int
    vtcr_el2: int
    exit: ExitRecord
    el1: dict

    @property
    def vmid(self) -> int:
        return (self.vttbr_el2 >> 48) & 0xFF


def vcpu_state(data: bytes) -> VcpuState | None:
    """Decode a vCPU's bytes; None when fewer than RKVM_VCPU_SIZE bytes were readable."""
    c = constants()
    if len(data) < c["RKVM_VCPU_SIZE"]:
        return None
    reason = _u64(data, c["RKVM_VCPU_EXIT_REASON"])
    return VcpuState(
        x=tuple(_u64(data, c["RKVM_VCPU_X0"] + 8 * n) for n in range(31)),
        sp_el0=_u64(data, c["RKVM_VCPU_SP_EL0"]), sp_el1=_u64(data, c["RKVM_VCPU_SP_EL1"]),
        pc=_u64(data, c["RKVM_VCPU_PC"]), pstate=_u64(data, c["RKVM_VCPU_PSTATE"]),
        hcr_el2=_u64(data, c["RKVM_VCPU_HCR_EL2"]), vttbr_el2=_u64(data, c["RKVM_VCPU_VTTBR_EL2"]),
        vtcr_el2=_u64(data, c["RKVM_VCPU_VTCR_EL2"]),
        exit=ExitRecord(exit_reasons().get(reason, str(reason)), _u64(data, c["RKVM_VCPU_EXIT_ESR"]),
                        _u64(data, c["RKVM_VCPU_EXIT_FAR"]), _u64(data, c["RKVM_VCPU_EXIT_HPFAR"]),
                        _u64(data, c["RKVM_VCPU_EXIT_COUNT"])),
        el1=_el1_context(data, c["RKVM_VCPU_EL1"]))


@dataclass(frozen=True)
class HostSave:
    """One CPU's host save area in the stub (RKVM_HOST_*): while in_guest, the host's EL1 state is here."""

    in_guest: bool
    vcpu_pa: int
    elr_el2: int
    spsr_el2: int
    hcr_el2: int
    sp_el0: int
    sp_el1: int
    runs: int
    x18_x30: tuple[int, ...]
    el1: dict


def host_save(stub: bytes, cpu: int) -> HostSave | None:
    """The host save area of `cpu` in the stub's bytes; None for a CPU without a slot or a short read."""
    c = constants()
    base = c["RKVM_OFF_HOST"] + cpu * c["RKVM_HOST_SIZE"]
    if not 0 <= cpu < c["RKVM_MAX_CPUS"] or len(stub) < base + c["RKVM_HOST_SIZE"]:
        return None
    return HostSave(
        in_guest=_u64(stub, base + c["RKVM_HOST_IN_GUEST"]) != 0, vcpu_pa=_u64(stub, base + c["RKVM_HOST_VCPU"]),
        elr_el2=_u64(stub, base + c["RKVM_HOST_ELR_EL2"]), spsr_el2=_u64(stub, base + c["RKVM_HOST_SPSR_EL2"]),
        hcr_el2=_u64(stub, base + c["RKVM_HOST_HCR_EL2"]), sp_el0=_u64(stub, base + c["RKVM_HOST_SP_EL0"]),
        sp_el1=_u64(stub, base + c["RKVM_HOST_SP_EL1"]), runs=_u64(stub, base + c["RKVM_HOST_RUNS"]),
        x18_x30=tuple(_u64(stub, base + c["RKVM_HOST_X18"] + 8 * n) for n in range(13)),
        el1=_el1_context(stub, base + c["RKVM_HOST_EL1"]))
