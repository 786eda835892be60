"""Argument completion from a command's parser, and GDB-like styling of output: pure, no GDB."""

import argparse

from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.commands import completion, style
from gdb_rkvm.commands.completion import complete_arguments, completes, completions_for_word

REGS = ["HCR_EL2", "VBAR_EL1", "VBAR_EL2", "VTCR_EL2"]


def _parser():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true")
    completes(p.add_argument("--cpu"), lambda: ["0", "1"])
    p.add_argument("--regime", choices=("el1", "el2"))
    completes(p.add_argument("--elf"), completion.FILENAME)
    completes(p.add_argument("names", nargs="+"), lambda: REGS)
    return p


def test_positional_names_complete_case_insensitively():
    assert complete_arguments(_parser(), "vbar") == ["VBAR_EL1", "VBAR_EL2"]
    assert complete_arguments(_parser(), "HCR_EL2 V") == ["VBAR_EL1", "VBAR_EL2", "VTCR_EL2"]


def test_option_values_complete_from_choices_or_completer():
    assert complete_arguments(_parser(), "--regime ") == ["el1", "el2"]
    assert complete_arguments(_parser(), "--cpu ") == ["0", "1"]
    assert complete_arguments(_parser(), "--elf st") == completion.FILENAME


def test_a_flag_does_not_eat_the_next_word():
    assert complete_arguments(_parser(), "--json VB") == ["VBAR_EL1", "VBAR_EL2"]
    assert complete_arguments(_parser(), "--cpu 1 VB") == ["VBAR_EL1", "VBAR_EL2"]


def test_options_complete_after_a_dash():
    assert complete_arguments(_parser(), "--re") == ["--regime"]
    assert complete_arguments(_parser(), "HCR_EL2 --") == ["--cpu", "--elf", "--json", "--regime"]


def test_an_address_argument_hands_over_to_gdb_symbols():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("va")
    p.add_argument("--stage", type=int, choices=(1, 2))
    assert complete_arguments(p, "start_ker") == completion.EXPRESSION
    assert complete_arguments(p, "x y") == []          # no second positional


def test_word_cut_to_what_gdb_replaces():
    # GDB breaks words at '-': for "--reg" it asks to complete "reg".
    assert completions_for_word(["--regime"], "--reg", "reg") == ["regime"]
    assert completions_for_word(["VBAR_EL2"], "VBAR_E", "VBAR_E") == ["VBAR_EL2"]
    assert completions_for_word(["el1"], "--regime ", "") == ["el1"]


@given(st.text(alphabet="abcdefxyz_-0123 ", max_size=30))
def test_completion_never_raises_and_only_extends_the_last_word(text):
    found = complete_arguments(_parser(), text)
    if isinstance(found, str):
        assert found in (completion.EXPRESSION, completion.FILENAME)
        return
    partial = "" if not text.split() or text[-1].isspace() else text.split()[-1]
    assert all(c.upper().startswith(partial.upper()) for c in found)


PALETTE = style.StylePalette(address=style.sgr("blue"), symbol=style.sgr("yellow"), verdict=style.sgr("red", "bold"))


def test_paint_styles_addresses_symbols_and_verdicts():
    out = style.paint("0    EL1h  0xffff8000802688f8 <cpu_do_idle+0x8>  not RAM", PALETTE)
    assert "\x1b[34m0xffff8000802688f8\x1b[0m" in out
    assert "\x1b[33m<cpu_do_idle+0x8>\x1b[0m" in out
    assert "\x1b[1;31mnot RAM\x1b[0m" in out


def test_no_palette_no_escapes():
    text = "VBAR_EL2 0x409ac000 <rkvm_vec> wrong"
    assert style.paint(text, style.StylePalette()) == text
    assert style.sgr("none") == ""


@given(st.text(max_size=200))
def test_paint_only_adds_escapes(text):
    out = style.paint(text, PALETTE)
    stripped = out
    for code in {PALETTE.address, PALETTE.symbol, PALETTE.verdict, style.RESET}:
        stripped = stripped.replace(code, "")
    assert stripped == text.replace(PALETTE.address, "").replace(PALETTE.symbol, "").replace(
        PALETTE.verdict, "").replace(style.RESET, "")


def test_shell_toolbar_error_is_one_line():
    from gdb_rkvm.host.shell import toolbar_error
    assert toolbar_error("rkvm cpus: the target is running: interrupt it first (Ctrl-C or 'interrupt')").startswith(
        "CPUs: running (Ctrl-C")
    long = "'rkvm cpus --json' failed: Remote connection closed\nmore\nand more"
    assert toolbar_error(long) == "CPUs: 'rkvm cpus --json' failed: Remote connection closed"
    assert "\n" not in toolbar_error("x" * 500) and len(toolbar_error("x" * 500)) <= 110
