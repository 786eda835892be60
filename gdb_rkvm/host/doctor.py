"""`rkvm doctor`: what the lab needs, present or missing, with versions."""

import importlib
import shutil
import subprocess
from pathlib import Path

from gdb_rkvm.paths import REPO, build_dir

TOOLS = [
    ("qemu-system-aarch64", ["--version"], "qemu-system-arm"),
    ("gdb-multiarch", ["--version"], "gdb-multiarch"),
    ("aarch64-linux-gnu-gcc", ["--version"], "gcc-aarch64-linux-gnu"),
    ("aarch64-linux-gnu-ld", ["--version"], "binutils-aarch64-linux-gnu"),
    ("make", ["--version"], "make"),
    ("flex", ["--version"], "flex"),
    ("bison", ["--version"], "bison"),
    ("bc", ["--version"], "bc"),
    ("cpio", ["--version"], "cpio"),
]
PYTHON_PACKAGES = ["pygdbmi", "capstone", "prompt_toolkit", "elftools", "pytest", "hypothesis"]


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def report() -> list[dict]:
    """One dict per requirement: name, ok, version or what to install."""
    rows = []
    for exe, args, package in TOOLS:
        path = shutil.which(exe)
        rows.append({"name": exe, "ok": bool(path), "version": _first_line([exe, *args]) if path else None,
                     "fix": None if path else f"apt-get install {package}"})
    for pkg in PYTHON_PACKAGES:
        try:
            mod = importlib.import_module(pkg)
            version = getattr(mod, "__version__", None) or "installed"
            rows.append({"name": f"python:{pkg}", "ok": True, "version": str(version), "fix": None})
        except ImportError:
            rows.append({"name": f"python:{pkg}", "ok": False, "version": None, "fix": "make setup"})
    tarball = Path("/usr/src/linux-source-6.12.tar.xz")
    rows.append({"name": "linux-source-6.12", "ok": tarball.is_file(),
                 "version": str(tarball) if tarball.is_file() else None, "fix": "apt-get install linux-source-6.12"})
    b = build_dir()
    for name, path, fix in [("busybox (arm64)", b / "downloads/busybox", "make setup"),
                            ("lab kernel", b / "kernel/Image", "make kernel"),
                            ("vmlinux", b / "kernel/vmlinux", "make kernel"),
                            ("EL2 stub", REPO / "stub/build/el2_stub.elf", "make stub"),
                            ("rkvm.ko", b / "module/rkvm.ko", "make module"),
                            ("initramfs", b / "initramfs.cpio.gz", "make initramfs")]:
        key = (b / "kernel/.rkvm-key")
        version = None
        if path.exists():
            version = f"{path}" + (f" (key {key.read_text().strip()})" if name == "lab kernel" and key.exists() else "")
        rows.append({"name": name, "ok": path.exists(), "version": version, "fix": None if path.exists() else fix})
    return rows
