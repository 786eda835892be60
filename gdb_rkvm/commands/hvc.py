import time

import gdb

from gdb_rkvm.arch import esr, exits
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.argtypes import seconds
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE
from gdb_rkvm.live.resume import Deadline, continue_until
from gdb_rkvm.live.trap import SMC_SITE, Trap, TrapFilter
from gdb_rkvm.live.trap_watch import NO_RETURNS, PAIRED, TrapCatch, TrapWatch, catch_suspended
from gdb_rkvm.commands.base import CONNECTED, STOPPED, RkvmCommand, last_caught, only_when, parse_int


def check_filter(imm: int | None, cpu: int | None) -> None:
    """Refuse filters that can never match: imm16 is 16 bits (ESR_EL2.ISS[15:0] of an HVC64), and
    the CPU must be one of this target's."""
    if imm is not None and not 0 <= imm <= 0xFFFF:
        raise RkvmError(f"--imm {imm:#x}: an HVC's immediate is 16 bits (0 to 0xffff), so this would never match")
    if cpu is not None:
        t.thread_for_cpu(cpu)  # "no CPU 9 (CPUs: 0, 1)"


def format_trap(tr: Trap) -> str:
    """A caught trap: what, from where, x0..x7 (the SMCCC call decoded), and where EL2 took it."""
    sym = f" <{tr.caller_symbol}>" if tr.caller_symbol else ""
    if tr.is_hvc:
        what = f"HVC #{tr.imm16:#x}"
    elif tr.is_smc and tr.imm16 is not None:
        what = f"SMC #{tr.imm16:#x}"
    else:
        what = tr.esr_summary
    fn = f" ({tr.function})" if tr.function else ""
    x = [tr.x(n) or 0 for n in range(8)]
    lines = [f"rkvm: CPU {tr.cpu}: {what} from {tr.from_mode} at {tr.caller:#x}{sym}",
             f"  x0={x[0]:#x}{fn} x1={x[1]:#x} x2={x[2]:#x} x3={x[3]:#x}",
             f"  x4={x[4]:#x} x5={x[5]:#x} x6={x[6]:#x} x7={x[7]:#x}"]
    if tr.call:
        lines.append(f"  {tr.call}")
    if tr.kind == SMC_SITE:
        where = tr.smc_goes_to or "EL3"
        lines.append(f"  stopped on the SMC instruction: it has not run yet ('stepi' runs it); it goes to {where}"
                     + (", which QEMU plays when the board has no EL3 firmware" if where == "EL3" else ""))
    else:
        lines.append(f"  entered EL2 at {tr.pc:#x} <{tr.handler_symbol or '?'}> ({tr.slot}), ESR_EL2 {tr.esr:#x}")
    return "\n".join(lines)


def catch_hint(other_cpu: int | None) -> str:
    """Said once per catch: why `print` of a kernel variable fails at an EL2 stop."""
    if other_cpu is None:
        return ""
    return (f"  (GDB reads memory through the selected CPU, now at EL2 with its MMU off: to print kernel variables "
            f"select CPU {other_cpu}, at EL1, with 'thread {other_cpu + 1}'; rkvm commands do that by themselves)")


def _catch_printer():
    """The catch's live output: each trap it stops on, and the hint once."""
    hinted = []

    def show(tr: Trap) -> None:
        gdb.write(format_trap(tr) + "\n")
        if not hinted:
            hinted.append(True)
            try:
                hint = catch_hint(t.cpu_at_el1())
            except (gdb.error, RkvmError):
                hint = ""
            if hint:
                gdb.write(hint + "\n")
    return show


