"""Where the repository, its build outputs and the session live."""

import os
from pathlib import Path

from .errors import RkvmError

REPO = Path(__file__).resolve().parent.parent


def require_checkout() -> None:
    """Raise RkvmError unless REPO is a gdb-rkvm checkout (profiles, stub, rkvm.py beside the package).

    gdb-rkvm is run from its clone: the lab (kernel, stub, module, profiles) is built there. A
    non-editable `pip install .` copies only the Python package, so it refuses in one line."""
    if not (REPO / "qemu_profiles").is_dir() or not (REPO / "rkvm.py").is_file():
        raise RkvmError(f"this gdb-rkvm is installed without its checkout ({Path(__file__).parent}): it runs "
                        "from a clone: git clone <gdb-rkvm> && cd gdb-rkvm && make setup && ./rkvm")


def build_dir() -> Path:
    """The build output directory (RKVM_BUILD overrides, for tests that need their own)."""
    return Path(os.environ.get("RKVM_BUILD", REPO / "build"))


def session_dir() -> Path:
    """Where `rkvm up` keeps session.json, the serial log and the sockets."""
    return Path(os.environ.get("RKVM_SESSION_DIR", build_dir() / "session"))


def profiles_dir() -> Path:
    return REPO / "qemu_profiles"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary name beside `path`, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
