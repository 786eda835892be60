"""gdb-rkvm: see and step what an AArch64 CPU does at EL1 and EL2 (QEMU + GDB)."""

__version__ = "0.1.0"
