"""A lab session: one QEMU, paused at reset, gdbstub and serial console on Unix sockets.

The session directory (build/session, or RKVM_SESSION_DIR) belongs to one session: it is mode 0700
(nobody else can reach the sockets in it), and its `lock` file is flock()ed while the session lives.
The lock's open file is inherited by QEMU, so a QEMU that outlives `rkvm up` keeps its directory
locked until it ends; a command that starts a session for itself (rkvm gdb, shell, triage, the
tests) holds it too until it stops the session. session.json is the only record; any `rkvm`
command (and rkvm.py inside GDB) finds the running session through it, and trusts its pid only if
the process's start time and argv are the ones recorded.

Beside the gdbstub, a session has (docs/lab.md, "Sessions"):
- guest RAM in a shared memory file (QEMU's memory-backend-file, share=on) that never has a name: it is
  created with O_TMPFILE (or created and unlinked at once) in the session directory, mode 0600, and
  handed to QEMU as an inherited fd (mem-path=/proc/self/fd/N). It lives exactly as long as QEMU (and
  any mapping of it): a killed QEMU leaves nothing behind. Readers reach it through /proc/PID/fd/N
  after the pid identity check (guest_ram.py);
- a QMP socket (qmp.sock) beside the gdbstub's, for what the gdbstub cannot do while the guest runs;
- QEMU's exception log, one file per vCPU thread (`-D DIR/exceptions.%d -d tid`), written only while a
  trace has `log int` switched on.
"""

import fcntl
import json
import os
import socket
import stat
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gdb_rkvm.qemu import profiles, qemu_process
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import open_private, private_dir, session_dir, write_atomic

MODES = ("good", "vmalloc", "one-cpu", "nostack", "jump-table", "s2-vmalloc", "s2-hole", "host-clobber",
         "vtcr-mismatch")
SOCKET_PATH_MAX = 107   # sockaddr_un.sun_path is 108 bytes with its terminating NUL
_FILES = ("session.json", "serial.log", "qemu.log", "console.sock", "gdb.sock", "qmp.sock")
_SOCKETS = ("gdb.sock", "console.sock", "qmp.sock")
EXCEPTION_LOG = "exceptions.%d"     # QEMU's per-thread log files (%d: the thread id)
VIRT_RAM_BASE = 0x40000000          # QEMU's `virt` board: RAM starts here (hw/arm/virt.c, VIRT_MEM)
RAM_BACKEND_ID = "rkvm-ram"
_HELD: dict[str, int] = {}   # session directory -> the lock fd this process holds for it


@dataclass
class Session:
    """What `rkvm up` started, as written to session.json."""

    pid: int
    gdb_address: str      # where GDB connects: a Unix socket path (the default), or HOST:PORT (--tcp)
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
    start_ticks: int = 0   # QEMU's start time (/proc/PID/stat field 22): with argv, its identity
    session_dir: str = ""
    socket_dir: str = ""   # a short private directory for the sockets, if session_dir's path is too long
    external: bool = False  # a QEMU we did not start (rkvm triage --attach): never ours to end
    qmp_socket: str = ""   # QEMU's QMP monitor (a Unix socket in the session's private directory)
    ram_fd: int = -1       # guest RAM file: this fd number in QEMU (/proc/PID/fd/N); -1: no RAM file
    ram_base: int = 0      # guest physical address of the file's first byte
    ram_size: int = 0
    ram_id: list = field(default_factory=list)   # [st_dev, st_ino] of the RAM file: checked when opened
    exception_log: str = ""  # QEMU's per-thread exception log template (DIR/exceptions.%d), "" if none

    @property
    def tcp(self) -> bool:
        return not self.gdb_address.startswith("/")

    def identity_problem(self) -> str | None:
        """None if `pid` is the QEMU this record describes; else why not (in a few words)."""
        return qemu_process.identity_problem(self.pid, self.start_ticks, self.argv)

    def alive(self) -> bool:
        if self.external:
            return True
        return self.identity_problem() is None


