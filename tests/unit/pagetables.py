"""Synthetic translation tables in a sparse fake physical memory, for walker tests."""

from gdb_rkvm.arch.pagetable import Geometry

VALID, TABLE_OR_PAGE, AF = 1, 2, 1 << 10


class FakeMemory:
    def __init__(self):
        self.bytes: dict[int, int] = {}
        self.reads = 0

    def write64(self, addr: int, value: int) -> None:
        for i in range(8):
            self.bytes[addr + i] = (value >> (8 * i)) & 0xFF

    def read(self, addr: int, size: int) -> bytes:
        self.reads += 1
        return bytes(self.bytes.get(addr + i, 0) for i in range(size))


class TableBuilder:
    """Builds tables for one Geometry; leaves are pages (level 3) or blocks at any level."""

    def __init__(self, geo: Geometry, mem: FakeMemory | None = None, base: int = 0x4000_0000):
        self.geo, self.mem = geo, mem or FakeMemory()
        self.next = base
        self.tables: dict[tuple[int, int], int] = {}
        self.root = self.alloc(geo.entries(geo.start_level) * 8)

    def alloc(self, size: int) -> int:
        align = max(self.geo.granule, size)
        self.next = (self.next + align - 1) & ~(align - 1)
        pa = self.next
        self.next += max(size, self.geo.granule)
        return pa

    def table_for(self, va: int, level: int) -> int:
        """The table at `level` that `va` goes through, created on the way."""
        table = self.root
        for lvl in range(self.geo.start_level, level):
            idx = self.geo.index(va, lvl)
            entry = table + 8 * idx
            raw = int.from_bytes(self.mem.read(entry, 8), "little")
            if raw & 3 == 3:
                table = raw & ((1 << 48) - 1) & ~(self.geo.granule - 1)
            else:
                new = self.alloc(self.geo.granule)
                self.mem.write64(entry, new | VALID | TABLE_OR_PAGE)
                table = new
        return table

    def map(self, va: int, pa: int, level: int = 3, attrs: int = AF | (3 << 8)) -> int:
        """Map one page (level 3) or block (lower levels) at va -> pa. Returns the descriptor's PA."""
        table = self.table_for(va, level)
        entry = table + 8 * self.geo.index(va, level)
        kind = TABLE_OR_PAGE if level == 3 else 0
        self.mem.write64(entry, pa | attrs | VALID | kind)
        return entry

    def set_raw(self, va: int, level: int, raw: int) -> int:
        table = self.table_for(va, level)
        entry = table + 8 * self.geo.index(va, level)
        self.mem.write64(entry, raw)
        return entry
