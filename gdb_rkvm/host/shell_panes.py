"""`rkvm shell` on a terminal: a full-screen prompt_toolkit layout of two panes.

Top, the guest's serial console: what the guest writes (followed from the session's serial log,
escaped, the last lines kept), and a line where what is typed goes to the guest's serial port. Below,
the dialogue with GDB: its output, the `(rkvm)` line with completion and history. At the bottom, one
toolbar line. F2 or Ctrl-T switches panes; Ctrl-C stops the guest while a command runs; Ctrl-D (or
`quit`) on an empty dialogue line leaves. Commands run in a worker thread so the screen (and Ctrl-C)
stays live while the guest runs.
"""

import threading
from pathlib import Path

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import (BufferControl, Dimension, Float, FloatContainer, FormattedTextControl,
                                   HSplit, Layout, Window)
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.layout.processors import BeforeInput

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.host.shell import RkvmCompleter, Shell, follow_serial
from gdb_rkvm.host.shell_lines import (DIALOGUE, FOCUS_KEYS, GUEST, INTERRUPT_KEY, PAGE, QUIT_KEY, SCROLL_KEYS,
                                       LineBuffer, key_action, key_hint, other, toolbar_line)

GUEST_BACKLOG = 16384   # bytes of the serial log shown at start (the boot's last lines)


