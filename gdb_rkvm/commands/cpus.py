from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.live.cpu_state import cpu_summary
from gdb_rkvm.model.vbar_el2 import warnings
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.commands.format import hx, table, with_symbol


@only_when(STOPPED)
class RkvmCpus(RkvmCommand):
    """Every vCPU at a glance: EL, PC, VBAR_EL2 and what it points at, SP_EL2.

Usage: rkvm cpus [--json] [--explain]
Warns when CPUs disagree on VBAR_EL2 or when it points outside RAM.
Example:
  (gdb) rkvm cpus
  CPU  EL    PC                                 VBAR_EL2                          points at          SP_EL2
  0    EL1h  0xffff800080a1c7d4 <cpu_do_idle+4>  0x40a60000 <rkvm_vec_cur_sp0_sync>  the rkvm EL2 stub  0x40a61400"""

    name = "cpus"
    explains = True

    def run(self, args):
        cpus = [n for n, _ in t.cpu_threads()]
        vbars = {}
        for n in cpus:
            try:
                vbars[n] = t.read_register("VBAR_EL2", n)
            except Exception:  # noqa: BLE001  a gdbstub without EL2 registers: shown as '-'
                pass
        marks = kernel_facts.landmarks(list(vbars.values()))
        rows = [cpu_summary(n, marks) for n in cpus]
        return {"cpus": rows, "warnings": warnings(vbars, marks),
                "hyp_stub_pa": marks.hyp_stub_pa, "rkvm_stub_pas": sorted(marks.rkvm_stub_pas)}

    def format(self, r, args):
        rows = [[str(c.cpu), c.mode, with_symbol(c.pc, c.pc_symbol),
                 with_symbol(c.vbar_el2, c.vbar_el2_symbol), c.vbar_el2_points_at or "-", hx(c.sp_el2)]
                for c in r["cpus"]]
        out = table(rows, ["CPU", "EL", "PC", "VBAR_EL2", "points at", "SP_EL2"])
        for w in r["warnings"]:
            out += f"\nwarning: {w}"
        if args.explain:
            out += "\n" + _explain(r)
        return out


def _explain(r) -> str:
    lines = []
    for c in r["cpus"]:
        where = "in the kernel or a module (EL1)" if c.el == 1 else (
            "inside EL2 code: the MMU of EL2 is normally off, so this PC is a physical address" if c.el == 2
            else f"at EL{c.el}")
        lines.append(f"CPU {c.cpu} runs {where}. Its VBAR_EL2 ({hx(c.vbar_el2)}) is {c.vbar_el2_points_at}: "
                     f"an HVC from EL1 on this CPU enters EL2 at VBAR_EL2 + 0x400.")
        if c.sp_el2 is not None:
            lines.append(f"  SP_EL2 = {hx(c.sp_el2)} is the stack EL2 code would push on; nothing resets it "
                         "after boot, so a stub that uses a stack must set it on each CPU.")
    return "\n".join(lines)
