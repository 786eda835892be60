"""The `rkvm` shell command: sessions (up, down, status, console, gdb) and doctor."""

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from gdb_rkvm.host import doctor

from gdb_rkvm.qemu import profiles, session
from gdb_rkvm.model.argtypes import seconds, tcp_port
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.paths import REPO, require_checkout


def _add_session_args(p):
    p.add_argument("--profile", default="lab", help="qemu_profiles/NAME.toml (default: lab)")
    p.add_argument("--smp", type=int, help="number of vCPUs (overrides the profile)")
    p.add_argument("--mode", choices=session.MODES, help="rkvm.ko mode= (lab profile)")
    p.add_argument("--append", default="", help="extra kernel command line")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a profile variable")
    p.add_argument("--no-ram-file", action="store_true",
                   help="keep guest RAM inside QEMU (physical reads then all go through the gdbstub)")


def _add_tcp_arg(p):
    p.add_argument("--tcp", nargs="?", const=0, type=tcp_port, metavar="PORT",
                   help="gdbstub on 127.0.0.1:PORT (a free port if none) instead of the session's private Unix "
                        "socket: any local user can then connect to it")


def _start(args, outlive: bool = False) -> session.Session:
    tcp = getattr(args, "tcp", None)
    sess = session.start(args.profile, mode=args.mode, smp=args.smp, append=args.append,
                         overrides=profiles.parse_overrides(args.set), outlive=outlive, tcp_port=tcp,
                         ram_file=not args.no_ram_file)
    if tcp is not None:
        print(f"rkvm: warning: the gdbstub listens on TCP {sess.gdb_address}: any local user can connect to it "
              "and run commands as you (QEMU's monitor); drop --tcp for a socket only you can reach", file=sys.stderr)
    return sess


def cmd_up(args):
    sess = _start(args, outlive=True)  # the user asked for a running session
    print(f"rkvm: QEMU pid {sess.pid} paused at reset; gdbstub {sess.gdb_address}; "
          f"serial log {sess.serial_log}")
    print("rkvm: attach with: gdb-multiarch -x rkvm.py   (end with: rkvm down)")
    return 0


def cmd_down(args):
    sess = session.stop()   # refuses (one line) to signal a pid that is not the session's QEMU
    print(f"rkvm: stopped QEMU pid {sess.pid}" if sess else "rkvm: no session")
    return 0


def cmd_status(args):
    sess = session.current()
    if args.json:
        print(json.dumps(None if sess is None else sess.__dict__, indent=2))
    elif sess is None:
        print("rkvm: no session")
    else:
        print(f"session  {sess.profile}: QEMU pid {sess.pid}, gdbstub {sess.gdb_address}")
        if sess.qmp_socket:
            print(f"qmp      {sess.qmp_socket} (QEMU: {session.qemu_status(sess) or 'no answer'})")
        if sess.ram_fd >= 0:
            print(f"ram      {sess.ram_size >> 20} MiB at PA {sess.ram_base:#x} in a file with no name "
                  f"(/proc/{sess.pid}/fd/{sess.ram_fd}, mode 0600)")
        print(f"serial   {sess.serial_log}")
        print(f"cmdline  {sess.kernel_cmdline}")
    return 0 if sess else 1


def cmd_console(args):
    """Attach the terminal to the guest's serial console. Ctrl-] leaves."""
    import select
    import socket
    import termios
    import tty

    sess = session.require()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sess.console_socket)
    except OSError as e:
        raise RkvmError(f"cannot reach the serial console at {sess.console_socket}: {e.strerror}") from None
    print("rkvm: connected to the guest console; Ctrl-] leaves", file=sys.stderr)
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd) if os.isatty(fd) else None
    try:
        if old:
            tty.setraw(fd)
        while True:
            ready, _, _ = select.select([fd, s], [], [])
            if s in ready:
                data = s.recv(4096)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if fd in ready:
                data = os.read(fd, 1024)
                if not data or b"\x1d" in data:
                    break
                s.sendall(data)
    finally:
        if old:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
        s.close()
    return 0


def cmd_gdb(args, gdb_args):
    """Start a session if none runs, run GDB on it; end the session after GDB if this command started it."""
    gdb_exe = shutil.which("gdb-multiarch") or shutil.which("gdb")
    if gdb_exe is None:
        raise RkvmError("gdb-multiarch not found: run 'make setup'")
    started = None
    if session.current() is None:
        started = _start(args, outlive=args.keep)
        print(f"rkvm: started QEMU pid {started.pid} (ends when GDB exits; --keep to keep it)")
    try:
        # GDB must get Ctrl-C (to interrupt the guest); we only wait for it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            rc = os.spawnv(os.P_WAIT, gdb_exe, [gdb_exe, "-q", "-x", str(REPO / "rkvm.py"), *gdb_args])
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        if started and not args.keep:
            session.stop(only=started)
    return rc


def cmd_doctor(args):
    rows = doctor.report()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            mark = "ok     " if r["ok"] else "MISSING"
            print(f"{mark} {r['name']:<24} {r['version'] or ('-> ' + r['fix'])}")
    return 0 if all(r["ok"] for r in rows) else 1


