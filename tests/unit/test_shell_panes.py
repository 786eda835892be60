"""`rkvm shell`'s panes without QEMU: the line buffer, the key table, the toolbar line, and the
full-screen Application driven through prompt_toolkit's pipe input against a stand-in for the session
(the same keys against the real lab: tests/e2e/test_shell_tour.py)."""

import asyncio
import threading
import time
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gdb_rkvm.host.shell_lines import (DIALOGUE, FOCUS_KEYS, GUEST, LineBuffer, key_action, key_hint, other,
                                  toolbar_line)
from gdb_rkvm.host.shell_panes import ShellPanes

CTRL_T, F2, CTRL_C, CTRL_D, PAGE_UP, PAGE_DOWN = "\x14", "\x1bOQ", "\x03", "\x04", "\x1b[5~", "\x1b[6~"


# ---- the line buffer ----

def test_lines_split_and_partial_prompt():
    b = LineBuffer()
    assert b.feed("Booting\r\nshell ready\n/ # ") == ["Booting", "shell ready"]
    assert b.lines() == ["Booting", "shell ready", "/ # "]
    assert b.feed("echo hi\r\n") == ["/ # echo hi"]


def test_lines_escape_guest_control_characters():
    b = LineBuffer()
    b.feed("a\x1b]0;pwned title\x07b \x1b[6n\x1b[Kc \x07\x00\u202e d\n")
    assert b.lines() == ["ab c \\x07\\x00\\u202e d"]
    b.feed("progress 10%\rprogress 99%\n")
    assert b.lines()[-1] == "progress 99%"


def test_lines_utf8_split_between_reads():
    b = LineBuffer()
    data = "été\n".encode()
    b.feed_bytes(data[:1])
    b.feed_bytes(data[1:])
    assert b.lines() == ["été"]


def test_lines_bounded():
    b = LineBuffer(max_lines=5, max_line=8)
    b.feed("".join(f"line {i}\n" for i in range(100)))
    assert b.lines() == [f"line {i}" for i in range(95, 100)]
    b.feed("x" * 100)   # no newline: cut into pieces, never one unbounded line
    assert all(len(line) <= 8 for line in b.lines()) and len(b.lines()) <= 6


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(1, 20), st.integers(1, 50))
def test_lines_property_bounded_and_safe(chunks, max_lines, max_line):
    b = LineBuffer(max_lines=max_lines, max_line=max_line)
    for chunk in chunks:
        for line in b.feed_bytes(chunk):
            assert "\n" not in line
    lines = b.lines()
    assert len(lines) <= max_lines + 1
    for line in lines:
        assert not any(ord(c) < 0x20 and c != "\t" or 0x7f <= ord(c) <= 0x9f for c in line)
        assert len(line) <= 6 * max_line   # each character escaped is at most \uNNNN


# ---- keys and toolbar ----

def test_key_table():
    for key in FOCUS_KEYS:
        assert key_action(key, DIALOGUE, False, True) == "switch" == key_action(key, GUEST, True, False)
    assert key_action("c-c", DIALOGUE, True, True) == "interrupt" == key_action("c-c", GUEST, True, False)
    assert key_action("c-c", DIALOGUE, False, False) == "clear"   # never the end of the shell
    assert key_action("c-d", DIALOGUE, False, True) == "quit"
    assert key_action("c-d", DIALOGUE, True, True) is None     # not while the guest runs
    assert key_action("c-d", GUEST, False, True) is None
    assert key_action("c-d", DIALOGUE, False, False) is None   # the editor's delete
    assert key_action("pageup", GUEST, False, True) == "scroll-up"
    assert key_action("pagedown", GUEST, False, True) == "scroll-down"
    assert key_action("a", GUEST, False, True) is None
    assert other(GUEST) == DIALOGUE and other(DIALOGUE) == GUEST
    assert key_hint() == "Ctrl-T/F2"


@given(st.sampled_from([DIALOGUE, GUEST]), st.one_of(st.none(), st.text(max_size=200)), st.text(max_size=500))
def test_toolbar_one_line(focus, running, cpus):
    line = toolbar_line(focus, running, cpus)
    assert "\n" not in line and len(line) <= 200 * 6
    assert "Ctrl-T/F2" in line or len(line) >= 190
    if running is not None:
        assert line.startswith("guest running")


def test_toolbar_running_says_so():
    line = toolbar_line(DIALOGUE, "continue", "CPU0 EL1h 0x0")
    assert line == "guest running (continue): Ctrl-C stops it | Ctrl-T/F2: guest console"
    assert toolbar_line(DIALOGUE, None, "CPU0 EL1h 0x0") == "CPU0 EL1h 0x0 | Ctrl-T/F2: guest console"
    assert toolbar_line(GUEST, None, "x").endswith("| Ctrl-T/F2: dialogue")


# ---- the Application, through pipe input, on a stand-in session ----

