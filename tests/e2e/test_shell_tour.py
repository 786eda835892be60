"""`rkvm shell` driven through prompt_toolkit's own pipe input (the tour: test_tour.py)."""


import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gdb_rkvm.host.shell import RkvmCompleter, Shell, gdb_completions
from gdb_rkvm.host.mi import GdbMi

pytestmark = pytest.mark.lab


def complete(completer, text):
    return [c.text for c in completer.get_completions(Document(text), None)]


def test_completion_comes_from_gdb(start_lab, gdb_on):
    """The shell asks GDB: every rkvm command (kaslr too), their arguments, GDB's symbols."""
    mi = gdb_on(start_lab())
    c = RkvmCompleter(lambda text: gdb_completions(mi, text))
    subs = complete(c, "rkvm ")
    assert {"status", "stub", "step-el2", "kaslr", "cpus", "hvc"} <= set(subs)
    assert complete(c, "rkvm st") == sorted(x for x in subs if x.startswith("st"))
    assert "VBAR_EL2" in complete(c, "rkvm sysreg VBAR")
    assert "--regime" in complete(c, "rkvm walk --reg")
    assert "start_kernel" in complete(c, "break start_ker")
    assert "rkvm" in complete(c, "rk")
    assert complete(c, "") == [] and complete(c, "p \x1b") == []


def test_shell_round_trip(lab_built, start_lab, tmp_path):
    sess = start_lab()
    printed = []
    with GdbMi() as mi, create_pipe_input() as inp:
        with create_app_session(input=inp, output=DummyOutput()):
            shell = Shell(mi, sess, tmp_path / "history", input=inp, output=DummyOutput(), emit=printed.append)
            inp.send_text("rkvm status\r")
            inp.send_text("p 6*7\r")
            inp.send_text("quit\r")
            assert shell.loop() == 0
    out = "".join(printed)
    assert "target    connected, 2 vCPUs, stopped" in out
    assert "$1 = 42" in out
    assert shell.toolbar.startswith("CPU0 EL2h 0x40000000")
    assert "rkvm status" in (tmp_path / "history").read_text()   # persistent history

