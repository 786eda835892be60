"""`rkvm shell`: a prompt_toolkit console on a session, every command passed to GDB over GDB/MI.

Completion for `rkvm` subcommands, system register names and kernel symbols; persistent history;
a bottom toolbar with each CPU's EL and PC (refreshed after every command); the guest's serial
output printed above the prompt as it arrives (interleaved).
"""

import threading
import time
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout

from . import profiles, session
from .arch import sysregs
from .errors import RkvmError
from .guest_text import escape
from .paths import build_dir
from .target.mi import GdbMi

SUBCOMMANDS = ["status", "run-to", "modules", "cpus", "el", "sysreg", "esr", "vectors", "walk", "v2p", "contig",
               "vmmap", "p2v", "stub", "hvc catch", "hvc last", "hvc trace", "step-el2", "trace-el", "snapshot"]
GDB_WORDS = ["continue", "stepi", "nexti", "break", "tbreak", "delete", "info registers", "info threads", "thread",
             "bt", "x/", "print", "p/x", "disassemble", "interrupt", "quit"]


def kernel_symbols(vmlinux: str, limit: int = 400000) -> list[str]:
    """Function and object names from vmlinux's symbol table (for completion)."""
    from elftools.elf.elffile import ELFFile
    names = []
    try:
        with open(vmlinux, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab else []:
                if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT") and len(names) < limit:
                    names.append(sym.name)
    except (OSError, ValueError):
        return []
    return sorted(set(names))


class RkvmCompleter(Completer):
    """rkvm subcommands after `rkvm `, register names after `sysreg`, symbols elsewhere."""

    def __init__(self, symbols_source):
        self.symbols_source = symbols_source   # callable -> list[str], filled in the background

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        if text.startswith("rkvm ") and text.count(" ") == 1:
            for sub in SUBCOMMANDS:
                if sub.startswith(word):
                    yield Completion(sub, start_position=-len(word))
            return
        if text.startswith("rkvm sysreg ") or text.startswith("p $"):
            for name in sysregs.names():
                if name.upper().startswith(word.upper().lstrip("$")):
                    yield Completion(name, start_position=-len(word.lstrip("$")))
            return
        if " " not in text:
            for w in ["rkvm"] + GDB_WORDS:
                if w.startswith(word):
                    yield Completion(w, start_position=-len(word))
            return
        if len(word) >= 3:
            count = 0
            for name in self.symbols_source():
                if name.startswith(word):
                    yield Completion(name, start_position=-len(word))
                    count += 1
                    if count >= 50:
                        return


class Shell:
    """The console's state: GDB/MI, the toolbar text and the serial follower."""

    def __init__(self, mi: GdbMi, sess: session.Session, history: Path, input=None, output=None, emit=None):
        self.mi, self.sess = mi, sess
        self.emit = emit or (lambda text: print(text, end="", flush=True))
        self.toolbar = "CPUs: (not read yet)"
        self._symbols: list[str] = []
        threading.Thread(target=self._load_symbols, daemon=True).start()
        self.prompt = PromptSession(history=FileHistory(str(history)), completer=RkvmCompleter(lambda: self._symbols),
                                    bottom_toolbar=lambda: self.toolbar, input=input, output=output)
        self._serial_pos = Path(sess.serial_log).stat().st_size if Path(sess.serial_log).exists() else 0
        self._stop = threading.Event()

    def _load_symbols(self):
        if self.sess.vmlinux:
            self._symbols = kernel_symbols(self.sess.vmlinux)

    def refresh_toolbar(self) -> None:
        try:
            data = self.mi.json("rkvm cpus", timeout=30)
        except RkvmError as e:
            self.toolbar = f"CPUs: {e}"
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

    def execute(self, line: str) -> str:
        """Run one line in GDB; return what it printed (and its error). Ctrl-C while it runs (a `continue`)
        interrupts the guest, as in GDB; the shell goes on."""
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
