from gdb_rkvm.model import exclog
from gdb_rkvm.model.argtypes import seconds
from gdb_rkvm.arch import exits, vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when
from gdb_rkvm.live.resume import Deadline, continue_until
from gdb_rkvm.live.trap import ANY_TRAP, ENTRY, RETURN, Trap
from gdb_rkvm.live.trap_watch import EACH, TrapWatch, catch_suspended


def timeline_event(tr: Trap) -> dict:
    """One hit of the breakpoint timeline (`trace-el --args`) as its JSON event."""
    if tr.kind == ENTRY:
        ex = tr.exit
        return {"cpu": tr.cpu, "kind": "entry", "from": tr.from_mode, "to": "EL2h", "slot": tr.slot,
                "slot_offset": tr.slot_offset, "esr": tr.esr, "esr_summary": tr.esr_summary, "elr": tr.elr,
                "elr_symbol": tr.elr_symbol, "guest": bool(tr.guest), "exit_reason": ex.reason.value if ex else None}
    # at an ERET, SPSR_EL2 is the PSTATE it returns to and HCR_EL2.VM the world
    return {"cpu": tr.cpu, "kind": "return", "from": "EL2h", "to": tr.from_mode, "eret_at": tr.pc,
            "eret_symbol": tr.handler_symbol, "elr": tr.elr, "elr_symbol": tr.elr_symbol, "x0": tr.ret,
            "guest": bool(tr.guest)}


def log_world(e: dict) -> bool:
    """Whether a logged transition is the guest's: an entry to EL2 from the guest (a guest exit) or an
    ERET into it. QEMU's log has no HCR_EL2: told by the guest's address range (exits.in_guest_by_address)."""
    if e["kind"] == "entry":
        return e["to_el"] == 2 and exits.in_guest_by_address(e["from_el"], e["elr"])
    return e["from_el"] == 2 and exits.in_guest_by_address(e["to_el"], e["pc"])


def timeline_collector(events: list[dict], count: int):
    """The callback of the breakpoint timeline: every entry and return, stopping at the return
    after `count` entries."""

    def on_trap(tr: Trap) -> bool:
        events.append(timeline_event(tr))
        return tr.kind == RETURN and sum(e["kind"] == "entry" for e in events) >= count
    return on_trap


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
    return vectors.short_slot_name(offset) or "not a vector slot"


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
        guest = e.get("guest", False)
        if guest:
            what = f"guest exit: {what}"
        line = f"{cpu}{mark} EL{e['from_el']} -> EL{e['to_el']}  {what}"
        if e["elr"] is not None:
            line += f"  ELR {_addr(e['elr'], None if guest else e['elr_symbol'])}"
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
    if e.get("guest"):
        line = f"{cpu}{mark} EL{e['from_el']} -> EL{e['to_el']}  ERET into the guest at {e['pc']:#x}"
    else:
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
            events: list[dict] = []
            watch = TrapWatch(timeline_collector(events, args.count or 10), slots=[o for o, _ in vectors.slots()],
                              returns=EACH, trap_filter=ANY_TRAP, deadline=deadline)
            with catch_suspended("trace-el"):
                watch.arm()
                try:
                    continue_until(deadline)
                finally:
                    watch.disarm()
            return {"source": "breakpoints", "events": events}
        from gdb_rkvm.live import el_log  # imported when first used: GDB's start stays short
        flt = exclog.Filter(el2_only=args.el2_only, classes=parse_classes(args.classes), cpu=args.cpu)
        count = args.count if args.count is not None else (None if args.seconds else 20)
        r = el_log.trace(flt, count, args.seconds if args.seconds is not None else 30.0)
        events = [e.to_dict() for e in r.events]
        for e in events:
            e["guest"] = log_world(e)
        return {"source": "exception log", "events": events, "seconds": r.seconds,
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
                what = f"guest exit {e['exit_reason']}: " if e.get("guest") else ""
                pc = "guest PC" if e.get("guest") else "ELR"
                lines.append(f"CPU {e['cpu']}  {e['from']} -> EL2h  {e['slot']}  {what}{e['esr_summary']}  "
                             f"{pc} {elr}")
                if args.explain:
                    lines.append(f"    the CPU took an exception to EL2: it saved PSTATE in SPSR_EL2 and the return "
                                 f"address in ELR_EL2, masked interrupts and jumped to VBAR_EL2 + "
                                 f"{e['slot_offset']:#x}.")
            else:
                at = f"{e['eret_at']:#x}" + (f" <{e['eret_symbol']}>" if e["eret_symbol"] else "")
                into = " into the guest" if e.get("guest") else ""
                lines.append(f"CPU {e['cpu']}  EL2h -> {e['to']}  ERET at {at}{into} to {elr}  x0={e['x0']:#x}")
                if args.explain:
                    lines.append("    ERET restored PSTATE from SPSR_EL2 and jumped to ELR_EL2.")
        return "\n".join(lines) or "no exception entered EL2"
