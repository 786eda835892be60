"""The live layer: runs inside GDB and reads the QEMU guest's registers, memory, breakpoints and symbols.

Imports `gdb`, arch/, model/ and qemu/; never commands/ or host/."""
