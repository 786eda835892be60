"""`rkvm shell`: a console on a session, every command passed to GDB over GDB/MI.

On a terminal (gdb_rkvm/shell_panes.py): two panes, the dialogue with GDB (completion for `rkvm`
subcommands, register names and kernel symbols from GDB itself, persistent history, a one-line CPU
toolbar) and the guest's serial console (its output, escaped and bounded; what is typed there goes to
the guest). Without a terminal (piped input): each line run in turn, the guest's output prefixed [guest].
`guest TEXT` types a line into the guest from either.
"""

import os
import sys
import threading
from pathlib import Path

from prompt_toolkit.completion import Completer, Completion

from gdb_rkvm.qemu import profiles, session
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import build_dir
from gdb_rkvm.host.mi import GdbMi
from gdb_rkvm.host.shell_lines import LineBuffer

MAX_COMPLETIONS = 100


def gdb_completions(mi: GdbMi, text: str) -> list[str]:
    """What GDB's own `complete TEXT` offers (whole lines): the rkvm commands and their arguments,
    GDB's commands, symbols. Asked of the GDB the shell drives, so the shell never keeps a list of
    its own. Nothing (not an error) when GDB is busy or the text cannot be completed."""
    if not text.strip() or not text.isprintable():
        return []
    try:
        res = mi.console(f"complete {text}", timeout=2)
    except RkvmError:
        return []
    if not res.ok:
        return []
    return res.output.splitlines()[:MAX_COMPLETIONS]


class RkvmCompleter(Completer):
    """Completions from GDB (`ask(text)` returns GDB's `complete` lines), cut to the word being typed."""

    def __init__(self, ask):
        self.ask = ask

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        head = text[: len(text) - len(word)]
        seen = set()
        for line in self.ask(text):
            if line.startswith(head) and len(line) > len(head):
                tail = line[len(head):]
                if tail not in seen:
                    seen.add(tail)
                    yield Completion(tail, start_position=-len(word))


def toolbar_error(message: str) -> str:
    """The toolbar's one line when the CPUs cannot be read (the guest runs, GDB is gone...)."""
    if "running" in message:
        return "CPUs: running (Ctrl-C or 'interrupt' stops them; the toolbar is read at each stop)"
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return f"CPUs: {first[:100]}"


class Shell:
    """The session side of the shell, shared by both faces (the panes and the line-by-line fallback):
    GDB/MI, the CPU toolbar text, typing into the guest's serial console."""

    def __init__(self, mi: GdbMi, sess: session.Session):
        self.mi, self.sess = mi, sess
        self.toolbar = "CPUs: (not read yet)"
        # one GDB/MI conversation at a time: a command (in a worker thread), the toolbar's read and
        # completion (from the screen's thread) would otherwise read each other's answers
        self.gdb_lock = threading.Lock()
        self._console_lock = threading.Lock()
        self._console = None

    def complete(self, text: str) -> list[str]:
        """GDB's completions, or none while a command holds GDB (a `continue`)."""
        if not self.gdb_lock.acquire(blocking=False):
            return []
        try:
            return gdb_completions(self.mi, text)
        finally:
            self.gdb_lock.release()

    def refresh_toolbar(self) -> None:
        try:
            data = self.mi.json("rkvm cpus", timeout=30)
        except RkvmError as e:
            self.toolbar = toolbar_error(str(e))
            return
        self.toolbar = "  ".join(f"CPU{c['cpu']} {c['mode']} {c['pc']:#x}" +
                                 (f" <{c['pc_symbol']}>" if c["pc_symbol"] else "") for c in data["cpus"])

    def send_to_guest(self, text: str) -> None:
        """Type `text` into the guest's serial console over one connection kept open (typed-ahead
        input waits in it while the guest is stopped)."""
        with self._console_lock:
            if self._console is None:
                self._console = session.SerialConsole(self.sess)
            try:
                self._console.send(text)
            except OSError as e:
                raise RkvmError(f"cannot type into the guest's serial console: {e.strerror or e}") from None

    def type_into_guest(self, text: str) -> str:
        """`guest TEXT`: type TEXT and Enter into the guest's serial console."""
        self.send_to_guest(text + "\n")
        return (f"typed into the guest: {text}\n(it runs it while the guest runs: 'continue', or a command that "
                "resumes, such as 'rkvm step-el2')\n")

    def execute(self, line: str) -> str:
        """Run one line in GDB (or `guest TEXT` into the guest); return what it printed (and its error).
        Ctrl-C while it runs (a `continue`) interrupts the guest, as in GDB; the shell goes on."""
        if line == "guest" or line.startswith("guest "):
            text = line[len("guest"):].strip()
            if not text:
                return "usage: guest TEXT   (types TEXT and Enter into the guest's shell)\n"
            try:
                return self.type_into_guest(text)
            except RkvmError as e:
                return f"{e}\n"
        try:
            res = self.mi.console(line, timeout=600, interruptible=True)
        except RkvmError as e:
            return f"{e}\n"
        out = res.output
        if not res.ok:
            out += f"{res.error}\n"
        return out

    def run_command(self, line: str) -> str:
        """execute() then the toolbar's read, holding GDB for both."""
        with self.gdb_lock:
            out = self.execute(line)
            self.refresh_toolbar()
        return out

    def interrupt(self) -> None:
        """Stop the running guest (SIGINT to GDB, as Ctrl-C in GDB): the shell and QEMU stay."""
        self.mi.interrupt()

    def close(self) -> None:
        with self._console_lock:
            if self._console is not None:
                self._console.close()
                self._console = None


