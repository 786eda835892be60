# gdb -x rkvm.py : load the session's vmlinux, connect to its QEMU, add the `rkvm` commands.
# Start the session first with `rkvm up` (or run `rkvm gdb`, which does both).
import os
import site
import sys

try:
    _here = os.path.dirname(os.path.abspath(__file__))
except NameError:  # very old GDBs do not set __file__ for sourced scripts
    _here = os.getcwd()
if _here not in sys.path:
    sys.path.insert(0, _here)


def _rkvm_venv_site():
    """The site-packages of this checkout's build/venv (make setup), if it matches GDB's Python.

    GDB embeds Debian's Python; the venv is made from that same interpreter, so capstone's
    compiled part loads here. A venv of another X.Y would load the wrong binaries: refuse it."""
    venv = os.path.join(os.environ.get("RKVM_BUILD", os.path.join(_here, "build")), "venv")
    want = "python%d.%d" % sys.version_info[:2]
    lib = os.path.join(venv, "lib")
    if not os.path.isdir(lib):
        return None, f"no {venv}"
    found = sorted(d for d in os.listdir(lib) if d.startswith("python"))
    if want not in found:
        return None, f"{venv} is for {', '.join(found) or 'no Python'}, GDB embeds {want}"
    return os.path.join(lib, want, "site-packages"), None


_site, _why = _rkvm_venv_site()
if _site:
    site.addsitedir(_site)  # after Debian's own paths; processes the venv's .pth files too

try:
    from gdb_rkvm import gdb_boot  # noqa: E402

    gdb_boot.main()
except ImportError as _e:  # capstone, pyelftools... not installed for this Python
    print(f"rkvm: cannot load gdb-rkvm ({_e}{'; ' + _why if _why else ''}): run 'make setup' in {_here}")
