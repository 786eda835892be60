"""The triage run: QEMU + gdb-multiarch over GDB/MI, stop conditions, snapshot, diagnosis, report.

Exit codes: 0 healthy, 1 findings, 2 the triage itself failed. No QEMU or GDB outlives it.
"""

import json
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gdb_rkvm.model import guest_text, stub_abi
from gdb_rkvm.model.snapshot import Snapshot

from gdb_rkvm.qemu import profiles, qemu_process, session
from gdb_rkvm.arch import vectors
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import check_dir_safe, write_atomic
from gdb_rkvm.host.mi import GdbMi
from gdb_rkvm.host.triage import report, rules

READY_MARKER = "RKVM-LAB: shell ready"
UNTIL = ("auto", "panic", "hang", "timeout")


@dataclass
class TriageOptions:
    profile: str = "lab"
    mode: str | None = None
    append: str = ""
    until: str = "auto"
    timeout: float = 60.0
    out: Path = Path("triage-out")
    run: str | None = None              # a guest shell command typed once the shell is up
    settle: float = 5.0                 # seconds to watch after --run before the snapshot
    quiet_seconds: float = 15.0         # console silence that counts as a hang
    overrides: dict = field(default_factory=dict)
    smp: int | None = None
    attach: str | None = None           # a gdbstub someone else started: Unix socket path or HOST:PORT
    ram_file: bool = True               # guest RAM in the session's file (physical reads without the gdbstub)


class Watch:
    """What the guest does between slices: console progress and per-CPU PC samples."""

    def __init__(self, sess: session.Session):
        self.sess, self.size, self.last_change = sess, 0, time.monotonic()
        self.samples: list[dict] = []

    def console(self) -> str:
        if not self.sess.serial_log:  # attached to someone else's QEMU: no console to watch
            return ""
        try:
            return Path(self.sess.serial_log).read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def tick(self) -> None:
        if not self.sess.serial_log:
            self.last_change = time.monotonic()
            return
        size = Path(self.sess.serial_log).stat().st_size if Path(self.sess.serial_log).exists() else 0
        if size != self.size:
            self.size, self.last_change = size, time.monotonic()

    def silent_for(self) -> float:
        return time.monotonic() - self.last_change

    def sample(self, mi: GdbMi) -> dict:
        cpus = mi.json("rkvm cpus", timeout=60)["cpus"]
        s = {c["cpu"]: (c["el"], c["pc"], c["vbar_el2"]) for c in cpus}
        self.samples.append(s)
        return s

    def el2_stuck(self) -> dict:
        """CPUs at EL2 inside their vector table (or on the same PC) in the last two samples."""
        if len(self.samples) < 2:
            return {}
        a, b = self.samples[-2], self.samples[-1]
        out = {}
        for n, (el, pc, vbar) in b.items():
            if el != 2 or n not in a or a[n][0] != 2:
                continue
            if (vbar and vectors.contains(vbar, pc) and vectors.contains(vbar, a[n][1])) or pc == a[n][1]:
                out[n] = pc
        return out

    def el1_stuck(self) -> dict:
        if len(self.samples) < 3:
            return {}
        last = self.samples[-3:]
        return {n: pc for n, (el, pc, _) in last[-1].items()
                if el == 1 and all(s.get(n, (0, None))[1] == pc for s in last)}


def _panic_message(mi: GdbMi, watch: Watch, function: str, stop: dict) -> dict:
    fmt = ""
    try:
        out = mi.check("x/s $x0") if function == "panic" else ""
        m = re.search(r':\s+"(.*)"', out)
        fmt = guest_text.gdb_unescape(m.group(1)) if m else ""
    except RkvmError:
        pass
    log = watch.console().splitlines()
    message = fmt
    if "%" in fmt or not fmt:
        # let the kernel print its own line, then take it from the console
        mi.run_for(1.5)
        log = watch.console().splitlines()
        lines = [x for x in log if "Kernel panic - not syncing:" in x or "Internal error:" in x]
        if lines:
            message = guest_text.escape(lines[-1].split("Kernel panic - not syncing:")[-1].strip())
    try:
        cpu = int(stop.get("thread-id")) - 1  # QEMU: thread n is CPU n-1
    except (TypeError, ValueError):
        cpu = None
    return {"message": message or "(no message)", "function": function, "cpu": cpu, "log": []}


def _kernel_log(mi: GdbMi, watch: Watch) -> tuple[list[str], str]:
    try:
        res = mi.console("lx-dmesg", timeout=60)
        if res.ok and res.output.strip():
            return [guest_text.escape(x) for x in res.output.splitlines()[-200:]], "the kernel's log buffer (lx-dmesg)"
    except RkvmError:
        pass
    return [guest_text.escape(x) for x in watch.console().splitlines()[-200:]], "the serial console"


