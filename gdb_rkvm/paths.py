"""Where the repository, its build outputs and the session live."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
