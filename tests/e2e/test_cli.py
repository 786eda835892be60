"""`rkvm gdb`, `rkvm doctor` and rkvm.py on their own: what a user types first."""

import json
import struct
import subprocess
import sys

import pytest

from gdb_rkvm.paths import REPO
from tests.conftest import no_new_qemu, run_cli

pytestmark = pytest.mark.lab


def test_rkvm_gdb_starts_a_session_and_ends_it_with_gdb(lab_built, session_dir):
    with no_new_qemu():
        res = run_cli("gdb", "-batch", "-ex", "rkvm status --json", "-ex", "info threads", timeout=120)
        assert res.returncode == 0, res.stderr
        status = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
        assert status["connected"] and status["vcpus"] == 2 and not status["running"]
        assert status["vmlinux"].endswith("build/kernel/vmlinux")
        assert "CPU#1" in res.stdout
    assert run_cli("status").returncode == 1  # the session it started is gone


def test_rkvm_py_without_a_session_says_so_in_one_line(session_dir):
    gdb = subprocess.run(["gdb-multiarch", "-nx", "-q", "-batch", "-x", str(REPO / "rkvm.py"),
                          "-ex", "help rkvm", "-ex", "rkvm modules"],
                         capture_output=True, text=True, timeout=60)
    assert "rkvm: no session: start one with 'rkvm up'" in gdb.stdout
    assert "rkvm status" in gdb.stdout  # commands are registered anyway
    assert "Traceback" not in gdb.stdout + gdb.stderr
    assert "rkvm modules: not connected to QEMU's gdbstub" in gdb.stderr


def _elf_header(e_machine: int) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)       # ELFCLASS64, little-endian, version 1
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, 0, 0, 0, 0, 64, 0, 0, 64, 0, 0)


def test_wrong_arch_vmlinux_is_one_line(lab_built, session_dir, tmp_path):
    fake = tmp_path / "vmlinux"
    fake.write_bytes(_elf_header(62))  # EM_X86_64
    with no_new_qemu():
        res = run_cli("gdb", "--set", f"vmlinux={fake}", "-batch", "-ex", "rkvm status", timeout=120)
        assert f"rkvm: {fake} is an ELF for EM_X86_64, not AArch64" in res.stdout, res.stdout
        assert "Traceback" not in res.stdout + res.stderr


def test_doctor_lists_tools_with_versions():
    res = run_cli("doctor", "--json")
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["qemu-system-aarch64"]["ok"] and "QEMU emulator version" in rows["qemu-system-aarch64"]["version"]
    assert rows["gdb-multiarch"]["ok"] and "GNU gdb" in rows["gdb-multiarch"]["version"]
    assert rows["python:capstone"]["ok"]
    assert res.returncode == (0 if all(r["ok"] for r in rows.values()) else 1)


def test_console_types_into_the_guest(start_lab):
    """`rkvm console` in a pseudo-terminal: a line typed there runs in the guest's shell; Ctrl-] leaves."""
    import os
    import pty
    import select
    import time

    from gdb_rkvm.qemu import session
    from gdb_rkvm.host.mi import GdbMi
    sess = start_lab()
    with GdbMi() as mi:
        mi.check("rkvm run-to installed-all", timeout=90)
        mi.check("detach")
    log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
    session.serial_wait(sess, "/ # ", timeout=30, start=log.index("RKVM-LAB: shell ready"))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gdb_rkvm.host.cli", "console"], cwd=REPO, stdin=slave, stdout=slave,
                            stderr=subprocess.PIPE)
    os.close(slave)
    seen = b""
    try:
        time.sleep(0.5)
        os.write(master, b"echo hello-$((6*7))\r")
        deadline = time.monotonic() + 20
        while b"hello-42" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 4096)
        os.write(master, b"\x1d")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"hello-42" in seen, seen[-500:]


def test_rkvm_py_without_its_packages_says_so_in_one_line(tmp_path):
    """GDB's own Python without capstone/pyelftools (set-up not run): one line naming the fix."""
    import os
    env = {**os.environ, "RKVM_BUILD": str(tmp_path)}   # no build/python-site recorded there
    gdb = subprocess.run(["gdb-multiarch", "-nx", "-q", "-batch", "-x", str(REPO / "rkvm.py")],
                         capture_output=True, text=True, timeout=60, env=env)
    assert gdb.stdout.strip().startswith("rkvm: cannot load gdb-rkvm (No module named")
    assert gdb.stdout.strip().endswith(f"run 'make setup' in {REPO}")
    assert "Traceback" not in gdb.stdout + gdb.stderr