def follow_serial(path: str, sink, stop: threading.Event, start: int | None = None,
                  chunk: int = 65536, period: float = 0.1) -> None:
    """Feed what the guest writes to its serial log to `sink(bytes)` until `stop` is set; from byte
    `start` (default: the log's end). Reads at most `chunk` bytes at a time (a guest flood stays bounded)."""
    log = Path(path)
    pos = log.stat().st_size if start is None and log.exists() else (start or 0)
    while not stop.is_set():
        try:
            with open(log, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                pos = 0 if size < pos else pos   # a new log (a new session in the same directory)
                f.seek(pos)
                data = f.read(chunk)
        except OSError:
            data = b""
        if data:
            pos += len(data)
            sink(data)
            continue
        stop.wait(period)


def run_lines(shell: Shell, stream, emit) -> int:
    """The shell without a terminal (piped input): each line run in turn, its output and the guest's
    serial output (prefixed [guest], escaped) written through `emit`."""
    guest = LineBuffer(max_lines=1)

    def serial(data: bytes) -> None:
        emit("".join(f"[guest] {line}\n" for line in guest.feed_bytes(data) if line.strip()))

    stop = threading.Event()
    follower = threading.Thread(target=follow_serial, args=(shell.sess.serial_log, serial, stop), daemon=True)
    follower.start()
    try:
        for raw in stream:
            line = raw.strip()
            if line in ("quit", "exit", "q"):
                break
            if line:
                emit(f"(rkvm) {line}\n")
                emit(shell.run_command(line))
    finally:
        stop.set()
        follower.join(timeout=2)
        shell.close()
    return 0


def run_shell(args) -> int:
    started = None
    if session.current() is None:
        started = session.start(args.profile, mode=args.mode, smp=args.smp, append=args.append,
                                overrides=profiles.parse_overrides(args.set), ram_file=not args.no_ram_file)
        print(f"rkvm: started QEMU pid {started.pid} (ends with the shell)")
    sess = session.current()
    try:
        with GdbMi() as mi:
            if "attached to" not in mi.startup_output:
                raise RkvmError("GDB did not attach: " + mi.startup_output.strip()[-200:])
            shell = Shell(mi, sess)
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                return run_lines(shell, sys.stdin, lambda text: print(text, end="", flush=True))
            from gdb_rkvm.host.shell_panes import ShellPanes
            history = build_dir() / "shell_history"
            history.parent.mkdir(parents=True, exist_ok=True)
            return ShellPanes(shell, history).run()
    finally:
        if started is not None:
            session.stop(only=started)
