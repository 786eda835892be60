"""Where the repository, its build outputs and the session live."""

import os
from pathlib import Path

from gdb_rkvm.errors import RkvmError

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


def _owner_name(uid: int) -> str:
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _own_private_group(gid: int) -> bool:
    """Whether group `gid` is ours alone (a user private group, as umask 002 systems give each user):
    a directory writable by it is writable by no one else."""
    import grp
    import pwd
    try:
        me = pwd.getpwuid(os.geteuid())
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        return False
    if gid != me.pw_gid or not members <= {me.pw_name}:
        return False
    return not any(u.pw_gid == gid and u.pw_uid != me.pw_uid for u in pwd.getpwall())


def check_dir_safe(directory: Path, what: str = "") -> None:
    """Raise RkvmError unless files can be created in `directory` without another local user being able
    to plant or swap them: it is a directory owned by us (or root), not writable by others unless
    sticky (like /tmp). `what` names it in the error (an option such as --out)."""
    import stat
    label = what or str(directory)
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise RkvmError(f"{label}: no such directory") from None
    except OSError as e:
        raise RkvmError(f"{label}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise RkvmError(f"{label}: not a directory")
    if st.st_uid not in (os.geteuid(), 0):
        raise RkvmError(f"{label}: owned by {_owner_name(st.st_uid)}, not by you: refusing to write there")
    others = st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and not _own_private_group(st.st_gid))
    if others and not st.st_mode & stat.S_ISVTX:
        raise RkvmError(f"{label}: writable by other users: refusing to write there")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RkvmError(f"{label}: not writable")


def private_dir(directory: Path) -> Path:
    """Create (or check) `directory` as a directory only its owner can enter (mode 0700): not a
    symlink, owned by us, in a parent nobody else can rename it out of. Returns it."""
    import stat
    directory = Path(directory)
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise RkvmError(f"cannot create the session directory {directory}: {e.strerror}") from None
    check_dir_safe(parent, f"{parent} (the session directory's parent)")
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode):
        raise RkvmError(f"session directory {directory} is a symbolic link: refusing it (remove it or set "
                        "RKVM_SESSION_DIR)")
    if not stat.S_ISDIR(st.st_mode):
        raise RkvmError(f"session directory {directory} is not a directory")
    if st.st_uid != os.geteuid():
        raise RkvmError(f"session directory {directory} belongs to {_owner_name(st.st_uid)}, not to you "
                        "(set RKVM_SESSION_DIR to a directory of your own)")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)
    return directory


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode: int = 0o600) -> int:
    """os.open that never follows a symbolic link at `path` (O_NOFOLLOW); one-line error."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        raise RkvmError(f"cannot open {path}: {e.strerror}") from None


def write_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    """Write `text` to a new, uniquely named temporary file beside `path` (O_EXCL, never a symlink),
    then rename it over `path`: readers never see half a file, two writers never share a temporary,
    and a symlink planted at `path` is replaced, not followed."""
    import tempfile
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
