"""The stub's HVC ABI and page layout, read from stub/rkvm_abi.h (the one place they are defined)."""

import re
from dataclasses import dataclass
from functools import cache

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
