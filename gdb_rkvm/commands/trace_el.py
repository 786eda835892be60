from ..argtypes import seconds
from ..arch import esr, pstate, vectors
from ..errors import RkvmError
from ..target import el2_traps, kernel_facts
from ..target import gdb_target as t
from .base import STOPPED, RkvmCommand, only_when
from ..target.resume import Deadline, continue_until
from .hvc import HvcEntryBreakpoint, catch_suspended


class _Timeline:
    """Breakpoints on all 16 EL2 vector slots (entries) and the EL2 code's ERETs (returns)."""

    def __init__(self, count: int, deadline):
        self.count, self.events, self.bps, self.entries, self.deadline = count, [], [], 0, deadline

    def arm(self):
        vbars = set(el2_traps.vbar_el2_by_cpu().values())
        if not vbars:
            raise RkvmError("VBAR_EL2 is not set on any CPU yet: boot further first")
        self.slots = {}
        for v in vbars:
            for off, name in vectors.slots():
                self.slots[v + off] = (v, off, name)
                self.bps.append(HvcEntryBreakpoint(v + off, self))
            for pa in el2_traps.eret_addresses(v):
                self.bps.append(HvcEntryBreakpoint(pa, self))

    def on_entry(self, bp) -> bool:
        if self.deadline.passed():
            return True
        cpu = el2_traps.current_cpu()
        if bp.pa in self.slots:
            v, off, name = self.slots[bp.pa]
            spsr, esr_v, elr = (t.read_register(n, cpu) for n in ("SPSR_EL2", "ESR_EL2", "ELR_EL2"))
            self.events.append({"cpu": cpu, "kind": "entry", "from": pstate.mode_name(spsr), "to": "EL2h",
                                "slot": name, "slot_offset": off, "esr": esr_v,
                                "esr_summary": esr.decode(esr_v).summary, "elr": elr, "elr_symbol": t.symbol_at(elr)})
            self.entries += 1
            return False
        spsr, elr = t.read_register("SPSR_EL2", cpu), t.read_register("ELR_EL2", cpu)
        marks = kernel_facts.landmarks([])
        self.events.append({"cpu": cpu, "kind": "return", "from": "EL2h", "to": pstate.mode_name(spsr),
                            "eret_at": bp.pa, "eret_symbol": kernel_facts.el2_symbol(bp.pa, marks), "elr": elr,
                            "elr_symbol": t.symbol_at(elr), "x0": t.read_register("x0", cpu)})
        return self.entries >= self.count

    def disarm(self):
        for bp in self.bps:
            if bp.is_valid():
                bp.delete()


@only_when(STOPPED)
class RkvmTraceEl(RkvmCommand):
    """A timeline of exception entries into EL2 and returns from it, across CPUs, for teaching.

Usage: rkvm trace-el [--count N] [--seconds S] [--json] [--explain]
Records every entry through any of the 16 VBAR_EL2 slots (EL before, slot, ESR_EL2 decoded, ELR_EL2)
and every ERET out of the EL2 code (EL after, where it returns, x0), until N entries (default 10)
have returned or S seconds (default 30) passed.
Example:
  (gdb) rkvm trace-el --count 1
  CPU 1  EL1h -> EL2h  Lower EL using AArch64, Synchronous  EC 0x16 HVC64: HVC #0x4b
         ELR 0xffff800078540064 <rkvm_hvc+0x44>
  CPU 1  EL2h -> EL1h  ERET at 0x40a60bbc <rkvm_stub_ping+0x34> to 0xffff800078540064 <rkvm_hvc+0x44>"""

    name = "trace-el"
    explains = True

    def add_arguments(self, p):
        p.add_argument("--count", type=int, default=10)
        p.add_argument("--seconds", type=seconds, default=30.0)

    def run(self, args):
        if args.count < 1:
            raise RkvmError(f"--count {args.count}: at least 1 entry")
        if not args.seconds > 0:
            raise RkvmError("--seconds must be above 0")
        deadline = Deadline(args.seconds)
        tl = _Timeline(args.count, deadline)
        with catch_suspended("trace-el"):
            tl.arm()
            try:
                continue_until(deadline)
            finally:
                tl.disarm()
        return {"events": tl.events}

    def format(self, r, args):
        lines = []
        for e in r["events"]:
            elr = f"{e['elr']:#x}" + (f" <{e['elr_symbol']}>" if e["elr_symbol"] else "")
            if e["kind"] == "entry":
                lines.append(f"CPU {e['cpu']}  {e['from']} -> EL2h  {e['slot']}  {e['esr_summary']}  "
                             f"ELR {elr}")
                if args.explain:
                    lines.append(f"    the CPU took an exception to EL2: it saved PSTATE in SPSR_EL2 and the return "
                                 f"address in ELR_EL2, masked interrupts and jumped to VBAR_EL2 + "
                                 f"{e['slot_offset']:#x}.")
            else:
                at = f"{e['eret_at']:#x}" + (f" <{e['eret_symbol']}>" if e["eret_symbol"] else "")
                lines.append(f"CPU {e['cpu']}  EL2h -> {e['to']}  ERET at {at} to {elr}  x0={e['x0']:#x}")
                if args.explain:
                    lines.append("    ERET restored PSTATE from SPSR_EL2 and jumped to ELR_EL2.")
        return "\n".join(lines) or "no exception entered EL2"
