"""Hostile suite, sessions and processes: each attack from issue 13 ("Sessions and processes") now fails
safely: a session directory belongs to one session, a pid is signalled only if it is that session's
QEMU, a killed GDB cannot leave the next one reading physical memory, and the MI/shell plumbing does
not turn one command into two or die on a Ctrl-C."""

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from gdb_rkvm.qemu import qemu_process, session
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import REPO
from gdb_rkvm.host.mi import GdbMi
from tests.conftest import js, no_new_qemu, run_cli


def _cli(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "gdb_rkvm.host.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


def _gdb_pids(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(x) for x in out.split() if int(x) != os.getpid()]


# --- a session directory belongs to one session --------------------------------------------------------

@pytest.mark.lab
def test_two_rkvm_up_at_once_one_refuses_and_no_qemu_is_unrecorded(lab_built, session_dir):
    with no_new_qemu():
        before = set(qemu_process_pids())
        a, b = _cli("up", "--smp", "1"), _cli("up", "--smp", "1")
        ra, rb = a.communicate(timeout=60), b.communicate(timeout=60)
        codes = sorted([a.returncode, b.returncode])
        try:
            assert codes == [0, 2], (ra, rb)
            refusal = (ra if a.returncode == 2 else rb)[1]
            assert refusal.count("\n") == 1 and "already running" in refusal and "Traceback" not in refusal
            rec = json.loads((session_dir / "session.json").read_text())
            new = set(qemu_process_pids()) - before
            assert new == {rec["pid"]}   # one QEMU, and it is the recorded one
        finally:
            down = run_cli("down")
        assert down.returncode == 0 and f"stopped QEMU pid {rec['pid']}" in down.stdout


def qemu_process_pids():
    out = subprocess.run(["pgrep", "-f", "qemu-system-aarch64"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_rkvm_down_does_not_kill_a_foreign_pid_from_a_stale_record(session_dir):
    """A stale session.json names a pid that is now another process whose name contains qemu-system."""
    foreign = subprocess.Popen(["bash", "-c", "exec -a qemu-system-aarch64 sleep 300"])
    try:
        time.sleep(0.2)
        assert b"qemu-system" in Path(f"/proc/{foreign.pid}/cmdline").read_bytes()
        session_dir.mkdir(mode=0o700)
        rec = {"pid": foreign.pid, "gdb_address": str(session_dir / "gdb.sock"), "serial_log": "",
               "console_socket": "", "qemu_log": "", "vmlinux": "", "gdb_scripts": "", "module_dirs": [],
               "profile": "lab", "kernel_cmdline": "", "argv": ["qemu-system-aarch64", "-chardev",
                                                                 f"socket,id=gdb0,path={session_dir}/gdb.sock"],
               "start_ticks": 12345}
        (session_dir / "session.json").write_text(json.dumps(rec))
        assert run_cli("status").returncode == 1   # not a live session
        (session_dir / "session.json").write_text(json.dumps(rec))
        down = run_cli("down")
        assert down.returncode == 2, down.stdout + down.stderr
        assert f"pid {foreign.pid} recorded in" in down.stderr and "not this session's QEMU" in down.stderr
        assert "not signalled" in down.stderr and down.stderr.count("\n") == 1
        assert foreign.poll() is None and qemu_process.alive(foreign.pid)   # still running
        # same start time but another command line (a pid reused within one clock tick): still refused
        rec["start_ticks"] = qemu_process.start_ticks(foreign.pid)
        (session_dir / "session.json").write_text(json.dumps(rec))
        down = run_cli("down")
        assert down.returncode == 2 and "runs another command line" in down.stderr
        assert foreign.poll() is None
        # a session directory others can write: its record is not trusted at all
        (session_dir / "session.json").write_text(json.dumps(rec))
        session_dir.chmod(0o777)
        down = run_cli("down")
        assert down.returncode == 2 and "writable by other users: its session.json is not trusted" in down.stderr
        assert run_cli("status").returncode == 1 and foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


@pytest.mark.lab
def test_triage_out_build_leaves_the_up_session_alone_and_two_triages_do_not_interfere(lab_built, tmp_path):
    """`rkvm up` runs in OUT/session; two triages with --out OUT run at once. Before: each deleted
    OUT/session and orphaned (or killed) the other's QEMU. Now each has its own private session directory."""
    build = tmp_path / "build"
    env = {"RKVM_SESSION_DIR": str(build / "session")}
    with no_new_qemu():
        up = run_cli("up", "--smp", "1", env=env)
        assert up.returncode == 0, up.stderr
        rec = json.loads((build / "session/session.json").read_text())
        try:
            t1 = _cli("triage", "--mode", "good", "--out", str(build), env=env)
            t2 = _cli("triage", "--mode", "good", "--out", str(build), env=env)
            r1, r2 = t1.communicate(timeout=400), t2.communicate(timeout=400)
            assert t1.returncode == 0, r1
            assert t2.returncode == 0, r2
            assert json.loads((build / "report.json").read_text())["status"] == "healthy"
            assert not list(build.glob(".*.tmp"))
            # the up session is untouched: its record, its QEMU, its directory
            assert json.loads((build / "session/session.json").read_text()) == rec
            assert session.current(build / "session") is not None
            assert (build / "session/serial.log").exists()
        finally:
            down = run_cli("down", env=env)
        assert down.returncode == 0 and f"stopped QEMU pid {rec['pid']}" in down.stdout


@pytest.mark.parametrize("out,reason", [
    ("/etc/passwd", "--out /etc/passwd: not a directory"),
    ("/etc/passwd/x", "--out /etc/passwd/x: cannot create it: Not a directory"),
])
def test_triage_out_that_is_not_a_writable_directory_is_one_line(out, reason, tmp_path):
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--out", out], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr == f"rkvm triage: {reason}\n"
    assert open("/etc/passwd").read().startswith("root:")


def test_triage_out_in_a_read_only_place_is_one_line(tmp_path):
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--out", "/proc/rkvm-out"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("rkvm triage: --out /proc/rkvm-out: cannot create it")
    assert res.stderr.count("\n") == 1


# --- a killed GDB must not leave QEMU in physical-memory mode --------------------------------------------

@pytest.mark.lab
def test_physical_memory_mode_is_reset_at_attach(start_lab, gdb_on):
    sess = start_lab()
    mi = gdb_on(sess)
    mi.check("rkvm run-to installed-all", timeout=90)
    expect = mi.check("p/x rkvm_debug.stub_pa")
    assert "received: \"OK\"" in mi.check("maint packet Qqemu.PhyMemMode:1")
    assert "received: \"1\"" in mi.check("maint packet qqemu.PhyMemMode")
    os.kill(mi.controller.gdb_process.pid, signal.SIGKILL)   # killed in the middle of a physical read
    mi.controller.gdb_process.wait()
    again = gdb_on(sess)
    assert "received: \"0\"" in again.check("maint packet qqemu.PhyMemMode")
    assert again.check("p/x rkvm_debug.stub_pa").split("=")[1] == expect.split("=")[1]   # virtual reads
    assert js(again.check("rkvm cpus --json"))["cpus"][0]["vbar_el2_kind"] == "rkvm-stub"


# --- the MI and shell plumbing -------------------------------------------------------------------------

def test_mi_argument_with_a_newline_is_refused_not_run(tmp_path):
    flag = tmp_path / "pwned"
    with GdbMi(load_rkvm=False) as mi:
        for bad in (f"echo hi\nshell touch {flag}", f"echo hi\rshell touch {flag}", "echo \x1b]0;x\x07"):
            with pytest.raises(RkvmError, match="control character"):
                mi.console(bad)
        assert mi.check("echo still-here").strip() == "still-here"
    assert not flag.exists()


def test_gdb_is_not_left_running_when_gdbmi_times_out_at_start():
    marker = "31.41592"
    with pytest.raises(RkvmError, match="did not finish in time"):
        GdbMi(load_rkvm=False, extra_args=["-ex", f"python import time; time.sleep({marker})"], startup_timeout=1)
    for _ in range(50):
        if not _gdb_pids(marker):
            break
        time.sleep(0.1)
    assert _gdb_pids(marker) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "soon"])
def test_timeout_that_never_expires_is_refused_in_one_line(value, tmp_path):
    with no_new_qemu():
        res = run_cli("triage", "--out", str(tmp_path), f"--timeout={value}")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "argument --timeout" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "report.json").exists()


