"""Text that came from the guest (or a profile, or a command line), made safe for where it goes.

The guest is untrusted: a module name, a section name, a panic message or a log line can hold any
bytes. Three destinations, three rules, all here:

- the user's terminal and report files: `escape()` shows every control character (ESC, BEL, CR, NUL,
  C1, bidirectional overrides...) as `\\xNN` / `\\uNNNN`, so nothing the guest wrote can move the
  cursor, retitle the terminal or hide text;
- report.md: `md_code_block()` fences with more backticks than any run in the content (guest text
  cannot close it), `md_text()` backslash-escapes what Markdown would interpret;
- GDB's command line: `gdb_arg()` quotes one argument the way GDB splits arguments (libiberty's
  buildargv: quotes and backslashes), and refuses control characters, because `gdb.execute` runs a
  string with a newline as two commands. `section_name()` refuses anything that is not an ELF
  section name.

No GDB here: pure functions, unit-tested (tests/hostile/).
"""

import re

# C0 controls except TAB, DEL, C1 controls, and the Unicode format characters that reorder or hide text
# (bidi embeddings/overrides/isolates, line/paragraph separators, BOM, ALM).
_FORMAT_CHARS = "\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff"
_UNSAFE = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_FORMAT_CHARS}]")
_UNSAFE_WITH_TAB = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT_CHARS}]")


def _hex(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape(text: str, *, tabs: bool = True) -> str:
    """`text` on one line with every control character shown as \\xNN (\\uNNNN above 0xff).
    TAB is kept unless tabs=False. Idempotent: backslashes are left alone."""
    if not isinstance(text, str):
        text = decode(text)
    return (_UNSAFE if tabs else _UNSAFE_WITH_TAB).sub(_hex, text)


def escape_lines(text: str) -> list[str]:
    """Multi-line guest text (a log) as escaped lines: split on newlines, CR and the rest escaped."""
    return [escape(line) for line in text.split("\n")]


def decode(data: bytes) -> str:
    """Guest bytes as text: UTF-8, anything else replaced (never a UnicodeDecodeError)."""
    return bytes(data).decode("utf-8", errors="replace")


_GDB_SIMPLE = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v",
               b"e": b"\x1b", b"\\": b"\\", b'"': b'"', b"'": b"'"}
_GDB_ESCAPE = re.compile(rb"\\([0-7]{1,3}|x[0-9a-fA-F]{1,2}|.)", re.S)


def _gdb_escape(m: re.Match) -> bytes:
    e = m.group(1)
    if re.fullmatch(rb"[0-7]+", e):
        return bytes([int(e, 8) & 0xFF])
    if e[:1] == b"x" and len(e) > 1:
        return bytes([int(e[1:], 16)])
    return _GDB_SIMPLE.get(e, b"\\" + e)


def gdb_unescape(text: str) -> str:
    """A C string as GDB prints it (`x/s`, `print`) back to the guest's text: `\\n`, `\\033`, `\\x1b`,
    `\\"` decoded, then escape()d, so (unlike Python's unicode_escape) GDB's harmless `\\033` never
    becomes a raw ESC again. Lines are joined with ' / ' (one line)."""
    raw = _GDB_ESCAPE.sub(_gdb_escape, text.encode("utf-8", errors="replace"))
    return escape(" / ".join(x for x in decode(raw).strip().split("\n")))


# ---- Markdown (report.md) ----

_MD_SPECIAL = re.compile(r"([\\`<>\[\]|*])")


def md_text(text: str) -> str:
    """Text for a Markdown paragraph or list item: escaped, and Markdown's active characters
    (HTML, links, code spans, table bars, emphasis) backslash-escaped so they show as themselves."""
    return _MD_SPECIAL.sub(r"\\\1", escape(text))


def longest_run(text: str, char: str = "`") -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(r) for r in runs), default=0)


def md_code_block(lines: list[str], info: str = "") -> list[str]:
    """A fenced code block around `lines` (escaped) that no line can close: the fence is one
    backtick longer than the longest run of backticks in the content (at least three)."""
    body = [escape(line) for line in lines]
    fence = "`" * max(3, longest_run("\n".join(body)) + 1)
    return [fence + info, *body, fence]


def md_inline_code(text: str) -> str:
    """`text` as an inline code span that its own backticks cannot end."""
    body = escape(text).replace("|", "\\|")
    ticks = "`" * (longest_run(body) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{ticks}{pad}{body}{pad}{ticks}"


# ---- GDB's command line ----

class UnsafeArgument(ValueError):
    """A string that must not reach gdb.execute: it holds control characters (a newline would run
    a second command)."""


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def gdb_arg(value) -> str:
    """One argument for a GDB command that splits its arguments like a shell without expansion
    (add-symbol-file, symbol-file, file: libiberty's buildargv): double-quoted, with backslash and
    double quote escaped. Paths with spaces or quotes work. Control characters are refused
    (UnsafeArgument): GDB splits gdb.execute's string into commands at newlines before any quoting."""
    text = str(value)
    bad = _CONTROL.search(text)
    if bad:
        raise UnsafeArgument(f"'{escape(text)}' holds a control character ({escape(bad.group(0))})")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# What a real ELF section name looks like: printable ASCII without spaces or quotes, dot-led in
# practice (.text, .init.text, .data..ro_after_init, __ksymtab+foo, .text.unlikely.*...).
_SECTION = re.compile(r"[A-Za-z0-9_.$@+\-]{1,128}")


def section_name(name: str) -> str:
    """`name` if it looks like an ELF section name, else UnsafeArgument (the caller skips it)."""
    if not _SECTION.fullmatch(name or ""):
        raise UnsafeArgument(f"section name '{escape(name)}' does not look like an ELF section name")
    return name
