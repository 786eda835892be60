"""AArch64 knowledge and nothing else: pure functions over integers (and a read(addr, size) callable).

No GDB, no QEMU. Field positions, EC values and descriptor formats follow the Arm Architecture
Reference Manual for A-profile (register and field names are the manual's).
"""
