"""The lab end to end: boot, the module's install on every CPU, the stub's HVC ABI, clean shutdown."""

import json
import re
import subprocess
import sys

import pytest

from gdb_rkvm.qemu import qemu_process, session

from gdb_rkvm.model import stub_abi
from tests.conftest import no_new_qemu, run_cli

pytestmark = pytest.mark.lab


def _vbar_el2(mi, thread):
    mi.check(f"thread {thread}")
    return int(mi.check("p/x $VBAR_EL2").split("=")[1], 16)


def test_boots_to_installed_everywhere_on_two_cpus(start_lab, gdb_on):
    sess = start_lab()
    mi = gdb_on(sess)
    out = mi.check("rkvm run-to installed-all --json", timeout=90)
    event = json.loads(out[out.index("{"):])
    assert event["event"] == "installed-all"
    assert event["arg"] == 2  # number of CPUs installed
    state = mi.check("p/x rkvm_debug")
    mask = int(re.search(r"installed_mask = (0x[0-9a-f]+)", state).group(1), 16)
    stub_pa = int(re.search(r"stub_pa = (0x[0-9a-f]+)", state).group(1), 16)
    assert mask == 0b11
    assert stub_pa == event["stub_pa"] and stub_pa % 4096 == 0
    assert [_vbar_el2(mi, t) for t in (1, 2)] == [stub_pa, stub_pa]
    # the kernel's own GDB helpers are loaded too
    assert re.search(r"0x[0-9a-f]+ rkvm ", mi.check("lx-lsmod"))
    assert "rkvm: mode good, stub at PA" in mi.check("lx-dmesg")
    # The stub page in physical memory starts with our vectors and carries the magic at RKVM_OFF_MAGIC.
    magic = mi.check(f"p/x *(unsigned long long *)({event['stub_pa'] + stub_abi.value('RKVM_OFF_MAGIC') - stub_pa}"
                     f" + rkvm_debug.stub_va)")
    assert int(magic.split("=")[1], 16) == stub_abi.value("RKVM_STUB_MAGIC")


def test_installed_cpu_event_fires_once_per_cpu(start_lab, gdb_on):
    sess = start_lab()
    mi = gdb_on(sess)
    cpus = set()
    for _ in range(2):
        out = mi.check("rkvm run-to installed-cpu --json", timeout=90)
        cpus.add(json.loads(out[out.index("{"):])["cpu"])
    assert cpus == {0, 1}


def test_ping_answers_through_debugfs(start_lab):
    sess = start_lab()
    assert qemu_process.alive(sess.pid)
    # QEMU was started paused (-S): with no GDB attached, the guest runs once something continues it.
    from gdb_rkvm.host.mi import GdbMi
    with GdbMi() as mi:
        mi.check("rkvm run-to installed-all", timeout=90)
        mi.check("detach")  # QEMU resumes the guest when GDB detaches
    session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
    mark = len(open(sess.serial_log, "rb").read())
    arg = 0x1234
    session.serial_send(sess, f"echo ping {arg} > /sys/kernel/debug/rkvm/hvc; cat /sys/kernel/debug/rkvm/hvc\n")
    log = session.serial_wait(sess, "x0=0x", timeout=30, start=mark)
    log = session.serial_wait(sess, "\n", timeout=5, start=mark + log.index("x0=0x")) and \
        open(sess.serial_log, "rb").read()[mark:].decode(errors="replace")
    m = re.search(r"^x0=(0x[0-9a-f]+) x1=(0x[0-9a-f]+)", log, re.MULTILINE)
    assert m, log
    assert int(m.group(1), 16) == arg ^ stub_abi.value("RKVM_PING_XOR")
    assert int(m.group(2), 16) == 1  # first ping on that CPU


def test_gdbstub_is_a_unix_socket_in_the_private_session_dir(start_lab, session_dir):
    sess = start_lab()
    assert sess.gdb_address == str(session_dir / "gdb.sock")
    assert qemu_process.listening_unix(sess.gdb_address, sess.pid)
    assert "-s" not in sess.argv and not any("tcp:" in a for a in sess.argv)
    assert "chardev:gdb0" in sess.argv
    assert (session_dir.stat().st_mode & 0o777) == 0o700


