import dataclasses

from gdb_rkvm.arch import regfields
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, world
from gdb_rkvm.live.cpu_state import el_picture
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.commands.format import clobber_warning, el1_beside, hx


@only_when(STOPPED)
class RkvmEl(RkvmCommand):
    """The exception-level picture of one CPU: stacks, return state, syndromes, vectors, EL2 controls.

Usage: rkvm el [--cpu N] [--json] [--explain]
Shows SP_EL0/SP_EL1/SP_EL2, ELR_EL1/EL2 (with symbols), SPSR_EL1/EL2 and ESR_EL1/EL2 decoded,
FAR_EL1/EL2, HPFAR_EL2, VBAR_EL1/EL2, the HCR_EL2 flags that are set, and SCTLR_EL2.M.
The world line says host or guest (HCR_EL2.VM). In the guest the EL1 registers are the guest's,
labelled so, and the host's from the stub's host save area are shown beside them.
Example:
  (gdb) rkvm el --cpu 1
  CPU 1: EL1h, PC 0x80000010 - in the guest (VMID 1, VTTBR_EL2 0x1000041234000)
  ESR_EL2   0x5a00004b  EC 0x16 HVC64: HVC #0x4b
  EL1 register  guest (live)  host (saved by the stub)
  SCTLR_EL1     0x30d0180d    0x34d5d91d"""

    name = "el"
    explains = True

    def add_arguments(self, p):
        self.add_cpu_argument(p)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        vbar = t.read_register("VBAR_EL2", cpu)
        picture = el_picture(cpu, kernel_facts.landmarks([vbar]))
        try:
            return dataclasses.replace(picture, world=world.cpu_world(cpu))
        except RkvmError:
            return picture   # no HCR_EL2 over this gdbstub: the picture without a world

    def format(self, r, args):
        pc_sym = f" <{r.pc_symbol}>" if r.pc_symbol else ""
        w = r.world
        where = f" - in the {w.describe()}" if w is not None else ""
        lines = [f"CPU {r.cpu}: {r.mode}, PC {r.pc:#x}{pc_sym}{where}"]
        if w is not None and w.in_guest:
            lines.append("(EL1 registers marked 'guest' are the guest's; the host's saved ones are below)")
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
            if w is not None and w.in_guest and name.endswith(("_EL1", "SP_EL0")):
                extra = ("guest  " + extra).rstrip()
            lines.append(f"{name:<10}{hx(v):<20}{extra}")
            if args.explain and e.explain:
                lines += [f"            {x}" for x in e.explain]
        if w is not None:
            lines += _world_lines(w, args.explain)
        return "\n".join(lines)


def _world_lines(w, explain: bool) -> list[str]:
    h = w.host_save
    out = []
    if w.in_guest:
        out += ["", el1_beside(w)]
        if explain:
            out.append("While a guest runs, HCR_EL2.VM = 1 and the CPU's EL1 registers hold the guest's state; the "
                       "stub saved the host's in its host save area at the world switch and loads them back on the "
                       "guest's exit.")
    elif h is not None and h.runs:
        out.append(f"host; the last guest run on this CPU was vCPU at PA {h.vcpu_pa:#x} ({h.runs} run(s)), "
                   f"see 'rkvm vcpu'")
    warn = clobber_warning(w)
    if warn:
        out.append(f"warning: {warn}")
    return out
