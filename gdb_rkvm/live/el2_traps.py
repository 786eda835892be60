"""Where EL2 is entered (VBAR_EL2 of each CPU) and left (the ERETs of the EL2 code), for the
breakpoints of live/trap_watch.py. Addresses are physical: EL2 runs with its MMU off."""

import gdb

from gdb_rkvm.arch import disasm
from gdb_rkvm.arch.vectors import TABLE_SIZE
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.model import stub_abi

OTHER_SPAN = 0x1000   # a vector table that is not the rkvm stub: it and what follows it in its page


def vbar_el2_by_cpu() -> dict[int, int]:
    """{cpu: VBAR_EL2} for every vCPU whose VBAR_EL2 is set (0 means not set yet)."""
    out = {}
    for cpu, _ in t.cpu_threads():
        v = t.read_register("VBAR_EL2", cpu)
        if v:
            out[cpu] = v
    return out


def code_ranges(vbar: int) -> list[tuple[int, int]]:
    """(PA, size) of the EL2 code around a vector table. The rkvm stub: its vectors and its code
    (RKVM_OFF_CODE up to the host save areas at RKVM_OFF_HOST: the world switch's ERETs are past the
    first page); any other table (the kernel's hyp-stub): the table and the rest of its page."""
    if kernel_facts.is_rkvm_stub(vbar):
        code, host = stub_abi.value("RKVM_OFF_CODE"), stub_abi.value("RKVM_OFF_HOST")
        return [(vbar, TABLE_SIZE), (vbar + code, host - code)]
    return [(vbar, OTHER_SPAN)]


def el2_code(vbar: int) -> list[disasm.Insn]:
    """The instructions of code_ranges(vbar) that could be read."""
    out = []
    for pa, size in code_ranges(vbar):
        try:
            out += disasm.disassemble(t.read_physical(pa, size), pa)
        except RkvmError:
            continue
    return out


def eret_addresses(vbar: int) -> list[int]:
    """PAs of the ERET instructions in the EL2 code around a vector table (code_ranges)."""
    return [i.address for i in el2_code(vbar) if disasm.is_exception_return(i)]


def current_cpu() -> int:
    return t.cpu_of(gdb.selected_thread())