def _json_path(directory: Path | None = None) -> Path:
    return Path(directory or session_dir()) / "session.json"


def _read(directory: Path) -> Session | None:
    try:
        with os.fdopen(open_private(_json_path(directory), os.O_RDONLY), "r") as f:
            return Session(**json.loads(f.read()))
    except (OSError, RkvmError, ValueError, TypeError):
        return None


def _untrusted(directory: Path) -> str | None:
    """Why session.json in `directory` cannot be trusted (another user could have written it), or None."""
    try:
        st = os.lstat(directory)
    except OSError:
        return None   # no directory, no record
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory (a symlink?)"
    if st.st_uid != os.geteuid():
        return "not yours"
    if st.st_mode & 0o022:
        return "writable by other users"
    return None


def _try_lock(directory: Path) -> int | None:
    """The session directory's lock, taken (an fd), or None if a live session (or a starting one) holds it."""
    fd = open_private(Path(directory) / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _release(directory: Path) -> None:
    fd = _HELD.pop(str(Path(directory).absolute()), None)
    if fd is not None:
        os.close(fd)


def current(directory: Path | None = None) -> Session | None:
    """The running session, or None. A stale record (its QEMU gone) is removed if nobody holds the lock."""
    directory = Path(directory or session_dir())
    if _untrusted(directory):
        return None
    sess = _read(directory)
    if sess is None or sess.alive():
        return sess
    fd = _try_lock(directory) if directory.is_dir() else None
    if fd is not None:
        try:
            _json_path(directory).unlink(missing_ok=True)
            _remove_exception_logs(directory)
        finally:
            os.close(fd)
    return None


def external(address: str, profile_name: str = "lab", overrides: dict | None = None) -> Session:
    """A Session for a gdbstub someone else started (a Unix socket path or HOST:PORT), with the profile's
    symbols."""
    if "/" in address and ":" not in address:
        try:
            if not stat.S_ISSOCK(os.stat(address).st_mode):
                raise RkvmError(f"--attach {address}: not a Unix socket")
        except OSError as e:
            raise RkvmError(f"--attach {address}: {e.strerror}") from None
    else:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise RkvmError(f"--attach {address}: expected a Unix socket path or HOST:PORT")
        address = f"{host or '127.0.0.1'}:{port}"
    profile = profiles.load(profile_name, overrides)
    return Session(pid=0, gdb_address=address, serial_log="", console_socket="", qemu_log="",
                   vmlinux=profile.gdb.get("vmlinux", ""), gdb_scripts=profile.gdb.get("scripts", ""),
                   module_dirs=profile.gdb.get("module_dirs", []), profile=profile.name, kernel_cmdline="",
                   external=True)


def from_environment() -> Session | None:
    """The session GDB should use: RKVM_ATTACH (set by `rkvm triage --attach`) or the running one."""
    attach = os.environ.get("RKVM_ATTACH")
    if attach:
        try:
            return Session(**json.loads(attach))
        except (ValueError, TypeError):
            raise RkvmError("RKVM_ATTACH is not a session record (it is set by `rkvm triage --attach`)") from None
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


def _socket_dir(directory: Path) -> Path | None:
    """None if the sockets fit in `directory`; else a new short private directory for them (mode 0700).
    GDB reads a ':' in `target remote` as HOST:PORT, and QEMU reads a '%' in a log file name as a
    template, so a directory with either gets a short one too (for the sockets and the exception logs)."""
    if len(str(directory / "console.sock")) <= SOCKET_PATH_MAX and not set(":%") & set(str(directory)):
        return None
    short = Path(tempfile.mkdtemp(prefix="rkvm-"))
    if len(str(short / "console.sock")) > SOCKET_PATH_MAX or set(":%") & set(str(short)):
        os.rmdir(short)
        raise RkvmError(f"the session directory's path is too long for a Unix socket ({len(str(directory))} "
                        f"bytes) and so is {tempfile.gettempdir()}: set RKVM_SESSION_DIR (or TMPDIR) shorter")
    return short


def build_argv(profile: profiles.Profile, gdb: str | int, directory: Path, append: str, smp: int | None,
               console: Path | None = None, qmp: Path | None = None, ram: tuple[int, int] | None = None,
               exception_log: str | None = None):
    """QEMU's argv: the profile's machine plus the session's plumbing. `gdb` is the gdbstub's Unix socket
    path (str) or a loopback TCP port (int); `qmp` the QMP socket's path; `ram` (fd, size) puts guest RAM
    in the file QEMU inherits as fd; `exception_log` is the per-thread log template (-D ... -d tid).
    Paths in QEMU's comma-separated options have their commas doubled (QEMU's escape), so a path cannot
    add options."""
    esc = profiles.qemu_escape
    sock = console or directory / "console.sock"
    log = directory / "serial.log"
    if isinstance(gdb, int):
        stub = ["-gdb", f"tcp:127.0.0.1:{gdb}"]
    else:
        stub = ["-chardev", f"socket,id=gdb0,path={esc(str(gdb))},server=on,wait=off", "-gdb", "chardev:gdb0"]
    extra = []
    if qmp is not None:
        extra += ["-chardev", f"socket,id=qmp0,path={esc(str(qmp))},server=on,wait=off",
                  "-mon", "chardev=qmp0,mode=control"]
    if ram is not None:
        fd, size = ram
        extra += ["-object", f"memory-backend-file,id={RAM_BACKEND_ID},size={size},mem-path=/proc/self/fd/{fd},"
                             "share=on", "-machine", f"memory-backend={RAM_BACKEND_ID}"]
    if exception_log:
        extra += ["-D", exception_log, "-d", "tid"]
    return profile.qemu_args(append, smp) + [
        "-nodefaults", "-display", "none", "-S", *stub,
        "-chardev", f"socket,id=ser0,path={esc(str(sock))},server=on,wait=off,logfile={esc(str(log))}",
        "-serial", "chardev:ser0", *extra,
    ]


def ram_file_problem(profile: profiles.Profile) -> str | None:
    """Why this profile's guest RAM cannot go in a session file (None: it can). Only QEMU's `virt`
    board, whose RAM is one block at VIRT_RAM_BASE, and a plain `-m SIZE`."""
    m = profile.machine
    board = str(m.get("machine", "")).split(",")[0]
    if board != "virt" and not board.startswith("virt-"):
        return f"machine {board} is not QEMU's virt board"
    if "memory-backend" in str(m.get("machine", "")) or any("memory-backend" in a or a == "-numa"
                                                              for a in m.get("extra_args", [])):
        return "the profile chooses its own memory backend"
    if "," in str(m.get("memory", "")):
        return "memory has options (slots, maxmem)"
    return None


def _ram_file(directory: Path) -> tuple[int, list]:
    """A new file for guest RAM that has no name: O_TMPFILE in `directory` (or created and unlinked at
    once where the filesystem has no O_TMPFILE), mode 0600. Returns (fd, [st_dev, st_ino])."""
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    except (OSError, AttributeError):
        fd, name = tempfile.mkstemp(dir=directory, prefix=".ram-")
        os.unlink(name)
    os.fchmod(fd, 0o600)
    st = os.fstat(fd)
    return fd, [st.st_dev, st.st_ino]


def _remove_exception_logs(directory: Path) -> None:
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith("exceptions.") and name[11:].isdigit():
            try:
                os.unlink(Path(directory) / name)
            except OSError:
                pass



def _record(proc, gdb, directory, console, qemu_log, profile, append, argv, short, qmp_sock, ram_fd, ram_size,
            ram_id, exception_log) -> "Session":
    """The session record of a QEMU just started."""
    address = gdb if isinstance(gdb, str) else f"127.0.0.1:{gdb}"
    return Session(pid=proc.pid, gdb_address=address, serial_log=str(directory / "serial.log"),
                   console_socket=str(console), qemu_log=str(qemu_log),
                   vmlinux=profile.gdb.get("vmlinux", ""), gdb_scripts=profile.gdb.get("scripts", ""),
                   module_dirs=profile.gdb.get("module_dirs", []), profile=profile.name,
                   kernel_cmdline=profile.kernel_cmdline(append), argv=argv, started_at=time.time(),
                   start_ticks=qemu_process.start_ticks(proc.pid) or 0, session_dir=str(directory),
                   socket_dir=str(short or ""), qmp_socket=str(qmp_sock),
                   ram_fd=-1 if ram_fd is None else ram_fd, ram_base=VIRT_RAM_BASE if ram_fd is not None else 0,
                   ram_size=ram_size, ram_id=ram_id, exception_log=exception_log or "")


def start(profile_name: str = "lab", mode: str | None = None, smp: int | None = None, append: str = "",
          overrides: dict | None = None, directory: Path | None = None, outlive: bool = False,
          tcp_port: int | None = None, ram_file: bool = True) -> Session:
    """Start QEMU paused at reset and record the session. Refuses if one is already running (or starting)
    in the directory. outlive=True (`rkvm up`) keeps QEMU running after this process ends; otherwise it
    dies with it. tcp_port (0: a free one) puts the gdbstub on 127.0.0.1 instead of a Unix socket.
    ram_file=False keeps guest RAM inside QEMU (every physical read then goes through the gdbstub)."""
    profile = profiles.load(profile_name, overrides)
    _check_files(profile)
    if mode is not None:
        if mode not in MODES:
            raise RkvmError(f"unknown mode '{mode}' (one of: {', '.join(MODES)})")
        append = " ".join(x for x in (append, f"rkvm.mode={mode}") if x)
    directory = private_dir(Path(directory or session_dir()).absolute())
    lock = _try_lock(directory)
    if lock is None:
        raise RkvmError(f"a session is already running in {directory} (its lock is held; see 'rkvm status', "
                        "end it with 'rkvm down')")
    short = None
    ram_fd = None
    try:
        for name in _FILES:   # stale: we hold the lock, so no live session owns them
            (directory / name).unlink(missing_ok=True)
        _remove_exception_logs(directory)
        short = _socket_dir(directory)
        sockets = short or directory
        console = sockets / "console.sock"
        qmp_sock = sockets / "qmp.sock"
        qemu_log = directory / "qemu.log"
        ram, ram_id, ram_size = None, [], 0
        if ram_file and ram_file_problem(profile) is None:
            ram_size = profiles.memory_bytes(profile.machine.get("memory", "1024"))
            ram_fd, ram_id = _ram_file(directory)
            ram = (ram_fd, ram_size)
        # one exception log file per vCPU thread (QEMU 7.1's `-d tid`); an older QEMU refuses it at start
        exception_log = str(sockets / EXCEPTION_LOG)
        proc = None
        for _ in range(4):  # a free TCP port can be taken between our probe and QEMU's bind
            if tcp_port is None:
                gdb = str(sockets / "gdb.sock")
            else:
                gdb = tcp_port or qemu_process.free_loopback_port()
            argv = build_argv(profile, gdb, directory, append, smp, console, qmp_sock, ram, exception_log)
            keep = (lock,) if ram_fd is None else (lock, ram_fd)
            proc = qemu_process.spawn(argv, qemu_log, outlive_parent=outlive, keep_fds=keep)
            try:
                qemu_process.wait_listening(proc, gdb, qemu_log)
            except RkvmError as e:
                qemu_process.terminate(proc.pid)
                if "Address already in use" in str(e) and tcp_port == 0:
                    continue
                said = qemu_log.read_text(errors="replace") if qemu_log.exists() else ""
                if exception_log and "exited at start" in str(e) and ("tid" in str(e) or "Log items" in said):
                    exception_log = None   # QEMU before 7.1: one shared log file, switched on per trace
                    continue
                raise
            except BaseException:
                qemu_process.terminate(proc.pid)
                raise
            break
        else:
            raise RkvmError("QEMU did not start after 4 tries (no free loopback port for the gdbstub?)")
        try:
            sess = _record(proc, gdb, directory, console, qemu_log, profile, append, argv, short, qmp_sock,
                           ram_fd, ram_size, ram_id, exception_log)
            write_atomic(_json_path(directory), json.dumps(asdict(sess), indent=2) + "\n", mode=0o600)
        except OSError as e:
            qemu_process.terminate(proc.pid)
            raise RkvmError(f"cannot write the session record in {directory}: {e.strerror or e}") from None
        except BaseException:
            qemu_process.terminate(proc.pid)
            raise
    except BaseException:
        if short is not None:
            _remove_socket_dir(short)
        os.close(lock)
        raise
    finally:
        if ram_fd is not None:
            os.close(ram_fd)   # QEMU has its own: the file now lives exactly as long as QEMU
    if outlive:
        os.close(lock)   # QEMU holds it (inherited) for as long as it runs
    else:
        _HELD[str(directory)] = lock
    return sess


def _remove_socket_dir(short: Path) -> None:
    """Remove a short socket directory we made: only our two sockets, then the (empty) directory."""
    try:
        st = os.lstat(short)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return
    for name in _SOCKETS:
        (short / name).unlink(missing_ok=True)
    _remove_exception_logs(short)
    try:
        os.rmdir(short)
    except OSError:
        pass


def stop(directory: Path | None = None, only: Session | None = None) -> Session | None:
    """End the session's QEMU and remove its record. Returns what was stopped (None: no session, or
    `only` was given and the directory now holds another session, which is left alone).

    The pid in session.json is signalled only if it is the QEMU the record describes (same start
    time and argv); a process that is not is reported (RkvmError), never signalled."""
    directory = Path(directory or session_dir()).absolute()
    why = _untrusted(directory)
    if why:
        raise RkvmError(f"session directory {directory} is {why}: its session.json is not trusted, nothing signalled")
    try:
        sess = _read(directory)
        if sess is None:
            return None
        if only is not None and (sess.pid, sess.start_ticks) != (only.pid, only.start_ticks):
            return None
        if sess.external:
            return None
        problem = sess.identity_problem()
        if problem is None:
            _quit(sess)
            qemu_process.terminate(sess.pid)
        elif qemu_process.alive(sess.pid):
            fd = _try_lock(directory)
            if fd is not None:   # nobody holds the directory: the record is stale
                _json_path(directory).unlink(missing_ok=True)
                os.close(fd)
            raise RkvmError(f"pid {sess.pid} recorded in {_json_path(directory)} is not this session's QEMU "
                            f"({problem}): not signalled" + ("; stale record removed" if fd is not None else ""))
        _json_path(directory).unlink(missing_ok=True)
        for name in _SOCKETS:
            (directory / name).unlink(missing_ok=True)
        _remove_exception_logs(directory)
        if sess.socket_dir:
            _remove_socket_dir(Path(sess.socket_dir))
        return sess
    finally:
        _release(directory)


def _quit(sess: Session, wait: float = 3.0) -> None:
    """Ask the session's QEMU to quit over QMP (it then closes its files and sockets itself); whoever
    calls this still makes sure with terminate()."""
    if not sess.qmp_socket:
        return
    from gdb_rkvm.qemu import qmp
    try:
        qmp.call(sess.qmp_socket, "quit", timeout=2.0)
    except RkvmError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and qemu_process.alive(sess.pid):
        qemu_process._reap(sess.pid)
        time.sleep(0.02)


def qemu_status(sess: Session) -> str | None:
    """QEMU's run state over QMP ('running', 'paused', ...), or None without a QMP socket or answer."""
    if not sess.qmp_socket or sess.external:
        return None
    from gdb_rkvm.qemu import qmp
    try:
        return qmp.status(sess.qmp_socket)
    except RkvmError:
        return None


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
