# gdb -x rkvm.py : load the session's vmlinux, connect to its QEMU, add the `rkvm` commands.
# Start the session first with `rkvm up` (or run `rkvm gdb`, which does both).
import os
import sys

try:
    _here = os.path.dirname(os.path.abspath(__file__))
except NameError:  # very old GDBs do not set __file__ for sourced scripts
    _here = os.getcwd()
if _here not in sys.path:
    sys.path.insert(0, _here)

# GDB embeds Debian's Python; capstone and pyelftools were installed (make setup) for the project's
# Python, whose site-packages directory setup recorded here. Appended, so Debian's own modules win.
_site = os.path.join(os.environ.get("RKVM_BUILD", os.path.join(_here, "build")), "python-site")
if os.path.isfile(_site):
    with open(_site) as _f:
        _path = _f.read().strip()
    if _path and _path not in sys.path:
        sys.path.append(_path)

try:
    from gdb_rkvm import gdb_boot  # noqa: E402

    gdb_boot.main()
except ImportError as _e:  # capstone, pyelftools... not installed for this Python
    print(f"rkvm: cannot load gdb-rkvm ({_e}): run 'make setup' in {_here}")