class FakeShell:
    """What ShellPanes needs of gdb_rkvm.host.shell.Shell: `continue` runs until interrupt(); a line typed
    into the guest comes back on the serial log as a shell would echo and answer it."""

    def __init__(self, log):
        self.sess = SimpleNamespace(serial_log=str(log))
        self.log = log
        self.toolbar = "CPU0 EL1h 0xffff800080000000"
        self.gdb_lock = threading.Lock()
        self.stopped = threading.Event()
        self.commands, self.typed, self.interrupts = [], [], 0

    def complete(self, text):
        return ["rkvm status", "rkvm stub"] if text.startswith("rkvm s") else []

    def refresh_toolbar(self):
        pass

    def run_command(self, line):
        self.commands.append(line)
        if line == "continue":
            assert self.stopped.wait(10)
            self.stopped.clear()
            return "\nProgram received signal SIGINT, Interrupt.\n"
        return f"ran {line}\n"

    def send_to_guest(self, text):
        self.typed.append(text)
        with open(self.log, "ab") as f:
            f.write(f"{text.strip()}\r\n{text.split(' ', 1)[1].strip()}\r\n/ # ".encode())

    def interrupt(self):
        self.interrupts += 1
        self.stopped.set()

    def close(self):
        pass


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_panes_switch_type_interrupt(tmp_path):
    log = tmp_path / "serial.log"
    log.write_bytes(b"boot line\n/ # ")
    shell = FakeShell(log)
    with create_pipe_input() as inp:
        panes = ShellPanes(shell, tmp_path / "history", input=inp, output=DummyOutput())
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("rc", panes.run()), daemon=True)
        t.start()
        wait_for(lambda: "boot line" in panes.panes[GUEST].lines())        # the log's tail at start
        inp.send_text(CTRL_T)
        wait_for(lambda: panes.focus == GUEST)
        assert "Ctrl-T/F2: dialogue" in panes.toolbar()
        inp.send_text("echo hello-from-pane\r")
        wait_for(lambda: "hello-from-pane" in panes.panes[GUEST].lines())
        assert shell.typed == ["echo hello-from-pane\n"] and shell.commands == []
        assert "hello-from-pane" not in panes.panes[DIALOGUE].text()
        inp.send_text(F2)
        wait_for(lambda: panes.focus == DIALOGUE)
        inp.send_text("rkvm st\t")                                        # GDB's completions, in a menu
        wait_for(lambda: panes.command.complete_state is not None)
        inp.send_text("\t")
        wait_for(lambda: panes.command.text == "rkvm status")
        inp.send_text(CTRL_C)                                             # not running: clears the line
        wait_for(lambda: panes.command.text == "")
        inp.send_text("continue\r")
        wait_for(lambda: panes.running == "continue")
        assert panes.toolbar().startswith("guest running (continue): Ctrl-C stops it")
        inp.send_text("p 1\r")                                            # refused while it runs
        wait_for(lambda: "busy: 'continue' runs" in panes.panes[DIALOGUE].text())
        inp.send_text(CTRL_D)                                             # no quitting while it runs
        inp.send_text(CTRL_C)
        wait_for(lambda: panes.running is None)
        assert shell.interrupts == 1 and t.is_alive()
        assert "Program received signal SIGINT" in panes.panes[DIALOGUE].text()
        inp.send_text("rkvm status\r")
        wait_for(lambda: "ran rkvm status" in panes.panes[DIALOGUE].lines())
        inp.send_text(PAGE_UP)
        wait_for(lambda: panes.back[DIALOGUE] > 0)
        inp.send_text(PAGE_DOWN)
        wait_for(lambda: panes.back[DIALOGUE] == 0)
        inp.send_text("quit\r")
        t.join(10)
    assert not t.is_alive() and result["rc"] == 0
    assert shell.commands == ["continue", "rkvm status"]
    assert "rkvm status" in (tmp_path / "history").read_text()


def render(panes, width=100, height=24) -> list[str]:
    """The rows prompt_toolkit would draw, read from its screen buffer (no terminal)."""
    from prompt_toolkit.application.current import set_app
    from prompt_toolkit.layout.mouse_handlers import MouseHandlers
    from prompt_toolkit.layout.screen import Screen, WritePosition

    async def draw():
        screen = Screen()
        with set_app(panes.app):
            panes.app.layout.container.write_to_screen(screen, MouseHandlers(), WritePosition(0, 0, width, height),
                                                       "", erase_bg=False, z_index=None)
        return ["".join(screen.data_buffer[y][x].char for x in range(width)).rstrip() for y in range(height)]
    return asyncio.run(draw())


def test_screen_guest_on_top_dialogue_below_toolbar_last(tmp_path):
    log = tmp_path / "serial.log"
    log.write_bytes(b"")
    with create_pipe_input() as inp:
        panes = ShellPanes(FakeShell(log), tmp_path / "history", input=inp, output=DummyOutput())
        panes.panes[GUEST].feed("".join(f"boot line {i}\n" for i in range(40)))
        panes.panes[GUEST].feed("evil \x1b[31mred\x1b]0;title\x07 \x07 end\n/ # ")
        rows = render(panes)
    assert rows[0].startswith("   guest console (serial) ---")
    assert rows[-1] == "CPU0 EL1h 0xffff800080000000 | Ctrl-T/F2: guest console"
    assert rows[-2] == "(rkvm)"
    assert rows.index("guest>") < next(i for i, r in enumerate(rows) if r.startswith(">> GDB / rkvm"))
    assert "evil red \\x07 end" in rows and "/ #" in rows and "boot line 39" in rows
    assert "boot line 0" not in rows                                 # scrolled to the end
    assert not any(c in row for row in rows for c in "\x1b\x07")


def test_follow_serial_in_bounded_chunks_and_a_new_log(tmp_path):
    from gdb_rkvm.host.shell import follow_serial
    log = tmp_path / "serial.log"
    log.write_bytes(b"old\n")
    got, stop = [], threading.Event()
    t = threading.Thread(target=follow_serial, args=(str(log), got.append, stop, 4),
                         kwargs={"chunk": 4, "period": 0.01})
    t.start()
    try:
        with open(log, "ab") as f:
            f.write(b"0123456789")
        wait_for(lambda: b"".join(got) == b"0123456789")
        assert max(len(c) for c in got) <= 4                       # never more than a chunk at a time
        log.write_bytes(b"new\n")                                  # shorter: a new session's log
        wait_for(lambda: b"".join(got).endswith(b"new\n"))
    finally:
        stop.set()
        t.join(2)
    assert not t.is_alive()
