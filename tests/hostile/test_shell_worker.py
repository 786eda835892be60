"""`rkvm shell`'s command worker when a command dies of something other than an RkvmError (GDB's pipe
breaking mid-answer, a malformed `rkvm cpus --json` for the toolbar): one line in the dialogue, and the
shell takes the next command instead of answering 'busy' for ever."""

import threading
from types import SimpleNamespace

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gdb_rkvm.errors import RkvmError
from gdb_rkvm.host.shell_lines import DIALOGUE
from gdb_rkvm.host.shell_panes import ShellPanes


class DyingShell:
    def __init__(self, log, error):
        self.sess = SimpleNamespace(serial_log=str(log))
        self.toolbar, self.gdb_lock, self.error = "CPUs", threading.Lock(), error

    def complete(self, text):
        return []

    def run_command(self, line):
        raise self.error

    def refresh_toolbar(self):
        pass

    def interrupt(self):
        pass

    def close(self):
        pass


def _run_once(tmp_path, error) -> ShellPanes:
    with create_pipe_input() as inp:
        panes = ShellPanes(DyingShell(tmp_path / "serial.log", error), tmp_path / "history", input=inp,
                           output=DummyOutput())
        panes.running = "rkvm cpus"
        panes._run("rkvm cpus")
    return panes


def test_unexpected_error_is_one_line_and_frees_the_shell(tmp_path):
    panes = _run_once(tmp_path, KeyError("cpus"))
    assert panes.running is None
    last = panes.panes[DIALOGUE].lines()[-1]
    assert last == "rkvm shell: 'rkvm cpus' failed: KeyError: 'cpus'"
    assert "Traceback" not in panes.panes[DIALOGUE].text()


def test_rkvm_error_is_its_own_line(tmp_path):
    panes = _run_once(tmp_path, RkvmError("GDB is gone (Broken pipe)"))
    assert panes.running is None
    assert panes.panes[DIALOGUE].lines()[-1] == "GDB is gone (Broken pipe)"
