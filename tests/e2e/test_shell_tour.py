"""`rkvm shell` on the lab: its panes driven through prompt_toolkit's own pipe input, on a real terminal
(a pty), and without one (the tour: test_tour.py)."""


import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gdb_rkvm.qemu import session
from gdb_rkvm.paths import REPO
from gdb_rkvm.host.shell import RkvmCompleter, Shell, gdb_completions
from gdb_rkvm.host.shell_lines import DIALOGUE, GUEST
from gdb_rkvm.host.shell_panes import ShellPanes
from gdb_rkvm.host.mi import GdbMi
from tests.conftest import no_new_qemu

pytestmark = pytest.mark.lab

CTRL_T, F2, CTRL_C = "\x14", "\x1bOQ", "\x03"


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


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_panes_guest_console_and_dialogue(lab_built, start_lab, tmp_path):
    """Through prompt_toolkit's pipe input on the lab: `continue` boots the guest into its console pane,
    Ctrl-C stops it and the shell stays; a line typed in the console pane reaches the guest's shell,
    whose answer shows in that pane only; back in the dialogue an rkvm command runs."""
    sess = start_lab()
    with GdbMi() as mi, create_pipe_input() as inp:
        shell = Shell(mi, sess)
        panes = ShellPanes(shell, tmp_path / "history", input=inp, output=DummyOutput())
        done = {}
        t = threading.Thread(target=lambda: done.setdefault("rc", panes.run()), daemon=True)
        t.start()
        try:
            wait_for(lambda: shell.toolbar.startswith("CPU0 EL2h 0x40000000"), 30, "the CPU toolbar at reset")
            inp.send_text("continue\r")
            wait_for(lambda: panes.running == "continue", 10, "continue running")
            assert panes.toolbar() == "guest running (continue): Ctrl-C stops it | Ctrl-T/F2: guest console"
            wait_for(lambda: "RKVM-LAB: shell ready" in panes.panes[GUEST].text(), 120, "the guest's shell")
            t0 = time.monotonic()
            inp.send_text(CTRL_C)
            wait_for(lambda: panes.running is None, 30, "the guest stopping on Ctrl-C")
            stop_s = time.monotonic() - t0
            assert t.is_alive() and sess.alive() and session.qemu_status(sess) != "running"
            assert "SIGINT" in panes.panes[DIALOGUE].text()
            assert "running" not in shell.toolbar and "\n" not in panes.toolbar()

            inp.send_text(CTRL_T)
            wait_for(lambda: panes.focus == GUEST, 5, "focus on the guest console")
            inp.send_text("echo hello-from-pane\r")
            inp.send_text(F2)
            wait_for(lambda: panes.focus == DIALOGUE, 5, "focus back on the dialogue")
            inp.send_text("continue\r")
            wait_for(lambda: "hello-from-pane" in panes.panes[GUEST].lines(), 60, "the guest's echo")
            inp.send_text(CTRL_C)
            wait_for(lambda: panes.running is None, 30, "the guest stopping on the second Ctrl-C")
            assert "hello-from-pane" not in panes.panes[DIALOGUE].text()
            assert any(line.endswith("echo hello-from-pane") for line in panes.panes[GUEST].lines())

            inp.send_text("rkvm status\r")
            wait_for(lambda: "target    connected, 2 vCPUs, stopped" in panes.panes[DIALOGUE].text(), 60,
                     "rkvm status in the dialogue")
            inp.send_text("p 6*7\r")
            wait_for(lambda: "$1 = 42" in panes.panes[DIALOGUE].lines(), 30, "p 6*7")
            inp.send_text("quit\r")
            t.join(30)
        finally:
            if t.is_alive():
                shell.interrupt()
                panes.app.exit(result=1)
                t.join(30)
    assert done.get("rc") == 0 and sess.alive()       # the shell's end is not its session's
    assert "rkvm status" in (tmp_path / "history").read_text()   # persistent history
    print(f"Ctrl-C to stopped: {stop_s:.2f} s")


def test_shell_without_a_terminal(lab_built, session_dir):
    """Piped input: each line runs, the output is plain text, and the QEMU the shell started ends with it."""
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "shell"], cwd=REPO, capture_output=True,
                             text=True, timeout=180,
                             input="rkvm status\nrkvm run-to installed-all\np 6*7\nquit\n")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    out = res.stdout
    assert "(rkvm) rkvm status\nsession   lab" in out and "target    connected, 2 vCPUs, stopped" in out
    assert "(rkvm) p 6*7\n$1 = 42\n" in out
    assert "[guest] Booting Linux" in out          # the guest's serial output, while run-to ran
    assert "\x1b" not in res.stdout and session.current(session_dir) is None


def test_shell_on_a_terminal_ctrl_c_stops_the_guest_not_the_shell(lab_built, session_dir):
    """`rkvm shell` on a real terminal (a pty): the panes; Ctrl-C during `continue` stops the guest, the
    shell and its QEMU stay; `quit` ends the shell and the QEMU it started."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    screen: list = []
    stop = threading.Event()

    def drain():   # the shell's screen must be read, or its writes to the terminal block
        while not stop.is_set():
            if select.select([master], [], [], 0.2)[0]:
                try:
                    screen.append(os.read(master, 65536).decode(errors="replace"))
                except OSError:
                    return

    with no_new_qemu():
        proc = subprocess.Popen([sys.executable, "-m", "gdb_rkvm.host.cli", "shell"], cwd=REPO, stdin=slave,
                                stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            wait_for(lambda: "CPU0 EL2h" in "".join(screen), 120, "the panes' toolbar")
            sess = session.current(session_dir)
            assert sess is not None and "guest console (serial)" in "".join(screen)
            os.write(master, b"continue\r")
            log = Path(sess.serial_log)
            wait_for(lambda: b"RKVM-LAB: shell ready" in log.read_bytes(), 120, "the guest's shell")
            os.write(master, b"\x03")
            wait_for(lambda: session.qemu_status(sess) not in ("running", None), 30, "the guest stopped")
            time.sleep(1.0)
            assert proc.poll() is None and sess.alive()
            os.write(master, b"quit\r")
            assert proc.wait(timeout=60) == 0
            wait_for(lambda: not sess.alive(), 10, "QEMU ended with the shell")
        finally:
            stop.set()
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
            reader.join(2)
            os.close(master)
