"""The pure parts of `rkvm shell`'s panes: the bounded, escaped line buffer each pane shows, the keys
and what they do, and the toolbar's one line. No prompt_toolkit here (gdb_rkvm/shell_panes.py draws)."""

import codecs
import re
import threading
from collections import deque
from dataclasses import dataclass

from gdb_rkvm.model.guest_text import escape

DIALOGUE, GUEST = "dialogue", "guest"

# Terminal control sequences (CSI ... final byte, OSC ... BEL/ST): busybox's line editing sends
# cursor moves and a cursor-position query nobody answers. Dropped rather than shown as \x1b[K noise;
# whatever is left that is a control character is escape()d.
_CSI = re.compile(r"\x1b\[[0-9;?]{0,32}[ -/]{0,4}[@-~]|\x1b\][^\x07\x1b]{0,256}(?:\x07|\x1b\\)?")


@dataclass
class LineBuffer:
    """What a pane shows: the last `max_lines` lines, each escaped and at most `max_line` characters
    (longer lines are cut into pieces), plus the line being written (a shell prompt has no newline).
    Thread-safe: a follower thread feeds it while the screen is drawn."""

    max_lines: int = 2000
    max_line: int = 4000

    def __post_init__(self):
        self._lines: deque[str] = deque(maxlen=self.max_lines)
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()

    def feed_bytes(self, data: bytes) -> list[str]:
        """Guest bytes (a UTF-8 character may be split between two reads)."""
        return self.feed(self._decoder.decode(data))

    def feed(self, text: str) -> list[str]:
        """Add text; returns the lines it completed, as shown (the pane ignores them, a log prints them)."""
        done: list[str] = []
        with self._lock:
            parts = (self._partial + text.replace("\r\n", "\n")).split("\n")
            self._partial = parts.pop()
            for part in parts:
                done += self._add(part)
            while len(self._partial) > self.max_line:
                done += self._add(self._partial[:self.max_line])
                self._partial = self._partial[self.max_line:]
        return done

    def _add(self, raw: str) -> list[str]:
        shown = [_show(raw[start:start + self.max_line]) for start in range(0, max(len(raw), 1), self.max_line)]
        self._lines.extend(shown)
        return shown

    def lines(self) -> list[str]:
        with self._lock:
            tail = [_show(self._partial)] if self._partial else []
            return list(self._lines) + tail

    def text(self) -> str:
        return "\n".join(self.lines())


def _show(raw: str) -> str:
    """One line as the terminal may show it: control sequences dropped, a carriage return's overwrite
    kept (what follows the last CR), every other control character escaped."""
    raw = _CSI.sub("", raw).rstrip("\r")
    if "\r" in raw:
        raw = raw.rsplit("\r", 1)[1]
    return escape(raw)


# ---- keys: the same table drives the key bindings, the toolbar's hint and the docs ----

FOCUS_KEYS = ("c-t", "f2")
INTERRUPT_KEY = "c-c"
QUIT_KEY = "c-d"
SCROLL_KEYS = {"pageup": +1, "pagedown": -1}
PAGE = 10

def key_action(key: str, focus: str, running: bool, line_empty: bool) -> str | None:
    """What a key does in a pane: `switch` focus, `interrupt` the running guest (Ctrl-C, only while a
    command runs: never the end of the shell or its QEMU), `clear` the line being typed, `quit` (Ctrl-D
    on an empty dialogue line, when nothing runs), `scroll-up`/`scroll-down` that pane's lines;
    None: the key is the line editor's."""
    if key in FOCUS_KEYS:
        return "switch"
    if key == INTERRUPT_KEY:
        return "interrupt" if running else "clear"
    if key == QUIT_KEY:
        return "quit" if focus == DIALOGUE and line_empty and not running else None
    if key in SCROLL_KEYS:
        return "scroll-up" if SCROLL_KEYS[key] > 0 else "scroll-down"
    return None


def other(focus: str) -> str:
    return GUEST if focus == DIALOGUE else DIALOGUE


def key_name(key: str) -> str:
    """prompt_toolkit's key name as a user reads it: c-t -> Ctrl-T, f2 -> F2."""
    return "Ctrl-" + key[2:].upper() if key.startswith("c-") else key.upper()


def key_hint() -> str:
    return "/".join(key_name(k) for k in FOCUS_KEYS)


def toolbar_line(focus: str, running: str | None, cpus: str, width: int = 200) -> str:
    """The toolbar: one line, whatever the state (the guest running, GDB's error, a long CPU list)."""
    switch = f"{key_hint()}: {'dialogue' if focus == GUEST else 'guest console'}"
    if running is not None:
        state = f"guest running ({running[:40]}): Ctrl-C stops it"
    elif focus == GUEST:
        state = "guest stopped: typed lines wait until it runs ('continue' in the dialogue)"
    else:
        state = cpus
    line = " ".join(f"{state} | {switch}".split())
    return escape(line if len(line) <= width else line[:width - 3] + "...")