def test_cli_up_status_down_leaves_no_process(lab_built, session_dir):
    with no_new_qemu():
        up = run_cli("up", "--smp", "1")
        assert up.returncode == 0, up.stderr
        status = run_cli("status", "--json")
        data = json.loads(status.stdout)
        assert status.returncode == 0 and qemu_process.alive(data["pid"])
        assert data["gdb_address"] == str(session_dir / "gdb.sock")
        assert data["argv"][data["argv"].index("-smp") + 1] == "1"
        second = run_cli("up")
        assert second.returncode == 2 and "already running" in second.stderr
        down = run_cli("down")
        assert down.returncode == 0 and f"stopped QEMU pid {data['pid']}" in down.stdout
        assert not qemu_process.alive(data["pid"])
        assert run_cli("status").returncode == 1


def test_failed_up_leaves_no_process(lab_built, session_dir, tmp_path):
    with no_new_qemu():
        bad = run_cli("up", "--set", f"kernel={tmp_path}/nope")
        assert bad.returncode == 2
        assert bad.stderr.strip() == f"rkvm up: kernel not found: {tmp_path}/nope (run 'make lab')"
        res = run_cli("up", "--profile", "nope")
        assert res.returncode == 2 and res.stderr.startswith("rkvm up: unknown profile 'nope'")
        res = run_cli("up", "--set", "smp")
        assert res.returncode == 2 and "expected NAME=VALUE" in res.stderr
        # QEMU refuses the machine: it exits at start and we report its own words.
        res = run_cli("up", "--set", "memory=999999999")
        assert res.returncode == 2 and res.stderr.startswith("rkvm up: QEMU exited at start:"), res.stderr
        assert "Traceback" not in res.stderr
        assert run_cli("status").returncode == 1


def test_one_cpu_mode_installs_on_one_cpu(start_lab, gdb_on):
    sess = start_lab(mode="one-cpu")
    assert "rkvm.mode=one-cpu" in sess.kernel_cmdline
    mi = gdb_on(sess)
    out = mi.check("rkvm run-to installed-all --json", timeout=90)
    assert json.loads(out[out.index("{"):])["arg"] == 1
    state = mi.check("p/x rkvm_debug.installed_mask")
    assert bin(int(state.split("=")[1], 16)).count("1") == 1


def test_unload_puts_back_the_hyp_stub_vectors(start_lab, gdb_on):
    sess = start_lab()
    mi = gdb_on(sess)
    mi.check("rkvm run-to installed-all", timeout=90)
    hyp_pa = int(mi.check("p/x rkvm_debug.prev_vectors_pa").split("=")[1], 16)
    # __hyp_stub_vectors is in the kernel image: its PA is its VA minus kimage_voffset.
    expect = int(mi.check("p/x (unsigned long)&__hyp_stub_vectors - kimage_voffset").split("=")[1], 16)
    assert hyp_pa == expect
    mi.check("detach")
    session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
    session.serial_send(sess, "rmmod rkvm\n")
    session.serial_wait(sess, "rkvm: removed", timeout=30)
    mi2 = gdb_on(sess)
    for t in (1, 2):
        assert _vbar_el2(mi2, t) == hyp_pa


def test_qemu_dies_with_a_killed_command(lab_built, tmp_path):
    """A command killed outright (SIGKILL: no finally runs) still leaves no QEMU; `rkvm up` does."""
    import signal
    import time

    from gdb_rkvm.paths import REPO
    script = ("import sys, time; from pathlib import Path; from gdb_rkvm.qemu import session; "
              f"s = session.start('lab', directory=Path('{tmp_path}/s')); print(s.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    assert qemu_process.alive(pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(50):
        if not qemu_process.alive(pid):
            break
        time.sleep(0.1)
    assert not qemu_process.alive(pid)


def test_a_taken_port_is_not_mistaken_for_ours(lab_built, session_dir, monkeypatch):
    """If another process grabs the probed port first, QEMU fails to bind and start() tries again:
    the listener it waits for must be QEMU's own, not the other process's."""
    import socket
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real = qemu_process.free_loopback_port
    monkeypatch.setattr(qemu_process, "free_loopback_port", lambda: next(ports, None) or real())
    try:
        sess = session.start("lab", directory=session_dir, tcp_port=0)   # --tcp: a free port
        try:
            port = int(sess.gdb_address.rsplit(":", 1)[1])
            assert port != taken and sess.gdb_address.startswith("127.0.0.1:")
            assert qemu_process.listening_sockets(port, sess.pid)
        finally:
            session.stop(session_dir)
    finally:
        squatter.close()
