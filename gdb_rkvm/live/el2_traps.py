"""Where EL2 is entered (VBAR_EL2 of each CPU) and left (the ERETs of the EL2 code), for the
breakpoints of live/trap_watch.py. Addresses are physical: EL2 runs with its MMU off."""

import gdb

from gdb_rkvm.arch import disasm
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t


def vbar_el2_by_cpu() -> dict[int, int]:
    """{cpu: VBAR_EL2} for every vCPU whose VBAR_EL2 is set (0 means not set yet)."""
    out = {}
    for cpu, _ in t.cpu_threads():
        v = t.read_register("VBAR_EL2", cpu)
        if v:
            out[cpu] = v
    return out


def eret_addresses(vbar: int, span: int = 0x1000) -> list[int]:
    """PAs of the ERET instructions in the EL2 code around a vector table: the table and what follows
    it in the same page (the rkvm stub and the kernel's hyp-stub both keep their handlers there)."""
    try:
        code = t.read_physical(vbar, span)
    except RkvmError:
        return []
    return [i.address for i in disasm.disassemble(code, vbar) if disasm.is_exception_return(i)]


def current_cpu() -> int:
    return t.cpu_of(gdb.selected_thread())
