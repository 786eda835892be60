from gdb_rkvm.arch import regfields
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts
from gdb_rkvm.live.cpu_state import el_picture
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.commands.format import hx


@only_when(STOPPED)
class RkvmEl(RkvmCommand):
    """The exception-level picture of one CPU: stacks, return state, syndromes, vectors, EL2 controls.

Usage: rkvm el [--cpu N] [--json] [--explain]
Shows SP_EL0/SP_EL1/SP_EL2, ELR_EL1/EL2 (with symbols), SPSR_EL1/EL2 and ESR_EL1/EL2 decoded,
FAR_EL1/EL2, HPFAR_EL2, VBAR_EL1/EL2, the HCR_EL2 flags that are set, and SCTLR_EL2.M.
Example:
  (gdb) rkvm el --cpu 1
  CPU 1: EL1h, PC 0xffff8000802688f8 <cpu_do_idle+8>
  ESR_EL2   0x5a00004b  EC 0x16 HVC64: HVC #0x4b"""

    name = "el"
    explains = True

    def add_arguments(self, p):
        self.add_cpu_argument(p)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        vbar = t.read_register("VBAR_EL2", cpu)
        return el_picture(cpu, kernel_facts.landmarks([vbar]))

    def format(self, r, args):
        pc_sym = f" <{r.pc_symbol}>" if r.pc_symbol else ""
        lines = [f"CPU {r.cpu}: {r.mode}, PC {r.pc:#x}{pc_sym}"]
        for name, e in r.registers.items():
            v = e.value
            extra = e.summary or (f"<{e.symbol}>" if e.symbol else "")
            if name == "VBAR_EL2" and r.vbar_el2_points_at:
                extra = (extra + "  " if extra else "") + r.vbar_el2_points_at
            if name == "HCR_EL2":
                extra = f"set: {r.hcr_el2_set}"
            if name == "SCTLR_EL2" and v is not None:
                m = regfields.mmu_enabled(v)
                extra = f"M={int(m)}: EL2 MMU {'on' if m else 'off (EL2 addresses are physical)'}"
            lines.append(f"{name:<10}{hx(v):<20}{extra}")
            if args.explain and e.explain:
                lines += [f"            {x}" for x in e.explain]
        return "\n".join(lines)