@only_when(STOPPED)
class RkvmHvcCatch(RkvmCommand):
    """Stop when an HVC enters EL2 from a lower EL; `rkvm hvc catch off` removes it.

Usage: rkvm hvc catch [--imm N] [--cpu N] [--from-el 1] [--smc] [--json]
       rkvm hvc catch off
Puts a breakpoint on VBAR_EL2 + 0x400 (Lower EL using AArch64, Synchronous) of every CPU and checks
ESR_EL2.EC == 0x16 (HVC64) and the filters before the stop is shown. The breakpoints follow VBAR_EL2
each time the target stops. On a stop it prints the CPU, the caller (ELR_EL2 - 4), imm16, x0..x7 and
the handler; an SMCCC function ID in x0 is decoded (PSCI CPU_ON with its target and entry point...).
--smc also stops on the kernel's SMC instructions (as `rkvm smc catch`). `rkvm hvc last --json` gives
the last caught trap.
Example:
  (gdb) rkvm hvc catch --imm 0x4b
  rkvm: catching HVCs (imm16 == 0x4b) at 0x40a60400
  (gdb) continue
  rkvm: CPU 1: HVC #0x4b from EL1h at 0xffff800078540058 <rkvm_hvc+0x38>
    x0=0x524b0001 (RKVM_HVC_PING) x1=0x77 ..."""

    name = "hvc catch"

    def add_arguments(self, p):
        p.add_argument("off", nargs="?", choices=("off",))
        p.add_argument("--imm", type=lambda s: parse_int(s, "immediate"))
        self.add_cpu_argument(p)
        p.add_argument("--from-el", type=int, choices=(0, 1))
        p.add_argument("--smc", action="store_true", help="SMC instructions of the kernel too")

    hvc, smc, what = True, False, "HVCs"

    def run(self, args):
        if not args.off:
            check_filter(args.imm, args.cpu)
        old = STATE.hvc_catch
        if old is not None:
            old.disarm()
            STATE.hvc_catch = None
        if args.off:
            return {"armed": False, "addresses": []}
        smc = self.smc or getattr(args, "smc", False)
        # the host's traps only: a guest's HVC is a guest exit, `rkvm exit catch --reason hvc` stops on it
        flt = TrapFilter(args.imm, args.cpu, getattr(args, "from_el", None), guest=False)
        catch = TrapCatch(flt, _catch_printer(), hvc=self.hvc, smc=smc)
        try:
            addresses = catch.arm()
        except BaseException:
            catch.disarm()
            raise
        STATE.hvc_catch = catch
        return {"armed": True, "filter": flt.describe(), "addresses": addresses,
                "smc_sites": catch.watch.addresses(SMC_SITE)}

    def format(self, r, args):
        if not r["armed"]:
            return f"rkvm: {self.name} off"
        lines = []
        if self.hvc:
            where = ", ".join(f"{a:#x}" for a in r["addresses"]) or \
                "nowhere yet (VBAR_EL2 not set: re-armed at each stop)"
            lines.append(f"rkvm: catching HVCs ({r['filter']}) at {where}")
        if r["smc_sites"]:
            lines.append(f"rkvm: catching SMCs ({r['filter']}) at the kernel's {len(r['smc_sites'])} SMC "
                         "instructions")
        return "\n".join(lines)


@only_when(STOPPED)
class RkvmSmcCatch(RkvmHvcCatch):
    """Stop when the kernel is about to execute an SMC; `rkvm smc catch off` removes it.

Usage: rkvm smc catch [--imm N] [--cpu N] [--json]
       rkvm smc catch off
Puts a breakpoint on every SMC instruction of vmlinux's text (init and exit text left out: freed after
boot), at the KASLR slide, and stops there before the SMC runs, with x0..x7 and the SMCCC function
decoded: PSCI calls show their arguments (CPU_ON: the target MPIDR and the entry point). On this lab the
kernel's PSCI conduit is SMC, answered by QEMU itself (`rkvm psci` says which conduit a kernel uses).
`rkvm hvc last` shows the last one caught; `rkvm hvc catch --smc` catches HVCs and SMCs together.
Example:
  (gdb) rkvm smc catch
  rkvm: catching SMCs (every HVC) at the kernel's 10 SMC instructions
  (gdb) continue
  rkvm: CPU 0: SMC #0x0 from EL1h at 0xffff80008001a174 <__arm_smccc_smc+0x4>
    x0=0x84000008 (PSCI SYSTEM_OFF) ...
    PSCI SYSTEM_OFF()"""

    name = "smc catch"
    hvc, smc = False, True

    def add_arguments(self, p):
        p.add_argument("off", nargs="?", choices=("off",))
        p.add_argument("--imm", type=lambda s: parse_int(s, "immediate"))
        self.add_cpu_argument(p)