def cmd_profiles(args):
    for name in profiles.available():
        try:
            p = profiles.load(name)
            print(f"{name:<12} {p.description}")
        except RkvmError as e:
            print(f"{name:<12} BROKEN: {e}")
    return 0


def cmd_triage(args):
    from gdb_rkvm.host.triage import run
    code, rep = run.triage(run.options_from_args(args))
    if args.json:
        print(json.dumps({k: v for k, v in rep.items() if k != "snapshot"}, indent=2))
    elif code != 2:   # a failed triage says why once, on stderr, below
        print(f"rkvm triage: {rep['status']}: {escape(rep['reason'])}")
        for f in rep["findings"]:
            cpus = f" (CPU {', '.join(map(str, f['cpus']))})" if f["cpus"] else ""
            print(f"  {f['severity']:<7} {f['code']}{cpus}: {escape(f['summary'])}")
    if not args.json:
        print(f"rkvm triage: report in {Path(args.out) / 'report.md'}")
    if code == 2:
        print(f"rkvm triage: {escape(rep['reason'])}", file=sys.stderr)
    return code


def cmd_tour(args):
    from gdb_rkvm.host.tour import run_tour
    return run_tour(all_steps=args.all)


def cmd_shell(args):
    from gdb_rkvm.host.shell import run_shell
    return run_shell(args)


# Commands that read only what they are given (no lab, profiles or rkvm.py): they work from any install.
CHECKOUT_FREE = ("lint-el2",)


def cmd_lint_el2(args):
    from gdb_rkvm.model import el2lint
    report = el2lint.lint(args.file, args.symbol)
    print(el2lint.format_json(report) if args.json else el2lint.format_text(report))
    return el2lint.exit_code(report)


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block): `rkvm triage: argument --timeout: ...`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rkvm", description="gdb-rkvm: AArch64 EL1/EL2 debugging on QEMU")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start QEMU paused with its gdbstub on a Unix socket only you can reach")
    _add_session_args(p)
    _add_tcp_arg(p)
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="end the session's QEMU").set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="show the running session")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    sub.add_parser("console", help="type into the guest's serial console (Ctrl-] leaves)").set_defaults(
        func=cmd_console)
    p = sub.add_parser("gdb", help="rkvm up (if needed) + gdb -x rkvm.py; extra args go to GDB")
    _add_session_args(p)
    _add_tcp_arg(p)
    p.add_argument("--keep", action="store_true", help="keep the session running after GDB exits")
    p.set_defaults(func=cmd_gdb)
    p = sub.add_parser("doctor", help="what is installed and built, with versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
    sub.add_parser("profiles", help="list QEMU profiles").set_defaults(func=cmd_profiles)
    p = sub.add_parser("tour", help="a guided walk through the EL transitions on the live lab, a step at a time")
    p.add_argument("--all", action="store_true", help="every step without pausing (what a non-terminal stdin gets)")
    p.set_defaults(func=cmd_tour)
    p = sub.add_parser("shell", help="an interactive console on a session (completion, toolbar, serial output)")
    _add_session_args(p)
    p.set_defaults(func=cmd_shell)
    p = sub.add_parser("triage", help="boot, run, snapshot every CPU and name the fault in a report")
    _add_session_args(p)
    p.add_argument("--until", default="auto", help="auto | panic | hang | event:NAME | timeout")
    p.add_argument("--timeout", type=seconds, default=60.0, help="seconds the guest may run (default 60)")
    p.add_argument("--out", default="build/triage", help="directory for report.md and report.json")
    p.add_argument("--run", help="a shell command typed into the guest once its shell is up")
    p.add_argument("--settle", type=seconds, default=5.0, help="seconds to watch after --run (default 5)")
    p.add_argument("--attach", metavar="SOCKET|HOST:PORT",
                   help="triage a QEMU someone else started (its gdbstub: a session's gdb_address)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_triage)
    p = sub.add_parser("lint-el2", help="check EL2 code in an ELF before it is copied and run with the MMU off "
                                        "(exit 0 clean, 1 findings, 2 bad input)")
    p.add_argument("file", help="a .o, a .ko or a linked ELF")
    p.add_argument("--symbol", metavar="START[:END]", help="the copied range: START to END (a symbol or +LENGTH)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lint_el2)
    return parser


class Terminated(BaseException):
    """SIGTERM, as an exception: `finally` blocks end QEMU and GDB. Not a KeyboardInterrupt, which
    `rkvm shell` takes as the user's Ctrl-C (interrupt the guest, go on)."""


def _terminate_as_interrupt(signum, frame):
    raise Terminated


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command not in CHECKOUT_FREE:
            require_checkout()
        if args.command == "gdb":
            if args.smp is not None:
                profiles.check_smp(args.smp)
            return cmd_gdb(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if getattr(args, "smp", None) is not None:
            profiles.check_smp(args.smp)  # before anything starts: one line, exit 2
        return args.func(args)
    except RkvmError as e:
        print(f"rkvm {args.command}: {escape(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:   # a file, socket or process the system refused: one line, not a traceback
        where = f" ({escape(str(e.filename))})" if e.filename else ""
        print(f"rkvm {args.command}: {escape(e.strerror or str(e))}{where}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated):
        print(f"rkvm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
