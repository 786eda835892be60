"""Paths on GDB's command line, in a real gdb-multiarch (no QEMU): spaces and quotes work, a newline is
refused in one line, and a failed `file` or connection is one line, never a traceback."""

import json
import shutil
import subprocess
import sys

import pytest

from gdb_rkvm.qemu import qemu_process, session
from gdb_rkvm.paths import REPO

GDB = shutil.which("gdb-multiarch") or shutil.which("gdb")
STUB_ELF = REPO / "stub/build/el2_stub.elf"


@pytest.fixture(autouse=True)
def _gdb_and_stub():
    """These run a real GDB on the stub ELF: a missing one is a failure (make setup / make stub), never a skip."""
    assert GDB is not None, "gdb-multiarch not found: run 'make setup'"
    assert STUB_ELF.is_file(), f"{STUB_ELF} missing: run 'make stub'"


def run_gdb(script: str, tmp_path, env=None) -> str:
    site = REPO / "build/venv/lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    path = tmp_path / "script.py"
    path.write_text(f"import site, sys\nsys.path.insert(0, {str(REPO)!r})\nsite.addsitedir({str(site)!r})\n"
                    + script)
    res = subprocess.run([GDB, "-nx", "-batch", "-x", str(path)], capture_output=True, text=True, timeout=60,
                         env=env, cwd=tmp_path)
    return res.stdout + res.stderr


def hostile_dir(tmp_path):
    d = tmp_path / "checkout with space" / "it's \"quoted\""
    d.mkdir(parents=True)
    elf = d / "stub elf.elf"
    shutil.copy(STUB_ELF, elf)
    return elf


def test_file_symbol_file_and_add_symbol_file_with_spaces_and_quotes(tmp_path):
    elf = hostile_dir(tmp_path)
    out = run_gdb(f"""
import gdb
from pathlib import Path
from gdb_rkvm import gdb_boot
from gdb_rkvm.live import el2_symbols, kaslr
class Sess:
    vmlinux, gdb_scripts = {str(elf)!r}, ""
gdb_boot.load_symbols(Sess)
print("FILE", gdb.current_progspace().filename)
print(el2_symbols.load(Path({str(elf)!r}), 0x40000000))
print(kaslr.apply({str(elf)!r}, 0x10000))
print("SYM", gdb.execute("info symbol 0x10000", to_string=True).strip())
""", tmp_path)
    assert f"FILE {elf}" in out, out
    assert "rkvm: loaded stub elf.elf symbols at PA 0x40000000" in out
    assert "rkvm: KASLR slide 0x10000: vmlinux symbols relocated" in out
    assert "SYM rkvm_vec_cur_sp0_sync in section .text" in out
    assert "Traceback" not in out and "Python Exception" not in out


def test_a_path_with_a_newline_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "x\nshell touch pwned\n"      # GDB runs in tmp_path: the marker would be tmp_path/pwned
    d.mkdir()
    elf = d / "vmlinux"
    shutil.copy(STUB_ELF, elf)
    out = run_gdb(f"""
from pathlib import Path
from gdb_rkvm import gdb_boot
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import el2_symbols, kaslr
class Sess:
    vmlinux, gdb_scripts = {str(elf)!r}, ""
for call in (lambda: gdb_boot.load_symbols(Sess), lambda: el2_symbols.load(Path({str(elf)!r}), 0x1000),
             lambda: kaslr.apply({str(elf)!r}, 0x10000)):
    try:
        call()
        print("LOADED")
    except RkvmError as e:
        print("REFUSED", e)
""", tmp_path)
    assert not marker.exists()
    assert out.count("REFUSED ") == 3 and "LOADED" not in out, out
    assert "holds a control character (\\x0a)" in out


def test_rkvm_py_failures_are_one_line(tmp_path):
    """rkvm.py's own start (gdb -x rkvm.py) with a vmlinux under a path with spaces and no QEMU to reach."""
    elf = hostile_dir(tmp_path)
    port = qemu_process.free_loopback_port()        # nothing listens there
    attached = session.external(f"127.0.0.1:{port}", "lab", {"vmlinux": str(elf), "gdb_scripts": ""})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RKVM_ATTACH": json.dumps(attached.__dict__),
           "RKVM_BUILD": str(REPO / "build")}
    res = subprocess.run([GDB, "-nx", "-batch", "-iex", "set tcp connect-timeout 1", "-x", str(REPO / "rkvm.py")],
                         capture_output=True, text=True, timeout=60, env=env)
    out = res.stdout + res.stderr
    assert "Traceback" not in out and "Python Exception" not in out, out
    lines = [x for x in out.splitlines() if x.startswith("rkvm:")]
    assert len(lines) == 1 and lines[0].startswith(f"rkvm: cannot connect to QEMU's gdbstub at 127.0.0.1:{port}")