@only_when(CONNECTED)
class RkvmHvcLast(RkvmCommand):
    """The last HVC that `rkvm hvc catch` stopped on.

Usage: rkvm hvc last [--json]"""

    name = "hvc last"

    def run(self, args):
        return last_caught(STATE.hvc_catch, "no HVC caught yet (arm one with 'rkvm hvc catch')")

    def format(self, tr, args):
        return format_trap(tr)


def trace_row(n: int, tr: Trap) -> dict:
    """One trap of `hvc trace --args` as its JSON row."""
    return {"n": n, "cpu": tr.cpu, "caller": tr.caller, "caller_symbol": tr.caller_symbol, "imm16": tr.imm16,
            "x0": tr.x(0), "x1": tr.x(1), "ret": tr.ret, "function": tr.function, "guest": bool(tr.guest)}


GUEST_EXIT = "guest exit"   # the label of a guest's HVC (HCR_EL2.VM = 1): the stub's world switch ends the run


def format_trace_line(n: int, tr: Trap) -> str:
    sym = f" <{tr.caller_symbol}>" if tr.caller_symbol else ""
    if tr.guest:
        # the guest's x0 is its own hypercall number, not a host function ID; its return is the ERET back
        # into the guest at a later RKVM_HVC_VCPU_RUN, with the result the VMM left in the vCPU's x0
        ret = f" -> back in the guest x0={tr.ret:#x}" if tr.ret is not None else ""
        return (f"#{n:<4} CPU {tr.cpu}  {GUEST_EXIT}: HVC #{tr.imm16:#x} at guest PC {tr.caller:#x}  "
                f"x0={tr.x(0):#x} x1={tr.x(1):#x}{ret}")
    fn = f" {tr.function}" if tr.function else ""
    ret = f" -> x0={tr.ret:#x}" if tr.ret is not None else ""
    return (f"#{n:<4} CPU {tr.cpu}  HVC #{tr.imm16:#x} at {tr.caller:#x}{sym}  "
            f"x0={tr.x(0):#x}{fn} x1={tr.x(1):#x}{ret}")


def summarize(log: list[Trap]) -> list[dict]:
    rows = {}
    for tr in log:
        key = (tr.cpu, tr.imm16, GUEST_EXIT if tr.guest else (tr.function or f"{tr.x(0):#x}"))
        rows[key] = rows.get(key, 0) + 1
    return [{"cpu": c, "imm16": i, "function": f, "count": n} for (c, i, f), n in sorted(rows.items())]


def trace_collector(log: list[Trap], count: int | None, live: bool):
    """The callback of `hvc trace --args`: keep each trap (printed as it comes when `live`), stop at `count`."""

    def on_trap(tr: Trap) -> bool:
        if count is not None and len(log) >= count:
            return True
        log.append(tr)
        if live:
            gdb.write(format_trace_line(len(log), tr) + "\n")
        return count is not None and len(log) >= count
    return on_trap


def log_trace_rows(events: list[dict], entries_only: bool) -> list[dict]:
    """Entries (with the return that pairs with each) from the exception log, numbered."""
    rows, by_seq = [], {}
    for e in events:
        if e["kind"] == "entry":
            caller = (e["elr"] - 4) if e["class"] in ("hvc", "smc") and e["elr"] is not None else e["elr"]
            row = {"n": len(rows) + 1, "cpu": e["cpu"], "class": e["class"], "imm16": e["imm16"],
                   "caller": caller, "caller_symbol": e["caller_symbol"] or e["elr_symbol"], "from_el": e["from_el"],
                   "to_el": e["to_el"], "handler": e["pc"], "handler_symbol": e["pc_symbol"],
                   "psci_by_qemu": e["psci_by_qemu"], "returned_to": None, "inferred": e["inferred"],
                   "guest": exits.in_guest_by_address(e["from_el"], e["elr"])}
            rows.append(row)
            by_seq[(e["cpu"], e["seq"])] = row
        elif not entries_only and e.get("entry_seq") is not None:
            row = by_seq.get((e["cpu"], e["entry_seq"]))
            if row is not None:
                row["returned_to"] = e["pc"]
    return rows


