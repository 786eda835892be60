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

from gdb_rkvm import gdb_boot

gdb_boot.main()