def _drive(mi: GdbMi, sess: session.Session, opts: TriageOptions, ctx: dict) -> None:
    """Run the guest in slices until a stop condition; fill ctx with what was seen."""
    watch = Watch(sess)
    ctx["watch"] = watch
    for fn in ("panic", "die"):
        mi.console(f"break {fn}")
    deadline = time.monotonic() + opts.timeout
    typed_at = None
    while True:
        try:
            stop = mi.run_for(min(2.0, max(0.2, deadline - time.monotonic())))
        except RkvmError as e:
            if not sess.alive():
                raise RkvmError("QEMU is gone (killed or crashed) during the run") from None
            raise RkvmError(f"the run failed: {e}") from None
        watch.tick()
        func = (stop.get("frame") or {}).get("func")
        if stop.get("reason") == "breakpoint-hit" and func in ("panic", "die"):
            ctx["stop"] = f"breakpoint on {func}()"
            ctx["panic"] = _panic_message(mi, watch, func, stop)
            return
        if stop.get("reason") == "exited" or "exited" in str(stop.get("reason", "")):
            raise RkvmError("the guest exited")
        if not sess.alive():
            raise RkvmError("QEMU is gone (killed or crashed) during the run")
        console = watch.console()
        if opts.run and typed_at is None and READY_MARKER in console and "/ # " in console.split(READY_MARKER, 1)[1]:
            # the connection stays open (ctx["console"]): QEMU takes typed bytes only as fast as the
            # UART's FIFO drains, and drops what is unread when the client goes away
            ctx["console"] = session.SerialConsole(sess)
            ctx["console"].send(opts.run + "\n")
            typed_at = time.monotonic()
        watch.sample(mi)
        stuck = watch.el2_stuck()
        if stuck and opts.until in ("auto", "hang"):
            ctx["stop"] = f"CPU {', '.join(map(str, stuck))} stuck at EL2"
            ctx["el2_stuck"] = stuck
            return
        el1 = watch.el1_stuck()
        if el1 and opts.until == "hang":
            ctx["stop"], ctx["el1_stuck"] = "a CPU's PC stopped moving", list(el1)
            ctx["el1_stuck_pc"] = {str(k): v for k, v in el1.items()}
            return
        if opts.until in ("auto", "hang") and watch.silent_for() > opts.quiet_seconds and READY_MARKER not in console:
            ctx["stop"] = f"no console output for {watch.silent_for():.0f} s"
            ctx["console_silent"] = watch.silent_for()
            ctx["last_console_line"] = guest_text.escape((console.strip().splitlines() or [""])[-1])
            return
        if opts.until == "auto" and READY_MARKER in console and not opts.run:
            ctx["stop"] = "the guest's shell is up (boot finished)"
            return
        if opts.until == "auto" and typed_at is not None and time.monotonic() - typed_at > opts.settle:
            ctx["stop"] = f"{opts.settle:g} s after running {opts.run!r}"
            return
        if time.monotonic() >= deadline:
            ctx["stop"] = f"timeout ({opts.timeout:g} s)"
            if opts.until in ("panic", "hang"):
                ctx["timed_out"] = True
            return


def prepare_out(out: Path) -> Path:
    """--out as a directory we can write reports into safely (created if missing); one-line error if not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RkvmError(f"--out {out}: not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RkvmError(f"--out {out}: cannot create it: {e.strerror}") from None
    check_dir_safe(out, f"--out {out}")
    return out


def _save_serial_log(sess_dir: Path, out: Path) -> None:
    """The triage's serial console log, kept beside the report (its session directory is removed)."""
    try:
        data = (sess_dir / "serial.log").read_bytes()
    except OSError:
        return
    try:
        write_atomic(out / "serial.log", data)
    except OSError:
        pass


def _probe(gdb_address: str, timeout: float = 3.0) -> None:
    """A gdbstub to attach to must accept a connection (a Unix socket path or HOST:PORT): say so at
    once instead of after GDB's own retries. (QEMU's gdbstub takes the next client once this probe
    has closed.)"""
    try:
        if "/" in gdb_address and ":" not in gdb_address:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(gdb_address)
        else:
            host, _, port = gdb_address.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=timeout):
                pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        shown = guest_text.escape(gdb_address)
        raise RkvmError(f"--attach {shown}: cannot connect to QEMU's gdbstub at {shown} ({why}); "
                        "give the socket path or HOST:PORT of QEMU's -gdb option") from None


