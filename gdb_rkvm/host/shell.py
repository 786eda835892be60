"""`rkvm shell`: a prompt_toolkit console on a session, every command passed to GDB over GDB/MI.

Completion for `rkvm` subcommands, system register names and kernel symbols; persistent history;
a bottom toolbar with each CPU's EL and PC (refreshed after every command, one line); the guest's
serial output printed above the prompt as it arrives (interleaved); `guest TEXT` types into the
guest's shell.
"""

import threading
import time
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout

from gdb_rkvm.qemu import profiles, session
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.model.guest_text import escape
from gdb_rkvm.paths import build_dir
from gdb_rkvm.host.mi import GdbMi

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
    """The console's state: GDB/MI, the toolbar text and the serial follower."""

    def __init__(self, mi: GdbMi, sess: session.Session, history: Path, input=None, output=None, emit=None):
        self.mi, self.sess = mi, sess
        self.emit = emit or (lambda text: print(text, end="", flush=True))
        self.toolbar = "CPUs: (not read yet)"
        self.prompt = PromptSession(history=FileHistory(str(history)),
                                    completer=RkvmCompleter(lambda text: gdb_completions(self.mi, text)),
                                    bottom_toolbar=lambda: self.toolbar, input=input, output=output)
        self._serial_pos = Path(sess.serial_log).stat().st_size if Path(sess.serial_log).exists() else 0
        self._stop = threading.Event()
        self._console = None

    def refresh_toolbar(self) -> None:
        try:
            data = self.mi.json("rkvm cpus", timeout=30)
        except RkvmError as e:
            self.toolbar = toolbar_error(str(e))
            return
        self.toolbar = "  ".join(f"CPU{c['cpu']} {c['mode']} {c['pc']:#x}" +
                                 (f" <{c['pc_symbol']}>" if c["pc_symbol"] else "") for c in data["cpus"])

    def follow_serial(self) -> None:
        """Print new serial output above the prompt (patch_stdout keeps the prompt intact)."""
        while not self._stop.is_set():
            try:
                with open(self.sess.serial_log, "rb") as f:
                    f.seek(self._serial_pos)
                    data = f.read()
            except OSError:
                data = b""
            if data:
                self._serial_pos += len(data)
                text = data.decode(errors="replace").replace("\x1b[6n", "")
                self.emit("".join(f"[guest] {escape(line)}\n" for line in text.splitlines() if line.strip()))
            time.sleep(0.2)

    def type_into_guest(self, text: str) -> str:
        """`guest TEXT`: type TEXT and Enter into the guest's serial console."""
        if self._console is None:
            self._console = session.SerialConsole(self.sess)
        self._console.send(text + "\n")
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

    def loop(self) -> int:
        follower = threading.Thread(target=self.follow_serial, daemon=True)
        follower.start()
        try:
            with patch_stdout():
                self.refresh_toolbar()
                while True:
                    try:
                        line = self.prompt.prompt("(rkvm) ").strip()
                    except KeyboardInterrupt:
                        continue
                    except EOFError:
                        break
                    if line in ("quit", "exit", "q"):
                        break
                    if not line:
                        continue
                    try:
                        self.emit(self.execute(line))
                        self.refresh_toolbar()
                    except KeyboardInterrupt:   # outside a command's run (the toolbar's read): go on
                        self.emit("(interrupted)\n")
        finally:
            self._stop.set()
            if self._console is not None:
                self._console.close()
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
            history = build_dir() / "shell_history"
            history.parent.mkdir(parents=True, exist_ok=True)
            return Shell(mi, sess, history).loop()
    finally:
        if started is not None:
            session.stop(only=started)
