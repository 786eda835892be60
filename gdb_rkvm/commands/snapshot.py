from gdb_rkvm.live.snapshot import snapshot
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when


@only_when(STOPPED)
class RkvmSnapshot(RkvmCommand):
    """Everything triage records about the stopped guest, as one JSON document.

Usage: rkvm snapshot [--json]
Per CPU: EL, PC, backtrace, SP_ELx, ELR/SPSR/ESR/FAR for EL1 and EL2 decoded, VBAR_EL2 and what it
points at; whether a VBAR_EL2 is virt_to_phys() of a module/vmalloc address; the rkvm stub's
counters, the SP_EL2 it set and its fault records; rkvm.ko's state. `rkvm triage` reads this.
Example:
  (gdb) rkvm snapshot --json"""

    name = "snapshot"

    def run(self, args):
        return snapshot()

    def format(self, r, args):
        lines = []
        for c in r.cpus:
            s = c.summary
            if s is None:
                lines.append(f"CPU {c.cpu}: ? at {0:#x} <None>, VBAR_EL2 {0:#x} (None)")
                continue
            lines.append(f"CPU {c.cpu}: {s.mode} at {s.pc:#x} <{s.pc_symbol}>, "
                         f"VBAR_EL2 {s.vbar_el2 or 0:#x} ({s.vbar_el2_points_at})")
        lines += [f"problem: {p}" for p in r.problems]
        return "\n".join(lines)