def triage(opts: TriageOptions) -> tuple[int, dict]:
    """Run one triage; returns (exit code, report dict). Always writes a report into opts.out.

    The QEMU it boots has a session directory of its own, made for this run (mkdtemp: private, unique)
    and removed after it: a triage never touches another session's directory or QEMU, so two triages
    (or a triage and `rkvm up`) can run at once."""
    out = prepare_out(opts.out)
    sess_dir = Path(tempfile.mkdtemp(prefix="rkvm-triage-"))
    run_info = {"profile": opts.profile, "mode": opts.mode, "until": opts.until, "timeout": opts.timeout,
                "run": opts.run}
    ctx: dict = {}
    snap = None
    sess = None
    mi = None
    old_env = os.environ.get("RKVM_SESSION_DIR")
    os.environ["RKVM_SESSION_DIR"] = str(sess_dir)
    try:
        if opts.until not in UNTIL and not opts.until.startswith("event:"):
            raise RkvmError(f"--until {guest_text.escape(opts.until)}: expected one of {', '.join(UNTIL)} "
                            "or event:NAME")
        if opts.until.startswith("event:") and opts.until[6:] not in stub_abi.EVENTS:
            raise RkvmError(f"--until {guest_text.escape(opts.until)}: no such rkvm.ko event (one of: "
                            f"{', '.join('event:' + e for e in sorted(stub_abi.EVENTS))})")
        vmlinux = profiles.load(opts.profile, opts.overrides).gdb.get("vmlinux", "")
        if not vmlinux or not Path(vmlinux).is_file():
            raise RkvmError(f"vmlinux not found: {vmlinux or '(none in the profile)'} (triage needs kernel symbols; "
                            "--set vmlinux=PATH)")
        if opts.attach and opts.run:
            raise RkvmError("--run types into a console; an --attach'ed QEMU's console is not ours")
        if opts.attach:
            attached = session.external(opts.attach, opts.profile, opts.overrides)
            _probe(attached.gdb_address)
            os.environ["RKVM_ATTACH"] = json.dumps(attached.__dict__)
        else:
            sess = session.start(opts.profile, mode=opts.mode, smp=opts.smp, append=opts.append,
                                 overrides=opts.overrides, directory=sess_dir, ram_file=opts.ram_file)
            run_info["cmdline"] = sess.kernel_cmdline
        mi = GdbMi()
        if "attached to" not in mi.startup_output:
            raise RkvmError("GDB did not attach: " + (mi.startup_output.strip().splitlines() or ["no output"])[-1])
        if opts.attach:
            sess = attached
        watch = mi.console("rkvm psci --watch", timeout=60)   # the kernel's SMCCC calls, from here on
        if not watch.ok:
            ctx["psci_watch"] = watch.error
        if opts.until.startswith("event:"):
            res = mi.console(f"rkvm run-to {opts.until[6:]} --timeout {opts.timeout:g}", timeout=opts.timeout + 30)
            if not res.ok:
                raise RkvmError(res.error)
            ctx["stop"] = f"rkvm.ko event {opts.until[6:]}"
            ctx["watch"] = Watch(sess)
        else:
            _drive(mi, sess, opts, ctx)
        if not sess.alive():
            raise RkvmError("QEMU is gone (killed or crashed) during the run")
        snap = Snapshot.from_json(mi.json("rkvm snapshot", timeout=120))
        ctx["kernel_log"], ctx["kernel_log_source"] = _kernel_log(mi, ctx["watch"])
        findings = rules.diagnose(snap, ctx)
        status = "findings" if findings else "healthy"
        reason = (f"{len(findings)} finding(s): {', '.join(sorted({f.code for f in findings}))}"
                  if findings else "no fault found")
        if ctx.get("timed_out") and not findings:
            reason = f"no {opts.until} within {opts.timeout:g} s; no fault found"
        rep = report.build(status, reason, findings, snap, ctx, run_info)
        code = 1 if findings else 0
    except (RkvmError, OSError) as e:
        reason = str(e)
        if sess is not None and not sess.alive() and "QEMU is gone" not in reason:
            reason = f"QEMU is gone (killed or crashed) during the run ({reason})"
        rep = report.build("failed", reason, [], snap, ctx, run_info)
        code = 2
    finally:
        if ctx.get("console") is not None:
            ctx["console"].close()
        if mi is not None:
            mi.close()
        os.environ.pop("RKVM_ATTACH", None)
        if sess is not None and not sess.external:
            try:
                session.stop(sess_dir, only=sess)
            except (RkvmError, OSError):
                pass   # the report is still written; QEMU is ended below either way
            finally:
                if sess.identity_problem() is None:   # still our QEMU (never a reused pid)
                    qemu_process.terminate(sess.pid)
        if old_env is None:
            os.environ.pop("RKVM_SESSION_DIR", None)
        else:
            os.environ["RKVM_SESSION_DIR"] = old_env
        _save_serial_log(sess_dir, out)
        shutil.rmtree(sess_dir, ignore_errors=True)   # made by this run (mkdtemp), nobody else's
    try:
        report.write(out, rep)
    except OSError as e:
        raise RkvmError(f"cannot write the report into {out}: {e.strerror}") from None
    return code, rep


def options_from_args(args) -> TriageOptions:
    return TriageOptions(profile=args.profile, mode=args.mode, append=args.append, until=args.until,
                         timeout=args.timeout, out=Path(args.out), run=args.run, settle=args.settle,
                         overrides=profiles.parse_overrides(args.set), smp=args.smp, attach=args.attach,
                         ram_file=not getattr(args, "no_ram_file", False))