class ShellPanes:
    """The panes' state (focus, the running command, each pane's lines and scroll) and its Application."""

    def __init__(self, shell: Shell, history: Path, input=None, output=None, max_lines: int = 2000):
        self.shell = shell
        self.panes = {GUEST: LineBuffer(max_lines), DIALOGUE: LineBuffer(max_lines)}
        self.back = {GUEST: 0, DIALOGUE: 0}   # lines scrolled back from the end, per pane
        self.focus = DIALOGUE
        self.running: str | None = None
        self.worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.command = Buffer(name=DIALOGUE, multiline=False, history=FileHistory(str(history)),
                              completer=RkvmCompleter(shell.complete), accept_handler=self._accept_command)
        self.typed = Buffer(name=GUEST, multiline=False, accept_handler=self._accept_guest)
        self.inputs = {DIALOGUE: Window(BufferControl(self.command, input_processors=[BeforeInput("(rkvm) ")]),
                                        height=1),
                       GUEST: Window(BufferControl(self.typed, input_processors=[BeforeInput("guest> ")]),
                                     height=1)}
        self.app = Application(layout=self._layout(), key_bindings=self._bindings(), full_screen=True,
                               input=input, output=output, mouse_support=False)
        self.app.layout.focus(self.inputs[DIALOGUE])
        self.panes[DIALOGUE].feed(f"rkvm shell: {key_hint()} switches between this dialogue with GDB and the "
                                  "guest's serial console; Ctrl-C stops the guest; Ctrl-D or 'quit' leaves.\n")

    # ---- layout ----

    def _pane(self, name: str, weight: int) -> Window:
        buf = self.panes[name]

        def cursor() -> Point:
            # the window scrolls to keep this line in view: the end, or as far back as PageUp went
            return Point(0, max(0, len(buf.lines()) - 1 - self.back[name]))

        # a preferred height past any screen: the panes share the rows by weight, however full they are
        return Window(FormattedTextControl(lambda: buf.text(), get_cursor_position=cursor, focusable=False),
                      wrap_lines=True, height=Dimension(min=3, preferred=1000, weight=weight))

    def _title(self, name: str, label: str) -> Window:
        def text():
            mark = ">>" if self.focus == name else "  "
            back = f" (scrolled back {self.back[name]} lines; PageDown returns)" if self.back[name] else ""
            return [("reverse" if self.focus == name else "", f"{mark} {label}{back} ".ljust(300, "-"))]
        return Window(FormattedTextControl(text), height=1)

    def _layout(self) -> Layout:
        body = HSplit([
            self._title(GUEST, "guest console (serial)"),
            self._pane(GUEST, 2),
            self.inputs[GUEST],
            self._title(DIALOGUE, "GDB / rkvm"),
            self._pane(DIALOGUE, 3),
            self.inputs[DIALOGUE],
            Window(FormattedTextControl(lambda: [("reverse", self.toolbar())]), height=1),
        ])
        return Layout(FloatContainer(body, floats=[Float(xcursor=True, ycursor=True,
                                                         content=CompletionsMenu(max_height=12))]))

    def toolbar(self) -> str:
        return toolbar_line(self.focus, self.running, self.shell.toolbar)

    # ---- keys ----

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        for key in (*FOCUS_KEYS, INTERRUPT_KEY, QUIT_KEY, *SCROLL_KEYS):
            kb.add(key, eager=True)(self._key(key))
        return kb

    def _key(self, key: str):
        def handler(event) -> None:
            buf = self.command if self.focus == DIALOGUE else self.typed
            action = key_action(key, self.focus, self.running is not None, not buf.text)
            self.act(action, buf)
        return handler

    def act(self, action: str | None, buf: Buffer) -> None:
        if action == "switch":
            self.focus = other(self.focus)
            self.app.layout.focus(self.inputs[self.focus])
        elif action == "interrupt":
            self.shell.interrupt()
            self.panes[DIALOGUE].feed("(Ctrl-C: stopping the guest)\n")
        elif action == "clear":
            buf.reset()
        elif action == "quit":
            self.app.exit(result=0)
        elif action == "scroll-up":
            self.back[self.focus] = min(self.back[self.focus] + PAGE, max(0, len(self.panes[self.focus].lines()) - 1))
        elif action == "scroll-down":
            self.back[self.focus] = max(0, self.back[self.focus] - PAGE)

    # ---- lines typed ----

    def _accept_command(self, buf: Buffer) -> bool:
        line = buf.text.strip()
        if not line:
            return False
        if self.running is not None:
            self.panes[DIALOGUE].feed(f"busy: '{self.running}' runs (Ctrl-C stops the guest); not run: {line}\n")
            return False
        if line in ("quit", "exit", "q"):
            self.app.exit(result=0)
            return False
        self.back[DIALOGUE] = 0
        self.panes[DIALOGUE].feed(f"(rkvm) {line}\n")
        self.running = line
        self.worker = threading.Thread(target=self._run, args=(line,), daemon=True)
        self.worker.start()
        return False

    def _run(self, line: str) -> None:
        try:
            out = self.shell.run_command(line)
        except RkvmError as e:
            out = f"{e}\n"
        except Exception as e:   # a traceback in this thread would scribble over the screen
            # and leave `running` set: the shell would refuse every later command as busy
            out = f"rkvm shell: {line!r} failed: {type(e).__name__}: {e}\n"
        finally:
            self.running = None
        self.panes[DIALOGUE].feed(out if not out or out.endswith("\n") else out + "\n")
        self.app.invalidate()

    def _accept_guest(self, buf: Buffer) -> bool:
        try:
            self.shell.send_to_guest(buf.text + "\n")
        except RkvmError as e:
            self.panes[DIALOGUE].feed(f"{e}\n")
        self.back[GUEST] = 0
        return False

    # ---- life ----

    def _guest_output(self, data: bytes) -> None:
        self.panes[GUEST].feed_bytes(data)
        self.app.invalidate()

    def run(self) -> int:
        log = Path(self.shell.sess.serial_log)
        start = max(0, log.stat().st_size - GUEST_BACKLOG) if log.exists() else 0
        follower = threading.Thread(target=follow_serial, args=(str(log), self._guest_output, self._stop, start),
                                    daemon=True)
        follower.start()
        try:
            with self.shell.gdb_lock:
                self.shell.refresh_toolbar()
            return self.app.run(handle_sigint=False) or 0
        finally:
            self._stop.set()
            if self.running is not None:
                self.shell.interrupt()   # GDB is ended next (run_shell): the guest stops first
            follower.join(timeout=2)
            self.shell.close()
