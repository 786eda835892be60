"""gdb-rkvm living inside GDB with the user's other tools: the kernel's lx-symbols and a user's
`file` keep the KASLR slide, modules load once, completion, the user's settings, styling."""

import os
import pty
import re
import select
import subprocess
import time

import pytest

from gdb_rkvm.paths import REPO
from tests.conftest import js

pytestmark = pytest.mark.lab

COUNT_KO = "python print('ko-objfiles', sum(1 for o in gdb.objfiles() if o.filename.endswith('/rkvm.ko')))"


def ko_objfiles(mi) -> int:
    return int(re.search(r"ko-objfiles (\d+)", mi.check(COUNT_KO)).group(1))


def test_lx_symbols_and_file_keep_the_kaslr_slide(start_lab, gdb_on):
    sess = start_lab("lab-kaslr")
    mi = gdb_on(sess)
    slide = js(mi.check("rkvm kaslr --json"))["slide"]
    assert slide
    mi.check("rkvm run-to installed-all", timeout=90)
    assert ko_objfiles(mi) == 1
    out = mi.check("lx-symbols")
    assert f"loading vmlinux (KASLR slide {slide:#x})" in out
    assert "symbols of rkvm already loaded" in out
    assert "vectors in section .text" in mi.check("info symbol $VBAR")
    assert ko_objfiles(mi) == 1
    assert "rkvm" in mi.check("lx-lsmod")
    assert "auto-load" not in out and "safe-path" not in out
    # A user's own reload: GDB loads it unmoved, rkvm puts it back once the command is done.
    for reload in (f"file {sess.vmlinux}", f"symbol-file {sess.vmlinux}"):
        res = mi.console(reload)
        assert "safe-path" not in res.output and "declined" not in res.output, res.output
        mi.check("echo")  # the next command: the fix runs between the two
        assert "vectors in section .text" in mi.check("info symbol $VBAR"), reload
        assert ko_objfiles(mi) == 1
    init_task = int(mi.check("p/x &init_task").split("=")[1].split()[0], 16)
    assert init_task == int(mi.check("python print(hex(__import__('gdb_rkvm.live.kaslr', fromlist=['x'])"
                                     ".link_address(gdb.objfiles()[-1].filename, 'init_task')))").strip(), 16) + slide
    # rkvm kaslr reports; it does not reload
    k = mi.check("rkvm kaslr")
    assert "relocated" not in k and ko_objfiles(mi) == 1
    mods = js(mi.check("rkvm modules --load --json"))["modules"]
    assert [m["name"] for m in mods if m["symbols"]] == ["rkvm"] and ko_objfiles(mi) == 1


def test_completion_of_arguments(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    assert "rkvm sysreg VBAR_EL2" in mi.check("complete rkvm sysreg VBAR").splitlines()
    assert mi.check("complete rkvm run-to inst").split() == ["rkvm", "run-to", "installed-all",
                                                               "rkvm", "run-to", "installed-cpu"]
    assert mi.check("complete rkvm vectors --cpu ").splitlines() == ["rkvm vectors --cpu 0", "rkvm vectors --cpu 1"]
    assert "rkvm walk --regime el2" in mi.check("complete rkvm walk --regime e").splitlines()
    assert "rkvm v2p start_kernel" in mi.check("complete rkvm v2p start_kerne").splitlines()
    assert "rkvm hvc catch --from-el" in mi.check("complete rkvm hvc catch --from").splitlines()


def test_the_users_settings_stay_the_users(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    before = {s: mi.check(f"show {s}") for s in ("pagination", "confirm", "print pretty", "breakpoint pending",
                                                   "auto-load python-scripts", "height")}
    # what a fresh GDB says, rkvm.py changed none of it
    assert "off" not in before["auto-load python-scripts"]
    assert "Pretty formatting of structures is off" in before["print pretty"]
    mi.check("set pagination on")
    mi.check("set confirm on")
    mi.check("rkvm run-to installed-all", timeout=90)
    mi.check("rkvm cpus")
    assert "State of pagination is on" in mi.check("show pagination")
    assert "is on" in mi.check("show confirm")
    assert mi.check("show auto-load python-scripts") == before["auto-load python-scripts"]


def test_set_rkvm_switches(start_lab, gdb_on):
    mi = gdb_on(start_lab())
    mi.check("rkvm run-to installed-all", timeout=90)
    plain = mi.check("rkvm cpus")
    assert "runs in the kernel" not in plain
    mi.check("set rkvm explain on")
    assert "rkvm explain is on." in mi.check("show rkvm explain")
    assert "runs in the kernel or a module (EL1)" in mi.check("rkvm cpus")
    mi.check("set rkvm vbar-watch off")
    assert "rkvm vbar-watch is off." in mi.check("show rkvm vbar-watch")
    assert "\x1b[" not in plain  # MI is not a terminal: never styled


def _gdb_in_a_pty(extra: list[str], session_dir) -> str:
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "RKVM_SESSION_DIR": str(session_dir)}
    # Not -batch: batch mode turns GDB's styling off. The test quits GDB itself.
    proc = subprocess.Popen(["gdb-multiarch", "-nx", "-q", "-iex", "set confirm off", "-x", str(REPO / "rkvm.py"),
                             *extra, "-ex", "quit"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    return out.decode(errors="replace")


def test_output_uses_gdbs_styles_on_a_terminal(start_lab, session_dir):
    start_lab()
    styled = _gdb_in_a_pty(["-ex", "rkvm cpus"], session_dir)
    assert "VBAR_EL2" in styled
    assert re.search(r"\x1b\[[0-9;]*34m0x[0-9a-f]+\x1b\[0m", styled), repr(styled[-400:])  # GDB's address style
    plain = _gdb_in_a_pty(["-ex", "set style enabled off", "-ex", "rkvm cpus"], session_dir)
    assert "VBAR_EL2" in plain and "\x1b[" not in plain.split("VBAR_EL2", 1)[1]
