"""Reaching a running QEMU from any process (host or inside GDB): QMP and the guest RAM file."""
