"""A lab session: one QEMU, paused at reset, gdbstub on loopback, serial console on a socket.

session.json in the session directory is the only record; any `rkvm` command (and rkvm.py
inside GDB) finds the running session through it.
"""

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import profiles, qemu_process
from .errors import RkvmError
from .paths import session_dir, write_atomic

MODES = ("good", "vmalloc", "one-cpu", "nostack")


@dataclass
class Session:
    """What `rkvm up` started, as written to session.json."""

    pid: int
    gdb_port: int
    serial_log: str
    console_socket: str
    qemu_log: str
    vmlinux: str
    gdb_scripts: str
    module_dirs: list
    profile: str
    kernel_cmdline: str
    argv: list = field(default_factory=list)
    started_at: float = 0.0
    host: str = "127.0.0.1"
    external: bool = False   # a QEMU we did not start (rkvm triage --attach): never ours to end

    @property
    def gdb_address(self) -> str:
        return f"{self.host}:{self.gdb_port}"

    def alive(self) -> bool:
        if self.external:
            return True
        return qemu_process.alive(self.pid) and qemu_process.is_qemu(self.pid)


def _json_path(directory: Path | None = None) -> Path:
    return (directory or session_dir()) / "session.json"


def current(directory: Path | None = None) -> Session | None:
    """The running session, or None. A record whose QEMU is gone is removed."""
    path = _json_path(directory)
    try:
        data = json.loads(path.read_text())
        sess = Session(**data)
    except (OSError, ValueError, TypeError):
        return None
    if not sess.alive():
        path.unlink(missing_ok=True)
        return None
    return sess


def external(address: str, profile_name: str = "lab", overrides: dict | None = None) -> Session:
    """A Session for a gdbstub someone else started (HOST:PORT), with the profile's symbols."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RkvmError(f"--attach {address}: expected HOST:PORT")
    profile = profiles.load(profile_name, overrides)
    return Session(pid=0, gdb_port=int(port), serial_log="", console_socket="", qemu_log="",
                   vmlinux=profile.gdb.get("vmlinux", ""), gdb_scripts=profile.gdb.get("scripts", ""),
                   module_dirs=profile.gdb.get("module_dirs", []), profile=profile.name, kernel_cmdline="",
                   host=host or "127.0.0.1", external=True)


def from_environment() -> Session | None:
    """The session GDB should use: RKVM_ATTACH (set by `rkvm triage --attach`) or the running one."""
    attach = os.environ.get("RKVM_ATTACH")
    if attach:
        return Session(**json.loads(attach))
    return current()


def require(directory: Path | None = None) -> Session:
    sess = current(directory)
    if sess is None:
        raise RkvmError("no session: start one with 'rkvm up' (or 'make up')")
    return sess


def _check_files(profile: profiles.Profile) -> None:
    for key in ("kernel", "initrd"):
        value = profile.machine.get(key)
        if value and not Path(value).is_file():
            hint = "run 'make lab'" if profile.name == "lab" else f"--set {key}=PATH"
            raise RkvmError(f"{key} not found: {value} ({hint})")


def build_argv(profile: profiles.Profile, port: int, directory: Path, append: str, smp: int | None):
    """QEMU's argv: the profile's machine plus the session's plumbing. The gdbstub is loopback only."""
    sock = directory / "console.sock"
    log = directory / "serial.log"
    return profile.qemu_args(append, smp) + [
        "-nodefaults", "-display", "none", "-S",
        "-gdb", f"tcp:127.0.0.1:{port}",
        "-chardev", f"socket,id=ser0,path={sock},server=on,wait=off,logfile={log}",
        "-serial", "chardev:ser0",
    ]


