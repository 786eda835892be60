import contextlib
import time

import gdb

from gdb_rkvm.model.argtypes import seconds
from gdb_rkvm.arch.vectors import LOWER_A64_SYNC
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.live import el2_symbols, el2_traps, symbol_files
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE, StopCheckBreakpoint, notice
from gdb_rkvm.live.resume import Deadline, continue_until
from gdb_rkvm.commands.base import CONNECTED, STOPPED, RkvmCommand, only_when, parse_int



class HvcFilter:
    def __init__(self, imm=None, cpu=None, from_el=None):
        self.imm, self.cpu, self.from_el = imm, cpu, from_el

    def matches(self, tr: dict) -> bool:
        if not (tr["is_hvc"] or tr.get("is_smc")):
            return False
        if self.imm is not None and tr["imm16"] != self.imm:
            return False
        if self.cpu is not None and tr["cpu"] != self.cpu:
            return False
        return self.from_el is None or tr["from_el"] == self.from_el

    def describe(self) -> str:
        parts = [f"imm16 == {self.imm:#x}" if self.imm is not None else "",
                 f"CPU {self.cpu}" if self.cpu is not None else "",
                 f"from EL{self.from_el}" if self.from_el is not None else ""]
        return ", ".join(p for p in parts if p) or "every HVC"


class HvcEntryBreakpoint(StopCheckBreakpoint):
    """At VBAR_EL2 + 0x400 (PA): decides in stop() whether this entry is one the owner wants."""

    def __init__(self, pa: int, owner):
        super().__init__(f"*{pa:#x}", internal=True)
        self.silent = True
        self.pa, self.owner = pa, owner

    def check(self):
        try:
            return self.owner.on_entry(self)
        except (gdb.error, RkvmError) as e:
            gdb.write(f"rkvm: hvc breakpoint at {self.pa:#x}: {e}\n")
            return True


class SmcSiteBreakpoint(StopCheckBreakpoint):
    """On an SMC instruction of the kernel (EL1 VA, not executed yet): decides in stop()."""

    def __init__(self, va: int, imm: int, owner):
        super().__init__(f"*{va:#x}", internal=True)
        self.silent = True
        self.va, self.imm, self.owner = va, imm, owner

    def check(self):
        try:
            return self.owner.on_smc(self)
        except (gdb.error, RkvmError) as e:
            gdb.write(f"rkvm: smc breakpoint at {self.va:#x}: {e}\n")
            return True


def smc_sites() -> list[tuple[int, int]]:
    """(VA, imm16) of the kernel's SMC instructions (vmlinux's text outside init/exit), at the KASLR slide."""
    from gdb_rkvm.model import elf_symtab
    from gdb_rkvm.arch import smccc
    vmlinux, slide = symbol_files.vmlinux_at_slide("the SMC instructions")
    sites = elf_symtab.conduit_sites(vmlinux, smccc.SMC_BITS)
    if not sites:
        raise RkvmError(f"no SMC instruction found in {vmlinux}")
    return [((va + slide) & t.MASK64, imm) for va, imm in sites]


