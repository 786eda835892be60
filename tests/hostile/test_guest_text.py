"""Guest bytes reach the terminal, report.md and GDB's command line only through gdb_rkvm.model.guest_text."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.model import guest_text as gt

TITLE_AND_CLEAR = "\x1b]0;pwned\x07\x1b[2J\r"


def test_escape_shows_every_control_character():
    out = gt.escape(f"panic {TITLE_AND_CLEAR}\x00\x9b\u202e end")
    assert out == "panic \\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x00\\x9b\\u202e end"
    assert gt.escape("tab\tstays") == "tab\tstays" and gt.escape("a\tb", tabs=False) == "a\\x09b"


@given(st.text())
def test_escaped_text_is_printable_and_one_line(text):
    out = gt.escape(text)
    assert not any(ord(c) < 0x20 and c != "\t" or 0x7F <= ord(c) <= 0x9F for c in out)
    assert "\n" not in out and gt.escape(out) == out   # idempotent


def test_gdb_printed_escapes_do_not_become_esc_again():
    # x/s prints the guest's ESC as \033; Python's unicode_escape turned it back into a raw ESC
    printed = r"\033]0;pwned\007\033[2JKernel \"boom\"\n"
    assert "\x1b" in printed.encode().decode("unicode_escape")   # the old way: a raw ESC on the terminal
    out = gt.gdb_unescape(printed)
    assert out == '\\x1b]0;pwned\\x07\\x1b[2JKernel "boom"'
    assert "\x1b" not in out and "\x07" not in out


def test_gdb_unescape_bytes_above_0x7f_are_replaced_not_raised():
    assert gt.gdb_unescape(r"caf\303\251 \377\376") == "café \ufffd\ufffd"


def test_code_block_cannot_be_closed_by_guest_text():
    log = ["ok", "```", "# INJECTED heading", "````` five", "\x1b[2J"]
    block = gt.md_code_block(log)
    fence = block[0]
    assert fence == "``````" and block[-1] == fence           # longer than the longest run (5)
    assert all(not line.startswith(fence) for line in block[1:-1])
    assert "\\x1b[2J" in block and "\x1b" not in "".join(block)


def test_markdown_text_and_inline_code_are_inert():
    t = gt.md_text("<img src=x onerror=alert(1)> [link](http://x) `code` | \x07")
    assert not re.search(r"(?<!\\)[<\[\]`|]", t) and "\x07" not in t   # every active character escaped
    assert gt.md_inline_code("a`b") == "``a`b``" and gt.md_inline_code("`x") == "`` `x ``"


@pytest.mark.parametrize("path", ["/tmp/with space/vmlinux", '/tmp/q"uote/x', "/tmp/back\\slash/x", "/t/'s'"])
def test_gdb_arg_quotes_paths_with_spaces_and_quotes(path):
    quoted = gt.gdb_arg(path)
    assert buildargv(quoted) == [path]


@pytest.mark.parametrize("bad", ["/tmp/x\nshell touch /tmp/pwned", "/tmp/x\r", "a\x00b", "\x1b[2J"])
def test_gdb_arg_refuses_control_characters(bad):
    with pytest.raises(gt.UnsafeArgument, match="control character"):
        gt.gdb_arg(bad)


@pytest.mark.parametrize("name", [".text.x 0x1\nshell touch /tmp/pwned;", ".data; shell id", ".text\x1b", "",
                                  ".x" * 100, '.t"ext', ".text -s .data 0x0"])
def test_section_names_that_are_not_elf_section_names_are_refused(name):
    with pytest.raises(gt.UnsafeArgument):
        gt.section_name(name)


@pytest.mark.parametrize("name", [".text", ".init.text", ".data..ro_after_init", "__ksymtab_gpl", ".text.unlikely.x",
                                  "__param", ".rodata.str1.8", ".bss"])
def test_real_section_names_pass(name):
    assert gt.section_name(name) == name


def buildargv(text: str) -> list[str]:
    """libiberty's buildargv, which GDB's add-symbol-file, symbol-file and file use to split arguments."""
    out, arg, sq, dq, bs, in_arg = [], [], False, False, False, False
    for c in text:
        if c.isspace() and not (sq or dq or bs):
            if in_arg:
                out.append("".join(arg))
                arg, in_arg = [], False
            continue
        in_arg = True
        if bs:
            arg.append(c)
            bs = False
        elif c == "\\":
            bs = True
        elif sq:
            sq = c != "'" and (arg.append(c) or True)
        elif dq:
            dq = c != '"' and (arg.append(c) or True)
        elif c == "'":
            sq = True
        elif c == '"':
            dq = True
        else:
            arg.append(c)
    if in_arg:
        out.append("".join(arg))
    return out