def start(profile_name: str = "lab", mode: str | None = None, smp: int | None = None, append: str = "",
          overrides: dict | None = None, directory: Path | None = None, outlive: bool = False) -> Session:
    """Start QEMU paused at reset and record the session. Refuses if one is already running.
    outlive=True (`rkvm up`) keeps QEMU running after this process ends; otherwise it dies with it."""
    directory = directory or session_dir()
    if current(directory):
        raise RkvmError("a session is already running (see 'rkvm status'; end it with 'rkvm down')")
    profile = profiles.load(profile_name, overrides)
    _check_files(profile)
    if mode is not None:
        if mode not in MODES:
            raise RkvmError(f"unknown mode '{mode}' (one of: {', '.join(MODES)})")
        append = " ".join(x for x in (append, f"rkvm.mode={mode}") if x)
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("serial.log", "console.sock", "qemu.log"):
        (directory / name).unlink(missing_ok=True)
    last_error = None
    for _ in range(3):  # the free port can be taken between our probe and QEMU's bind
        port = qemu_process.free_loopback_port()
        argv = build_argv(profile, port, directory, append, smp)
        proc = qemu_process.spawn(argv, directory / "qemu.log", outlive_parent=outlive)
        try:
            qemu_process.wait_listening(proc, port, directory / "qemu.log")
        except RkvmError as e:
            qemu_process.terminate(proc.pid)
            last_error = e
            if "Address already in use" in str(e):
                continue
            raise
        except BaseException:
            qemu_process.terminate(proc.pid)
            raise
        break
    else:
        raise last_error
    sess = Session(pid=proc.pid, gdb_port=port, serial_log=str(directory / "serial.log"),
                   console_socket=str(directory / "console.sock"), qemu_log=str(directory / "qemu.log"),
                   vmlinux=profile.gdb.get("vmlinux", ""), gdb_scripts=profile.gdb.get("scripts", ""),
                   module_dirs=profile.gdb.get("module_dirs", []), profile=profile.name,
                   kernel_cmdline=profile.kernel_cmdline(append), argv=argv, started_at=time.time())
    try:
        write_atomic(_json_path(directory), json.dumps(asdict(sess), indent=2) + "\n")
    except BaseException:
        qemu_process.terminate(proc.pid)
        raise
    return sess


def stop(directory: Path | None = None) -> Session | None:
    """End the running session's QEMU and remove its record. Returns what was stopped."""
    directory = directory or session_dir()
    path = _json_path(directory)
    try:
        sess = Session(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if qemu_process.is_qemu(sess.pid):
        qemu_process.terminate(sess.pid)
    path.unlink(missing_ok=True)
    return sess


def serial_send(sess: Session, text: str, timeout: float = 5.0) -> None:
    """Type `text` into the guest's serial console."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(sess.console_socket)
        except OSError as e:
            raise RkvmError(f"cannot reach the serial console at {sess.console_socket}: {e.strerror}") from None
        s.sendall(text.encode())
        time.sleep(0.1)  # let QEMU take the bytes before the socket closes


class SerialConsole:
    """A connection to the guest's serial console kept open, so typed-ahead input is not lost.

    What the guest prints is read and dropped here (serial.log has it): QEMU's UART stops sending,
    and the guest's console writes stall, once a connected client leaves a few hundred bytes unread."""

    def __init__(self, sess: Session, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(sess.console_socket)
        except OSError as e:
            self.sock.close()
            raise RkvmError(f"cannot reach the serial console at {sess.console_socket}: {e.strerror}") from None
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                if not self.sock.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serial_wait(sess: Session, pattern: str, timeout: float = 30.0, start: int = 0) -> str:
    """Wait until `pattern` appears in the serial log after byte `start`; return the log from there."""
    deadline = time.monotonic() + timeout
    path = Path(sess.serial_log)
    while True:
        try:
            data = path.read_bytes()[start:].decode(errors="replace")
        except OSError:
            data = ""
        if pattern in data:
            return data
        if not sess.alive():
            raise RkvmError(f"QEMU ended while waiting for {pattern!r} on the console")
        if time.monotonic() > deadline:
            raise RkvmError(f"{pattern!r} did not appear on the console within {timeout:.0f} s")
        time.sleep(0.05)