def test_gdb_command_timeout_nan_is_refused(session_dir):
    gdb = subprocess.run(["gdb-multiarch", "-nx", "-q", "-batch", "-x", str(REPO / "rkvm.py"),
                          "-ex", "rkvm run-to installed-all --timeout nan", "-ex", "rkvm hvc trace --seconds inf"],
                         capture_output=True, text=True, timeout=60)
    err = gdb.stderr
    assert "'nan': expected a finite number of seconds above 0" in err, err
    assert "'inf': expected a finite number of seconds above 0" in err, err
    assert "Traceback" not in gdb.stdout + err


def _controlling_terminal():
    """In the child (a new session): make its stdin, the pty, its controlling terminal, so Ctrl-C typed
    there is a SIGINT to its foreground process group, as in a real terminal."""
    import fcntl
    import termios
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.lab
def test_ctrl_c_during_continue_in_rkvm_shell_interrupts_the_guest_not_the_shell(lab_built, session_dir):
    """`rkvm shell` in a terminal: `continue`, Ctrl-C (the terminal sends SIGINT to the shell's process
    group), then more commands. Before: the shell and its QEMU ended."""
    with no_new_qemu():
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        proc = subprocess.Popen([sys.executable, "-m", "gdb_rkvm.host.cli", "shell"], cwd=REPO, stdin=slave,
                                stdout=slave, stderr=slave, start_new_session=True, preexec_fn=_controlling_terminal,
                                env={**os.environ, "TERM": "xterm"})
        os.close(slave)
        seen = b""

        def read_until(needle: bytes, timeout: float) -> bool:
            nonlocal seen
            deadline = time.monotonic() + timeout
            while needle not in seen and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        return False
                    seen += chunk
                    if b"\x1b[6n" in chunk:
                        os.write(master, b"\x1b[1;1R")   # answer prompt_toolkit's cursor position request
            return needle in seen

        try:
            assert read_until(b"CPU1 EL", 120), seen[-2000:]   # the prompt's toolbar: the shell is ready
            sess = session.current(session_dir)
            assert sess is not None
            time.sleep(0.5)
            os.write(master, b"continue\r")
            log = Path(sess.serial_log)
            deadline = time.monotonic() + 60
            while b"Booting Linux" not in log.read_bytes():   # the guest is running
                assert time.monotonic() < deadline and read_until(b"\0", 0.2) is False
            time.sleep(1)
            os.write(master, b"\x03")   # Ctrl-C, as the terminal delivers it
            deadline = time.monotonic() + 30
            while session.qemu_status(sess) in ("running", None):   # the guest stops
                assert time.monotonic() < deadline and read_until(b"\0", 0.2) is False
            for _ in range(6):   # a line typed while `continue` is still ending is refused ("busy"): type it again
                os.write(master, b"p 6*7\r")
                if read_until(b"= 42", 10):
                    break
            assert b"= 42" in seen, seen[-3000:]
            assert proc.poll() is None and sess.alive()   # the shell and its QEMU are still there
            os.write(master, b"quit\r")
            deadline = time.monotonic() + 60
            while proc.poll() is None:   # keep reading the screen: a full pty would block the shell's exit
                assert time.monotonic() < deadline and read_until(b"\0", 0.2) is False
            assert proc.returncode == 0, seen[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
