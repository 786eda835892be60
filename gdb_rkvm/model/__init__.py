"""Pure models shared by both sides: the lab's ABI and layout, the kernel's, ELF facts, guest text, logs.

No `gdb`, no processes: functions over bytes and integers, unit-tested without QEMU."""
