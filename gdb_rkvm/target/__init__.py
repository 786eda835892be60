"""Target layer: reads registers and memory of the QEMU guest (inside GDB, or over GDB/MI)."""
