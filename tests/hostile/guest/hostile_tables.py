# Sourced inside GDB: turns the guest's own TTBR1_EL1 tables into the attack. Finds a path
# root -> ... -> a level 3 table, then makes every entry of each table on it point at the next one
# (four tables describe 512^4 pages) and alternates AttrIndx at level 3. The guest must not run again.
import struct

import gdb

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.live import gdb_target as t

geo = pt.stage1_geometry(t.read_register("TCR_EL1"), True)
root = pt.table_base(t.read_register("TTBR1_EL1"), geo)
OA = ((1 << 48) - 1) & ~(geo.granule - 1)

with t.physical_memory():
    inferior = gdb.selected_inferior()

    def table(pa, level):
        n = geo.entries(level)
        return list(struct.unpack(f"<{n}Q", bytes(inferior.read_memory(pa, n * 8))))

    def path_to_level3(pa, level):
        """[(table PA, descriptor to the next table)...] down to a level 3 table, or None."""
        if level == 3:
            return [(pa, None)]
        for d in table(pa, level):
            if d & 3 == 3:
                rest = path_to_level3(d & OA, level + 1)
                if rest:
                    return [(pa, d)] + rest
        return None

    path = path_to_level3(root, geo.start_level)
    for level, (pa, desc) in enumerate(path[:-1], geo.start_level):
        n = geo.entries(level)
        inferior.write_memory(pa, struct.pack(f"<{n}Q", *([desc] * n)))
    last = path[-1][0]
    page = next(d for d in table(last, 3) if d & 3 == 3)
    attrs = page & ~OA & ~(7 << 2)
    inferior.write_memory(last, struct.pack("<512Q", *[((page & OA) + i * geo.granule) | attrs | ((i & 1) << 2)
                                                        for i in range(512)]))
gdb.write(f"HOSTILE TABLES {' '.join(hex(p) for p, _ in path)}\n")
