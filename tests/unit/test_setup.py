"""`make setup` on a machine that has nothing: the package check and the not-root message.

dpkg-query and id are replaced by small scripts on PATH, so these run anywhere, as any user."""

import os
import shutil
import subprocess
import sys

import pytest

from gdb_rkvm.paths import REPO

MISSING_DEBS = REPO / "lab/missing-debs.sh"


def _fake_bin(tmp_path, name, body):
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    f = d / name
    f.write_text("#!/bin/sh\n" + body + "\n")
    f.chmod(0o755)
    return d


def _env(bindir):
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_packages_dpkg_never_heard_of_are_missing(tmp_path):
    # What dpkg-query does on a fresh machine: nothing on stdout, a complaint, exit 1.
    b = _fake_bin(tmp_path, "dpkg-query", 'echo "dpkg-query: no packages found matching $3" >&2; exit 1')
    out = subprocess.run(["bash", str(MISSING_DEBS), "qemu-system-arm", "gdb-multiarch"], env=_env(b),
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["qemu-system-arm", "gdb-multiarch"]


def test_only_installed_packages_count_as_present(tmp_path):
    # dpkg knows three packages: one installed, one removed with its config left, one half-installed;
    # it has never heard of the fourth, so it exits 1 as well.
    b = _fake_bin(tmp_path, "dpkg-query", "printf 'ii  make\\nrc  flex\\niU  bison\\n'; exit 1")
    out = subprocess.run(["bash", str(MISSING_DEBS), "make", "flex", "bison", "cpio"], env=_env(b),
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["flex", "bison", "cpio"]


def test_not_root_and_something_missing_is_one_line_with_the_command(tmp_path):
    b = _fake_bin(tmp_path, "dpkg-query", "printf 'ii  make\\n'; exit 1")
    _fake_bin(tmp_path, "id", "echo 1000")
    out = subprocess.run(["bash", str(REPO / "lab/setup.sh")], env=_env(b), capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "as root run: apt-get install -y --no-install-recommends qemu-system-arm gdb-multiarch" in lines[0]
    asked = lines[0].split("--no-install-recommends ")[1].split(" (or:")[0].split()
    assert "make" not in asked and "python3-venv" in asked  # installed: not asked for
    assert out.stdout == ""


def test_a_copy_without_its_checkout_refuses_in_one_line(tmp_path):
    """A non-editable install has the package only: `rkvm` says how to run it, no traceback."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "gdb_rkvm", src / "gdb_rkvm", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(src)], check=True, capture_output=True)
    assert (target / "gdb_rkvm/host/cli.py").is_file() and not (target / "qemu_profiles").exists()
    env = {**os.environ, "PYTHONPATH": str(target)}
    for argv in (["up"], ["status"]):
        out = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", *argv], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out
        assert "Traceback" not in out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert "installed without its checkout" in line and "make setup" in line
        assert str(target / "gdb_rkvm") in line


@pytest.mark.parametrize("script", ["rkvm"])
def test_the_checkout_rkvm_without_setup_says_so(tmp_path, script):
    copy = tmp_path / "clone"
    copy.mkdir()
    shutil.copy(REPO / script, copy / script)
    out = subprocess.run([str(copy / script), "status"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == f"rkvm: {copy} is not set up yet: run 'make setup' there (as root on a new machine)"