def format_log_row(r: dict) -> str:
    sym = f" <{escape(r['caller_symbol'])}>" if r["caller_symbol"] else ""
    what = f"{r['class'].upper()} #{r['imm16']:#x}" if r["imm16"] is not None else r["class"].upper()
    if r.get("guest"):
        what, sym = f"{GUEST_EXIT}: {what}", ""   # a guest PC: the host's symbols do not name it
    cpu = "?" if r["cpu"] is None else r["cpu"]
    caller = "?" if r["caller"] is None else f"{r['caller']:#x}"
    line = f"#{r['n']:<4} CPU {cpu}{'~' if r['inferred'] else ' '} {what} at {caller}{sym}"
    if r["psci_by_qemu"]:
        return line + "  -> PSCI, answered by QEMU"
    if r["handler"] is not None:
        hsym = f" <{escape(r['handler_symbol'])}>" if r["handler_symbol"] else ""
        line += f"  -> EL{r['to_el']} {r['handler']:#x}{hsym}"
    if r["returned_to"] is not None:
        line += f"  returned to {r['returned_to']:#x}"
    return line


def summarize_log(rows: list[dict]) -> list[dict]:
    counts = {}
    for r in rows:
        caller = r["caller_symbol"] or (f"{r['caller']:#x}" if r["caller"] is not None else "?")
        key = (-1 if r["cpu"] is None else r["cpu"], r["class"], r["imm16"] if r["imm16"] is not None else -1,
               GUEST_EXIT if r.get("guest") else caller)
        counts[key] = counts.get(key, 0) + 1
    return [{"cpu": None if c < 0 else c, "class": k, "imm16": None if i < 0 else i, "caller": f, "count": n}
            for (c, k, i, f), n in sorted(counts.items())]