class HvcCatch:
    """`rkvm hvc catch`: stop at HVC entries to EL2 that match a filter; follows VBAR_EL2 at every stop.
    With smc=True also at the kernel's SMC instructions (`hvc catch --smc`, `smc catch`)."""

    def __init__(self, flt: HvcFilter, hvc: bool = True, smc: bool = False):
        self.filter, self.bps, self.last = flt, {}, None
        self.suspended = False
        self.hinted = False
        self.hvc, self.smc, self.smc_bps = hvc, smc, []
        gdb.events.stop.connect(self._on_stop)
        el2_symbols.InstallHookBreakpoint.listeners.append(self._vbar_moved)

    def _vbar_moved(self, vbar: int) -> bool:
        """rkvm.ko installed new vectors: stop (and re-arm at that stop) unless already covered."""
        if self.suspended or vbar + LOWER_A64_SYNC in self.bps:
            return False
        notice(f"rkvm: VBAR_EL2 changed to {vbar:#x}: hvc catch moves there (continue to go on)")
        return True

    def arm(self) -> list[int]:
        if self.smc and not self.smc_bps:
            self.smc_bps = [SmcSiteBreakpoint(va, imm, self) for va, imm in smc_sites()]
        if not self.hvc:
            return []
        wanted = {v + LOWER_A64_SYNC for v in el2_traps.vbar_el2_by_cpu().values()}
        for pa in set(self.bps) - wanted:
            self.bps.pop(pa).delete()
        for pa in wanted - set(self.bps):
            self.bps[pa] = HvcEntryBreakpoint(pa, self)
            self.bps[pa].enabled = not self.suspended
        return sorted(self.bps)

    def suspend(self):
        """Out of the way of a command that resumes with breakpoints of its own (trace-el, hvc trace,
        step-el2): its run is not cut short by this catch's stop."""
        self.suspended = True
        for bp in self.bps.values():
            bp.enabled = False

    def resume(self):
        self.suspended = False
        try:
            self.arm()
        except (gdb.error, RkvmError):
            pass
        for bp in self.bps.values():
            bp.enabled = True

    def on_smc(self, bp) -> bool:
        tr = el2_traps.trap_at_smc(bp.va, bp.imm)
        if not self.filter.matches(tr):
            return False
        self.last = tr
        return True

    def on_entry(self, bp) -> bool:
        tr = el2_traps.trap_at_entry()
        if not self.filter.matches(tr):
            return False
        self.last = tr
        return True

    def _on_stop(self, event):
        if self.suspended:
            return
        ours = list(self.bps.values()) + self.smc_bps
        hit = isinstance(event, gdb.BreakpointEvent) and any(b in ours for b in event.breakpoints)
        if hit and self.last is not None:
            gdb.write(el2_traps.format_trap(self.last) + "\n")
            if not self.hinted:
                self.hinted = True
                try:
                    other = t.cpu_at_el1()
                except (gdb.error, RkvmError):
                    other = None
                if other is not None:
                    gdb.write(f"  (GDB reads memory through the selected CPU, now at EL2 with its MMU off: to print "
                              f"kernel variables select CPU {other}, at EL1, with 'thread {other + 1}'; rkvm "
                              "commands do that by themselves)\n")
        try:
            self.arm()  # VBAR_EL2 may have moved while the guest ran
        except (gdb.error, RkvmError):
            pass

    def disarm(self):
        for bp in list(self.bps.values()) + self.smc_bps:
            if bp.is_valid():
                bp.delete()
        self.bps.clear()
        self.smc_bps = []
        gdb.events.stop.disconnect(self._on_stop)
        if self._vbar_moved in el2_symbols.InstallHookBreakpoint.listeners:
            el2_symbols.InstallHookBreakpoint.listeners.remove(self._vbar_moved)


def check_filter(imm: int | None, cpu: int | None) -> None:
    """Refuse filters that can never match: imm16 is 16 bits (ESR_EL2.ISS[15:0] of an HVC64), and
    the CPU must be one of this target's."""
    if imm is not None and not 0 <= imm <= 0xFFFF:
        raise RkvmError(f"--imm {imm:#x}: an HVC's immediate is 16 bits (0 to 0xffff), so this would never match")
    if cpu is not None:
        t.thread_for_cpu(cpu)  # "no CPU 9 (CPUs: 0, 1)"


def _hvc_catch() -> HvcCatch | None:
    return STATE.hvc_catch


@contextlib.contextmanager
def catch_suspended(command: str):
    """Run a block that resumes the guest with an armed `rkvm hvc catch` paused, and say so after."""
    catch = _hvc_catch()
    if catch is None or catch.suspended:
        yield
        return
    catch.suspend()
    try:
        yield
    finally:
        catch.resume()
        notice(f"rkvm: the armed hvc catch ({catch.filter.describe()}) was paused while {command} ran "
               "(its stops would have cut the run short); it is armed again")


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
        old = _hvc_catch()
        if old is not None:
            old.disarm()
            STATE.hvc_catch = None
        if args.off:
            return {"armed": False, "addresses": []}
        smc = self.smc or getattr(args, "smc", False)
        catch = HvcCatch(HvcFilter(args.imm, args.cpu, getattr(args, "from_el", None)), hvc=self.hvc, smc=smc)
        try:
            addresses = catch.arm()
        except BaseException:
            catch.disarm()
            raise
        STATE.hvc_catch = catch
        return {"armed": True, "filter": catch.filter.describe(), "addresses": addresses,
                "smc_sites": [bp.va for bp in catch.smc_bps]}

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
        catch = _hvc_catch()
        if catch is None or catch.last is None:
            raise RkvmError("no HVC caught yet (arm one with 'rkvm hvc catch')")
        return catch.last

    def format(self, tr, args):
        return el2_traps.format_trap(tr)


