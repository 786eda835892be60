from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.live import world
from gdb_rkvm.live.cpu_state import cpu_summary
from gdb_rkvm.model.vbar_el2 import warnings
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.commands.format import clobber_warning, hx, table, with_symbol, world_cell


@only_when(STOPPED)
class RkvmCpus(RkvmCommand):
    """Every vCPU at a glance: world, EL, PC, VBAR_EL2 and what it points at, SP_EL2.

Usage: rkvm cpus [--json] [--explain]
The world is 'host' or 'guest VMID n' (HCR_EL2.VM set: EL1 runs the guest under stage 2).
Warns when CPUs disagree on VBAR_EL2, when it points outside RAM, and when the host runs on EL1
registers that are not the ones the stub saved for it.
Example:
  (gdb) rkvm cpus
  CPU  world         EL    PC                                 VBAR_EL2    points at          SP_EL2
  0    host          EL1h  0xffff800080a1c7d4 <cpu_do_idle+4>  0x40a60000  the rkvm EL2 stub  0x40a61400
  1    guest VMID 1  EL1h  0x80000010                         0x40a60000  the rkvm EL2 stub  0x40a61400"""

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
        worlds = {}
        for n in cpus:
            try:
                worlds[str(n)] = world.cpu_world(n)
            except Exception:  # noqa: BLE001  no HCR_EL2 over this gdbstub: the world is unknown ('-')
                worlds[str(n)] = None
        warn = warnings(vbars, marks) + [f"CPU {n}: {w}" for n, w in
                                         ((n, clobber_warning(x)) for n, x in worlds.items() if x) if w]
        return {"cpus": rows, "worlds": worlds, "warnings": warn,
                "hyp_stub_pa": marks.hyp_stub_pa, "rkvm_stub_pas": sorted(marks.rkvm_stub_pas)}

    def format(self, r, args):
        worlds = r.get("worlds", {})
        rows = [[str(c.cpu), world_cell(worlds.get(str(c.cpu))), c.mode, with_symbol(c.pc, c.pc_symbol),
                 with_symbol(c.vbar_el2, c.vbar_el2_symbol), c.vbar_el2_points_at or "-", hx(c.sp_el2)]
                for c in r["cpus"]]
        header = ["CPU", "world", "EL", "PC", "VBAR_EL2", "points at", "SP_EL2"]
        if not any(worlds.values()):   # a gdbstub without HCR_EL2: no world column rather than a column of '-'
            rows, header = [row[:1] + row[2:] for row in rows], header[:1] + header[2:]
        out = table(rows, header)
        for w in r["warnings"]:
            out += f"\nwarning: {w}"
        if args.explain:
            out += "\n" + _explain(r)
        return out


def _explain(r) -> str:
    lines = []
    worlds = r.get("worlds", {})
    for c in r["cpus"]:
        w = worlds.get(str(c.cpu))
        if w is not None and w.in_guest:
            lines.append(f"CPU {c.cpu} runs the guest: HCR_EL2.VM = 1, so its EL1 and EL0 addresses are IPAs "
                         f"translated again by stage 2 (VTTBR_EL2 {w.vttbr_el2:#x}, VMID {w.vmid}); its EL1 "
                         "registers are the guest's, the host's wait in the stub's host save area.")
            continue
        where = "in the kernel or a module (EL1)" if c.el == 1 else (
            "inside EL2 code: the MMU of EL2 is normally off, so this PC is a physical address" if c.el == 2
            else f"at EL{c.el}")
        lines.append(f"CPU {c.cpu} runs {where}. Its VBAR_EL2 ({hx(c.vbar_el2)}) is {c.vbar_el2_points_at}: "
                     f"an HVC from EL1 on this CPU enters EL2 at VBAR_EL2 + 0x400.")
        if c.sp_el2 is not None:
            lines.append(f"  SP_EL2 = {hx(c.sp_el2)} is the stack EL2 code would push on; nothing resets it "
                         "after boot, so a stub that uses a stack must set it on each CPU.")
    return "\n".join(lines)
