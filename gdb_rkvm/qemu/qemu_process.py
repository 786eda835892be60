"""Starting, watching and ending one QEMU process. Nothing here knows about profiles or GDB."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import open_private


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (QEMU binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_sockets(port: int, pid: int | None = None) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} has them) listening on `port` (only sockets that
    process `pid` holds, if given: another process may have taken the port first)."""
    owned = _socket_inodes(pid) if pid is not None else None
    return [addr for addr, inode in _tcp_listeners(port) if owned is None or inode in owned]


def _tcp_listeners(port: int) -> list[tuple[str, str]]:
    """(local address in hex, socket inode) of every TCP socket listening (state 0A) on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(addr.rsplit(":", 1)[1], 16) == port:
                found.append((addr.rsplit(":", 1)[0], inode))
    return found


def _unix_listeners(path: str) -> set[str]:
    """Socket inodes of the Unix sockets bound at `path` that are listening."""
    try:
        lines = Path("/proc/net/unix").read_text(errors="replace").splitlines()[1:]
    except OSError:
        return set()
    inodes = set()
    for line in lines:
        fields = line.split(None, 7)
        # __SO_ACCEPTCON (0x10000): a listening socket
        if len(fields) == 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
            inodes.add(fields[6])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listening_unix(path: str, pid: int | None = None) -> bool:
    """Whether a Unix socket bound at `path` is listening (one that process `pid` holds, if given)."""
    owned = _socket_inodes(pid) if pid is not None else None
    return any(owned is None or inode in owned for inode in _unix_listeners(path))


def pid_serving(address: str) -> int | None:
    """The pid of the process listening on a gdbstub address (a Unix socket path, or HOST:PORT), if we
    can see it (its /proc/PID/fd is readable by us), else None."""
    if address.startswith("/"):
        inodes = _unix_listeners(address)
    else:
        port = address.rpartition(":")[2]
        if not port.isdigit():
            return None
        inodes = {inode for _, inode in _tcp_listeners(int(port))}
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _socket_inodes(int(entry)) & inodes:
            return int(entry)
    return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (field 3 onwards), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat field 22): with its argv, which
    process a pid names (a pid is reused, a start time on one boot is not)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="surrogateescape").split("\0")[:-1] if raw else []


def identity_problem(pid: int, ticks: int, argv: list[str]) -> str | None:
    """None if `pid` is alive, started at `ticks` and runs exactly `argv`; else why not, in a few words."""
    if not pid or not alive(pid):
        return f"no process {pid}"
    now = start_ticks(pid)
    if not ticks or now != ticks:
        return f"pid {pid} started at another time"
    if cmdline(pid) != list(argv):
        return f"pid {pid} runs another command line"
    return None


def is_loopback_hex(addr: str) -> bool:
    """Whether a /proc/net/tcp address (little-endian hex) is 127.0.0.0/8 or ::1."""
    if len(addr) == 8:
        return int(addr, 16) & 0xFF == 127
    return addr == "00000000000000000000000001000000"


def alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


_PRCTL = []


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the process that started us dies (Linux PR_SET_PDEATHSIG), so
    a command killed outright (SIGKILL, a CI timeout) still leaves no QEMU behind. prctl was looked
    up in the parent: loading a library between fork and exec can deadlock."""
    _PRCTL[0](1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def spawn(argv: list[str], log_path: Path, outlive_parent: bool = False, keep_fds: tuple = ()) -> subprocess.Popen:
    """Start QEMU in its own session (so a terminal's Ctrl-C goes to us, not to it). Unless asked to
    outlive the caller (`rkvm up`), it dies with the process that started it. `keep_fds` are inherited
    (the session directory's lock). The log is never opened through a symlink."""
    if not _PRCTL:
        import ctypes
        _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
    log = os.fdopen(open_private(Path(log_path)), "wb")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=keep_fds,
                                preexec_fn=None if outlive_parent else _die_with_parent)
    except FileNotFoundError:
        raise RkvmError(f"{argv[0]} not found: run 'make setup'") from None
    finally:
        log.close()


def wait_listening(proc: subprocess.Popen, where: str | int, log_path: Path, timeout: float = 20.0) -> None:
    """Wait until QEMU's gdbstub listens on `where` (a Unix socket path, or a loopback TCP port) on a
    socket QEMU itself holds; raise with QEMU's own words if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log_path.read_text(errors="replace").strip().splitlines()
            reason = text[-1] if text else f"exit status {proc.returncode}"
            raise RkvmError(f"QEMU exited at start: {reason}")
        if listening_unix(where, proc.pid) if isinstance(where, str) else listening_sockets(where, proc.pid):
            return
        time.sleep(0.05)
    terminate(proc.pid)
    shown = where if isinstance(where, str) else f"127.0.0.1:{where}"
    raise RkvmError(f"QEMU did not open its gdbstub on {shown} within {timeout:.0f} s")


def terminate(pid: int, grace: float = 3.0) -> None:
    """End a QEMU process and its group: SIGTERM, then SIGKILL after `grace` seconds. Reaps it."""
    if not alive(pid):
        _reap(pid)
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
