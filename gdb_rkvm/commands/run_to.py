import gdb

from .. import stub_abi
from ..errors import RkvmError
from ..target import module_symbols
from ..target.gdb_state import STATE, StopCheckBreakpoint, quietly
from ..target.resume import Deadline, continue_until
from .base import CONNECTED, SESSION, RkvmCommand, only_when
from .hvc import catch_suspended


class _EventBreakpoint(StopCheckBreakpoint):
    """On rkvm_debug_event(event, cpu, stub_pa, arg): stops only for the wanted event and CPU."""

    def __init__(self, event: int, cpu: int | None, count: int, deadline):
        super().__init__("rkvm_debug_event", internal=True)
        self.silent = True
        self.event, self.cpu, self.remaining, self.deadline = event, cpu, count, deadline
        self.matched = None

    def check(self):
        if self.deadline.passed():
            return True
        regs = [int(gdb.parse_and_eval(f"$x{n}")) & 0xFFFFFFFFFFFFFFFF for n in range(4)]
        event, cpu = regs[0] & 0xFFFFFFFF, regs[1] & 0xFFFFFFFF
        if event != self.event or (self.cpu is not None and cpu != self.cpu):
            return False
        self.remaining -= 1
        if self.remaining > 0:
            return False
        self.matched = {"event": stub_abi.EVENT_NAMES.get(event, str(event)), "cpu": cpu,
                        "stub_pa": regs[2], "arg": regs[3]}
        return True


@only_when(SESSION, CONNECTED)
class RkvmRunTo(RkvmCommand):
    """Continue until rkvm.ko's debugger hook reports EVENT, then stop there.

Usage: rkvm run-to EVENT [--cpu N] [--count K] [--timeout S] [--json]
EVENT is one of: installed-cpu, installed-all, hvc-issued, hvc-returned, removed.
The module calls rkvm_debug_event(event, cpu, stub_pa, arg) at each of these; GDB stops
on the K-th matching call. Without a match within S seconds (default 60) the target is
interrupted and the command fails.
Example:
  (gdb) rkvm run-to installed-all
  rkvm: installed-all on cpu 0: stub at PA 0x40a60000, arg 2"""

    name = "run-to"

    def add_arguments(self, p):
        p.add_argument("event", choices=sorted(stub_abi.EVENTS))
        p.add_argument("--cpu", type=int)
        p.add_argument("--count", type=int, default=1)
        p.add_argument("--timeout", type=float, default=60.0)

    def run(self, args):
        thread = gdb.selected_thread()
        if thread is not None and thread.is_running():
            raise RkvmError("the target is running: interrupt it first")
        if STATE.session is not None:  # attached to a running guest: rkvm.ko may be loaded already
            module_symbols.load_already_loaded()
        if args.event.startswith("hvc-"):
            # hvc events are on rkvm.ko's hot path: it reports them only while a debugger asks
            try:
                gdb.execute("set var rkvm_debug.report_hvc = 1", to_string=True)
            except gdb.error:
                raise RkvmError("rkvm.ko is not loaded yet: hvc events need it (run-to installed-all first)") from None
        deadline = Deadline(args.timeout)
        bp = quietly(lambda: _EventBreakpoint(stub_abi.EVENTS[args.event], args.cpu, max(1, args.count), deadline))
        try:
            with catch_suspended("run-to"):
                continue_until(deadline)
        finally:
            bp.delete()
            if args.event.startswith("hvc-"):
                try:
                    gdb.execute("set var rkvm_debug.report_hvc = 0", to_string=True)
                except gdb.error:
                    pass
        if bp.matched is None:
            raise RkvmError(f"no '{args.event}' event within {args.timeout:g} s "
                            f"(is rkvm.ko loaded? the target is stopped at {_where()})")
        return bp.matched

    def format(self, m, args):
        return (f"rkvm: {m['event']} on cpu {m['cpu']}: stub at PA {m['stub_pa']:#x}, "
                f"arg {m['arg']:#x}")


def _where() -> str:
    try:
        frame = gdb.selected_frame()
        return f"{frame.pc():#x} {frame.name() or ''}".strip()
    except gdb.error:
        return "an unknown place"