class HvcTracer:
    """`rkvm hvc trace`: log entries and returns without stopping, until a count or a time is reached."""

    def __init__(self, flt: HvcFilter, count: int | None, live: bool = True, deadline=None, returns: bool = True):
        self.filter, self.count, self.live, self.deadline, self.returns = flt, count, live, deadline, returns
        self.entries, self.pending, self.log, self.symbols = 0, {}, [], {}
        self.bps = []
        self.done = False

    def arm(self):
        vbars = set(el2_traps.vbar_el2_by_cpu().values())
        if not vbars:
            raise RkvmError("VBAR_EL2 is not set on any CPU yet: boot further first")
        for v in vbars:
            self.bps.append(HvcEntryBreakpoint(v + LOWER_A64_SYNC, self))
            for pa in el2_traps.eret_addresses(v) if self.returns else []:
                self.bps.append(HvcEntryBreakpoint(pa, self))
        self.entry_pas = {v + LOWER_A64_SYNC for v in vbars}

    def on_entry(self, bp) -> bool:
        if self.deadline is not None and self.deadline.passed():
            self.done = True
            return True
        cpu = el2_traps.current_cpu()
        if bp.pa in self.entry_pas:
            if self.done:
                return False
            # the hot path: five registers, nothing else (symbols are looked up once per caller)
            r = t.read_current(["ESR_EL2", "ELR_EL2", "SPSR_EL2", "x0", "x1"])
            tr = el2_traps.quick_trap(cpu, r)
            if not self.filter.matches(tr):
                return False
            self.entries += 1
            if self.returns:
                self.pending[cpu] = tr
                return False
            return self._record(cpu, tr, None)
        tr = self.pending.pop(cpu, None)
        if tr is None:
            return False
        return self._record(cpu, tr, t.read_current(["x0"])["x0"])

    def _record(self, cpu: int, tr: dict, ret: int | None) -> bool:
        if tr["caller"] not in self.symbols:
            self.symbols[tr["caller"]] = t.symbol_at(tr["caller"])
        rec = {"n": len(self.log) + 1, "cpu": cpu, "caller": tr["caller"], "caller_symbol": self.symbols[tr["caller"]],
               "imm16": tr["imm16"], "x0": tr["x0"], "x1": tr["x1"], "ret": ret,
               "function": el2_traps.names_for_function(tr["x0"])}
        self.log.append(rec)
        if self.live:
            gdb.write(format_trace_line(rec) + "\n")
        if self.count is not None and len(self.log) >= self.count:
            self.done = True
            return True
        return False

    def disarm(self):
        for bp in self.bps:
            if bp.is_valid():
                bp.delete()
        self.bps = []


def format_trace_line(r: dict) -> str:
    sym = f" <{r['caller_symbol']}>" if r["caller_symbol"] else ""
    fn = f" {r['function']}" if r["function"] else ""
    ret = f" -> x0={r['ret']:#x}" if r["ret"] is not None else ""
    return (f"#{r['n']:<4} CPU {r['cpu']}  HVC #{r['imm16']:#x} at {r['caller']:#x}{sym}  "
            f"x0={r['x0']:#x}{fn} x1={r['x1']:#x}{ret}")


def summarize(log: list[dict]) -> list[dict]:
    rows = {}
    for r in log:
        key = (r["cpu"], r["imm16"], r["function"] or f"{r['x0']:#x}")
        rows[key] = rows.get(key, 0) + 1
    return [{"cpu": c, "imm16": i, "function": f, "count": n} for (c, i, f), n in sorted(rows.items())]


def log_trace_rows(events: list[dict], entries_only: bool) -> list[dict]:
    """Entries (with the return that pairs with each) from the exception log, numbered."""
    rows, by_seq = [], {}
    for e in events:
        if e["kind"] == "entry":
            caller = (e["elr"] - 4) if e["class"] in ("hvc", "smc") and e["elr"] is not None else e["elr"]
            row = {"n": len(rows) + 1, "cpu": e["cpu"], "class": e["class"], "imm16": e["imm16"],
                   "caller": caller, "caller_symbol": e["caller_symbol"] or e["elr_symbol"], "from_el": e["from_el"],
                   "to_el": e["to_el"], "handler": e["pc"], "handler_symbol": e["pc_symbol"],
                   "psci_by_qemu": e["psci_by_qemu"], "returned_to": None, "inferred": e["inferred"]}
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
        key = (-1 if r["cpu"] is None else r["cpu"], r["class"], r["imm16"] if r["imm16"] is not None else -1,
               r["caller_symbol"] or (f"{r['caller']:#x}" if r["caller"] is not None else "?"))
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
        deadline = Deadline(seconds)
        tracer = HvcTracer(HvcFilter(args.imm, args.cpu), count, live=not args.json, deadline=deadline,
                           returns=not args.entries_only)
        if not seconds > 0:
            raise RkvmError("--seconds must be above 0")
        start = time.monotonic()
        with catch_suspended("hvc trace"):
            tracer.arm()
            try:
                continue_until(deadline, quiet=args.json)  # Ctrl-C also ends it; the summary still stands
            finally:
                tracer.disarm()
        elapsed = time.monotonic() - start
        return {"source": "breakpoints", "traps": tracer.log, "summary": summarize(tracer.log),
                "total": len(tracer.log), "seconds": elapsed,
                "complete": count is None or len(tracer.log) >= count}

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
