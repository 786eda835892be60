from gdb_rkvm.model import exclog
from gdb_rkvm.model.argtypes import seconds
from gdb_rkvm.arch import esr, pstate, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.live import el2_traps, kernel_facts
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.live.resume import Deadline, continue_until
from gdb_rkvm.commands.hvc import HvcEntryBreakpoint, catch_suspended


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


def parse_classes(text: str | None) -> frozenset:
    """--class hvc,smc -> {"hvc", "smc"}; one line naming the choices for anything else."""
    if not text:
        return frozenset()
    names = {c.strip().lower() for c in text.split(",") if c.strip()}
    bad = sorted(names - set(exclog.CLASSES))
    if bad:
        raise RkvmError(f"--class {escape(bad[0])}: expected one or more of {', '.join(exclog.CLASSES)} "
                        "(comma-separated)")
    return frozenset(names)


def short_slot(offset: int | None) -> str:
    """'lower64 sync' for VBAR + 0x400 and so on."""
    if offset is None:
        return "?"
    group = ("cur-sp0", "cur-spx", "lower64", "lower32")[offset // 0x200 & 3]
    return f"{group} {('sync', 'irq', 'fiq', 'serror')[offset // 0x80 & 3]}"


def _addr(value, symbol) -> str:
    if value is None:
        return "?"
    return f"{value:#x}" + (f" <{escape(symbol)}>" if symbol else "")


def format_log_event(e: dict, explain: bool = False) -> list[str]:
    """One logged transition as text (from el_log.Event.to_dict())."""
    cpu = "CPU ?" if e["cpu"] is None else f"CPU {e['cpu']}"
    mark = "~" if e["inferred"] else " "
    if e["kind"] == "entry":
        what = e["esr_summary"] if e["esr"] is not None else e["exception"]
        if e["class"] == "dabt" and e["far"] is not None:
            what += f", FAR {e['far']:#x}"
        line = f"{cpu}{mark} EL{e['from_el']} -> EL{e['to_el']}  {what}"
        if e["elr"] is not None:
            line += f"  ELR {_addr(e['elr'], e['elr_symbol'])}"
        if e["psci_by_qemu"]:
            line += "  answered by QEMU as the PSCI firmware (its log names no caller: 'rkvm smc catch' does)"
        elif e["pc"] is not None:
            line += f"  -> {_addr(e['pc'], e['pc_symbol'])} [{short_slot(e['slot_offset'])}]"
        lines = [line]
        if explain and not e["psci_by_qemu"]:
            el = e["to_el"]
            lines.append(f"    the CPU saved PSTATE in SPSR_EL{el} and the return address in ELR_EL{el}, masked "
                         f"interrupts and jumped to VBAR_EL{el} + {e['slot_offset'] or 0:#x} ({e['slot']}).")
        elif explain:
            lines.append("    no EL3 code runs here: QEMU plays the PSCI firmware and returns straight to the caller.")
        return lines
    line = f"{cpu}{mark} EL{e['from_el']} -> EL{e['to_el']}  ERET to {_addr(e['pc'], e['pc_symbol'])}"
    if e["illegal"]:
        line += "  (illegal exception return: PSTATE.IL set)"
    lines = [line]
    if explain:
        lines.append(f"    ERET restored PSTATE from SPSR_EL{e['from_el']} and jumped to ELR_EL{e['from_el']}.")
    return lines


@only_when(STOPPED)
class RkvmTraceEl(RkvmCommand):
    """A timeline of exception entries and returns on every CPU, from QEMU's own exception log.

Usage: rkvm trace-el [--count N] [--seconds S] [--el2-only] [--class C,...] [--cpu N] [--json] [--explain]
       rkvm trace-el --args [--count N] [--seconds S]
Runs the guest with QEMU's exception log on (no breakpoint, no stop per exception), from wherever it
is stopped (at reset: the boot's own EL2 story), until N entries (default 20) or S seconds (default 30).
Each entry: CPU, ELs, the ESR decoded (HVC/SMC/SVC immediate, abort FAR), ELR symbolized, and the vector
it went to (VBAR + slot); each return: where ERET went. --el2-only keeps entries to EL2 and returns from
it; --class hvc,smc,svc,dabt,iabt,irq,fiq,serror,sysreg,wfx,brk,undef,debug,align,illegal,other.
Order is exact per CPU; '~' marks a CPU inferred (one log shared by several TCG threads).
--args: the breakpoint timeline instead (EL2 only, stops at each vector and ERET, with ESR_EL2/ELR_EL2
and the returned x0).
Example (at reset):
  (gdb) rkvm trace-el --el2-only --count 3
  CPU 0  EL1 -> EL2  EC 0x16 HVC64: HVC #0x0  ELR 0xffff800080016d24 <finalise_el2+0x24>
         -> 0x4046e400 <__hyp_stub_vectors+0x400> [lower64 sync]   (one line on screen)
  CPU 0  EL2 -> EL1  ERET to 0xffff800080016d24 <finalise_el2+0x24>"""

    name = "trace-el"
    explains = True

    def add_arguments(self, p):
        p.add_argument("--count", type=int, default=None)
        p.add_argument("--seconds", type=seconds, default=None)
        p.add_argument("--el2-only", action="store_true")
        p.add_argument("--class", dest="classes", metavar="C,...")
        self.add_cpu_argument(p)
        p.add_argument("--args", action="store_true", help="breakpoints (EL2 only), with register values")

    def run(self, args):
        if args.count is not None and args.count <= 0:
            raise RkvmError(f"--count {args.count}: at least 1 entry")
        if args.seconds is not None and not args.seconds > 0:
            raise RkvmError("--seconds must be above 0")
        if args.args:
            if args.classes or args.cpu is not None or args.el2_only:
                raise RkvmError("--args traces EL2 entries and returns with breakpoints; --class, --cpu and "
                                "--el2-only filter the exception log (drop --args)")
            deadline = Deadline(args.seconds if args.seconds is not None else 30.0)
            tl = _Timeline(args.count or 10, deadline)
            with catch_suspended("trace-el"):
                tl.arm()
                try:
                    continue_until(deadline)
                finally:
                    tl.disarm()
            return {"source": "breakpoints", "events": tl.events}
        from gdb_rkvm.live import el_log  # imported when first used: GDB's start stays short
        flt = exclog.Filter(el2_only=args.el2_only, classes=parse_classes(args.classes), cpu=args.cpu)
        count = args.count if args.count is not None else (None if args.seconds else 20)
        r = el_log.trace(flt, count, args.seconds if args.seconds is not None else 30.0)
        return {"source": "exception log", "events": [e.to_dict() for e in r.events], "seconds": r.seconds,
                "seen": r.seen, "stopped_by": r.stopped_by, "dropped_lines": r.dropped_lines,
                "per_cpu_files": r.per_cpu_files, "log_bytes": r.log_bytes, "log_unread": r.log_unread}

    def format(self, r, args):
        if r["source"] == "breakpoints":
            return self._format_breakpoints(r, args)
        lines = []
        for e in r["events"]:
            lines += format_log_event(e, args.explain)
        entries = sum(1 for e in r["events"] if e["kind"] == "entry")
        lines.append(f"{entries} entries kept of {r['seen']} transitions read from the log in {r['seconds']:.1f} s "
                     f"(stopped by {r['stopped_by']})")
        if r["log_unread"]:
            lines.append(f"({r['log_unread'] >> 10} KiB of log written after the stop was asked: not read)")
        if r["dropped_lines"]:
            lines.append(f"{r['dropped_lines']} log lines not understood (skipped)")
        return "\n".join(lines)

    def _format_breakpoints(self, r, args):
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