@only_when(STOPPED)
class RkvmHvcTrace(RkvmCommand):
    """Log every HVC into EL2 (and SMC with --smc) without stopping; a summary at the end.

Usage: rkvm hvc trace [--count N] [--seconds S] [--imm N] [--cpu N] [--smc] [--entries-only] [--json]
       rkvm hvc trace --args [--count N] [--seconds S] [--imm N] [--cpu N] [--entries-only] [--json]
Runs the guest until N traps were logged or S seconds passed (default: 20 traps, 30 s); Ctrl-C
ends it cleanly with the summary. By default the traps come from QEMU's exception log, on every CPU
and from reset if the guest is there, with no stop at all: the caller (ELR - 4) symbolized, the
immediate, the EL2 handler it entered, where its ERET returned. --smc adds SMCs (PSCI calls QEMU
answers itself show as such).
--args: breakpoints instead, for the register values the log does not carry: entries at
VBAR_EL2 + 0x400 with x0 (named: hyp-stub, rkvm and SMCCC/PSCI function IDs) and x1, returns at the
EL2 code's ERETs with the returned x0; --entries-only skips the returns (one stop per trap, not two).
Example:
  (gdb) rkvm hvc trace --count 2
  #1    CPU 0  HVC #0x4b at 0xffff800078540058 <rkvm_hvc+0x38>  -> EL2 0x4099c400 <rkvm_vec_lower64_sync>
        returned to 0xffff80007854005c   (one line on screen)
  (gdb) rkvm hvc trace --args --count 2
  #1    CPU 0  HVC #0x4b at 0xffff800078540058 <rkvm_hvc+0x38>  x0=0x524b0001 RKVM_HVC_PING x1=0x0 -> x0=0x524b564d
  CPU  imm16  function        count
  0    0x4b   RKVM_HVC_PING   2
  total 2 traps in 0.4 s"""

    name = "hvc trace"

    def add_arguments(self, p):
        p.add_argument("--count", type=int, default=None)
        p.add_argument("--seconds", type=seconds, default=None)
        p.add_argument("--imm", type=lambda s: parse_int(s, "immediate"))
        self.add_cpu_argument(p)
        p.add_argument("--entries-only", action="store_true")
        p.add_argument("--smc", action="store_true", help="SMCs too (from the exception log)")
        p.add_argument("--args", action="store_true", help="breakpoints, with x0/x1 and the returned x0")

    def run(self, args):
        check_filter(args.imm, args.cpu)
        count = args.count if args.count is not None else (None if args.seconds else 20)
        seconds = args.seconds if args.seconds is not None else 30.0
        if count is not None and count <= 0:
            raise RkvmError("--count must be positive")
        if not args.args:
            return self._from_log(args, count, seconds)
        if args.smc:
            raise RkvmError("--smc reads the exception log; with --args use 'rkvm smc catch' for SMC registers")
        if not seconds > 0:
            raise RkvmError("--seconds must be above 0")
        log: list[Trap] = []
        watch = TrapWatch(trace_collector(log, count, live=not args.json),
                          returns=NO_RETURNS if args.entries_only else PAIRED, deadline=Deadline(seconds),
                          trap_filter=TrapFilter(args.imm, args.cpu, classes=frozenset({esr.EC_HVC64})))
        start = time.monotonic()
        with catch_suspended("hvc trace"):
            watch.arm()
            try:
                continue_until(watch.deadline, quiet=args.json)  # Ctrl-C also ends it; the summary still stands
            finally:
                watch.disarm()
        elapsed = time.monotonic() - start
        return {"source": "breakpoints", "traps": [trace_row(n, tr) for n, tr in enumerate(log, 1)],
                "summary": summarize(log), "total": len(log), "seconds": elapsed,
                "complete": count is None or len(log) >= count}

    def _from_log(self, args, count, seconds):
        from gdb_rkvm.model import exclog
        from gdb_rkvm.live import el_log
        classes = frozenset({"hvc", "smc"} if args.smc else {"hvc"})
        r = el_log.trace(exclog.Filter(classes=classes, cpu=args.cpu, imm=args.imm), count, seconds,
                         keep_returns=not args.entries_only)
        rows = log_trace_rows([e.to_dict() for e in r.events], args.entries_only)
        if not args.json:
            for row in rows:
                gdb.write(format_log_row(row) + "\n")
        return {"source": "exception log", "traps": rows, "summary": summarize_log(rows), "total": len(rows),
                "seconds": r.seconds, "seen": r.seen, "stopped_by": r.stopped_by, "log_unread": r.log_unread,
                "complete": count is None or len(rows) >= count}

    def format(self, r, args):
        if r["source"] == "exception log":
            lines = [f"{'CPU':<4} {'class':<5} {'imm16':<6} {'caller':<28} count"]
            for s in r["summary"]:
                imm = f"{s['imm16']:#x}" if s["imm16"] is not None else "-"
                cpu = "?" if s["cpu"] is None else s["cpu"]
                lines.append(f"{cpu:<4} {s['class']:<5} {imm:<6} {escape(s['caller']):<28} {s['count']}")
            lines.append(f"total {r['total']} traps in {r['seconds']:.1f} s ({r['seen']} transitions read from the "
                         f"log, stopped by {r['stopped_by']})")
            if r["log_unread"]:
                lines.append(f"({r['log_unread'] >> 10} KiB of log written after the stop was asked: not read)")
            return "\n".join(lines)
        lines = [f"{'CPU':<4} {'imm16':<6} {'function':<22} count"]
        lines += [f"{s['cpu']:<4} {s['imm16']:<#6x} {s['function']:<22} {s['count']}" for s in r["summary"]]
        lines.append(f"total {r['total']} traps in {r['seconds']:.1f} s")
        return "\n".join(lines)
