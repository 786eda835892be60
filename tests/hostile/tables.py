"""Hostile translation tables for the walker: four guest pages that describe 512^4 pages.

Every entry of the level 0, 1 and 2 tables points at the one table of the next level; the level 3
table maps 512 consecutive pages with AttrIndx alternating 0/1, so no two neighbours coalesce. A
walker that re-walks shared tables and keeps every leaf does 512^4 leaves of work (the issue: 10.2
million mappings, 6.8 GB and 7.5 minutes before the table budget stopped it).
"""

import struct

from gdb_rkvm.arch.pagetable import Geometry

GEO = Geometry(4096, 48, 0)
L0, L1, L2, L3 = 0x4000_0000, 0x4000_1000, 0x4000_2000, 0x4000_3000
OUT = 0x5000_0000
MAIR = 0x00_00_00_00_00_00_04_FF   # AttrIndx 0: Normal WB, 1: Device-nGnRE
TABLE, PAGE, AF, ISH = 0b11, 0b11, 1 << 10, 3 << 8


class PageMemory:
    """Sparse physical memory of whole 4 KiB pages; reads that touch no page raise, as a gdbstub would."""

    def __init__(self):
        self.pages: dict[int, bytes] = {}
        self.reads = 0

    def put(self, pa: int, entries: list[int]) -> None:
        self.pages[pa] = struct.pack(f"<{len(entries)}Q", *entries)

    def read(self, addr: int, size: int) -> bytes:
        self.reads += 1
        page = self.pages.get(addr & ~0xFFF)
        if page is None:
            raise OSError(f"no RAM at {addr:#x}")
        off = addr & 0xFFF
        return page[off:off + size]


def hostile_memory() -> PageMemory:
    mem = PageMemory()
    mem.put(L0, [L1 | TABLE] * 512)
    mem.put(L1, [L2 | TABLE] * 512)
    mem.put(L2, [L3 | TABLE] * 512)
    mem.put(L3, [(OUT + i * 4096) | AF | ISH | ((i & 1) << 2) | PAGE for i in range(512)])
    return mem


def distinct_memory(n_l3: int = 4096) -> PageMemory:
    """No sharing this time: `n_l3` different level 3 tables (each 512 pages, AttrIndx alternating),
    under one level 0 and one level 1 table and as many level 2 tables as needed. Only the budget
    (descriptors, ranges, time) bounds the work."""
    mem = PageMemory()
    n_l2 = -(-n_l3 // 512)
    l2_base, l3_base = 0x4100_0000, 0x4200_0000
    mem.put(L0, [L1 | TABLE] + [0] * 511)
    mem.put(L1, [(l2_base + i * 4096) | TABLE for i in range(n_l2)] + [0] * (512 - n_l2))
    leaves = [(OUT + i * 4096) | AF | ISH | ((i & 1) << 2) | PAGE for i in range(512)]
    for i in range(n_l2):
        count = min(512, n_l3 - i * 512)
        mem.put(l2_base + i * 4096, [(l3_base + (i * 512 + j) * 4096) | TABLE for j in range(count)]
                + [0] * (512 - count))
    for k in range(n_l3):
        mem.put(l3_base + k * 4096, leaves)
    return mem
