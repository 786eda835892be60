"""Host side: the processes outside GDB (rkvm CLI, sessions and QEMU, GDB/MI, triage, shell, tour).

Never imports `gdb`; reaches GDB through GDB/MI (mi.py) and QEMU through qemu/."""
