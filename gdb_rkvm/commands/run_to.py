import gdb

from gdb_rkvm.model.argtypes import seconds
from gdb_rkvm.model import stub_abi
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import boot, module_symbols, trap_watch
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE
from gdb_rkvm.live.resume import Deadline, continue_until
from gdb_rkvm.commands.base import CONNECTED, SESSION, RkvmCommand, only_when


@only_when(SESSION, CONNECTED)
class RkvmRunTo(RkvmCommand):
    """Continue until rkvm.ko's debugger hook reports EVENT, then stop there.

Usage: rkvm run-to EVENT [--cpu N] [--count K] [--timeout S] [--json]
rkvm.ko's events: installed-cpu, installed-all, hvc-issued, hvc-returned, removed. The module calls
rkvm_debug_event(event, cpu, stub_pa, arg) at each of these; GDB stops on the K-th matching call.
The kernel's boot at EL2 (from reset; breakpoints at physical addresses of head.S, the MMU is off):
  boot-hyp-stub  init_el2's `msr vbar_el2, x0`: the kernel installs its hyp-stub (x0 = its PA)
  boot-eret      init_el2's `eret`: EL2h -> EL1h, to ELR_EL2 (once per CPU)
  cpu-start      secondary_entry: a secondary CPU leaves reset, after PSCI CPU_ON (--cpu 1...)
Without a match within S seconds (default 60) the target is interrupted and the command fails.
Example:
  (gdb) rkvm run-to installed-all
  rkvm: installed-all on cpu 0: stub at PA 0x40a60000, arg 2
  (gdb) rkvm run-to boot-eret      (on a session still at reset)
  rkvm: boot-eret on cpu 0: at 0x4046d42c <init_kernel_el+0x9c> (EL2h): `eret` to ELR_EL2 = ..."""

    name = "run-to"

    def add_arguments(self, p):
        p.add_argument("event", choices=sorted(stub_abi.EVENTS) + sorted(boot.EVENTS))
        p.add_argument("--cpu", type=int)
        p.add_argument("--count", type=int, default=1)
        p.add_argument("--timeout", type=seconds, default=60.0)

    def run(self, args):
        thread = gdb.selected_thread()
        if thread is not None and thread.is_running():
            raise RkvmError("the target is running: interrupt it first")
        if args.count < 1:
            raise RkvmError(f"--count {args.count}: at least 1")
        if not args.timeout > 0:
            raise RkvmError(f"--timeout {args.timeout:g}: a number of seconds above 0")
        if args.cpu is not None:
            t.thread_for_cpu(args.cpu)   # "no CPU 9 (CPUs: 0, 1)"
        if args.event in boot.EVENTS:
            return self._boot_event(args)
        if STATE.session is not None:  # attached to a running guest: rkvm.ko may be loaded already
            module_symbols.load_already_loaded()
        if args.event.startswith("hvc-"):
            # hvc events are on rkvm.ko's hot path: it reports them only while a debugger asks
            try:
                gdb.execute("set var rkvm_debug.report_hvc = 1", to_string=True)
            except gdb.error:
                raise RkvmError("rkvm.ko is not loaded yet: hvc events need it (run-to installed-all first)") from None
        deadline = Deadline(args.timeout)
        bp = trap_watch.stop_at_debug_event(args.event, args.cpu, max(1, args.count), deadline)
        try:
            with trap_watch.catch_suspended("run-to"):
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

    def _boot_event(self, args):
        cpus = [n for n, _ in t.cpu_threads()] if args.cpu is None else [args.cpu]
        if args.event == "cpu-start" and args.cpu == 0:
            raise RkvmError("CPU 0 is the boot CPU: QEMU's boot code jumps to primary_entry, no PSCI CPU_ON "
                            "(cpu-start is for CPU 1 and up)")
        pa = boot.landmark(args.event)
        pending, at = boot.pending_cpus(args.event, cpus, pa)
        if not pending:
            if at:
                raise RkvmError(f"CPU {', '.join(map(str, at))} is at {args.event} now ({pa:#x}); "
                                "'stepi' executes it, and no other CPU has it still to come")
            which = "every CPU has" if args.cpu is None else f"CPU {args.cpu} has"
            raise RkvmError(f"{which} passed {args.event} already ({boot.EVENTS[args.event]}): it happens once "
                            "per CPU at boot; start a new session ('rkvm down', 'rkvm up') to see it")
        deadline = Deadline(args.timeout)
        bp = trap_watch.stop_at_boot(args.event, pa, args.cpu, args.count, deadline)
        try:
            with trap_watch.catch_suspended("run-to"):
                continue_until(deadline)
        finally:
            bp.delete()
        if bp.matched is None:
            raise RkvmError(f"no '{args.event}' within {args.timeout:g} s (the target is stopped at {_where()})")
        t.thread_for_cpu(bp.matched["cpu"]).switch()
        return bp.matched

    def format(self, m, args):
        if m["event"] in boot.EVENTS:
            return f"rkvm: {m['event']} on cpu {m['cpu']}: {boot.format_event(m)}"
        return (f"rkvm: {m['event']} on cpu {m['cpu']}: stub at PA {m['stub_pa']:#x}, "
                f"arg {m['arg']:#x}")


def _where() -> str:
    try:
        frame = gdb.selected_frame()
        return f"{frame.pc():#x} {frame.name() or ''}".strip()
    except gdb.error:
        return "an unknown place"
