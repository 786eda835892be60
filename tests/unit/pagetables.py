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


# Stage 2 leaf attributes: AF, Inner Shareable, S2AP read/write, MemAttr Normal Write-Back
S2_RW = AF | (3 << 8) | (3 << 6) | (0xF << 2)


class _IpaView:
    """The guest's view of memory for building its stage 1: writes at an IPA land at IPA + delta, and
    stage 2 maps each page touched (so every stage 1 table is reachable through stage 2)."""

    def __init__(self, guest: "GuestTables"):
        self.guest = guest

    def write64(self, ipa: int, value: int) -> None:
        self.guest.back(ipa)
        self.guest.mem.write64(ipa + self.guest.TABLE_PA_DELTA, value)

    def read(self, ipa: int, size: int) -> bytes:
        self.guest.back(ipa)
        return self.guest.mem.read(ipa + self.guest.TABLE_PA_DELTA, size)


class GuestTables:
    """A guest in one fake physical memory: the hypervisor's stage 2 (tables at PAs from 0x4000_0000)
    and the guest's stage 1, whose tables are at IPAs from TABLE_IPA, stage 2 mapped to IPA + delta."""

    TABLE_IPA = 0x8000_0000
    TABLE_PA_DELTA = 0x1_0000_0000

    def __init__(self, vtcr: int, tcr: int, vmid: int = 5, mem: FakeMemory | None = None):
        from gdb_rkvm.arch.pagetable import stage1_geometry, stage2_geometry
        self.mem, self.vtcr, self.tcr, self.vmid = mem or FakeMemory(), vtcr, tcr, vmid
        self.s2 = TableBuilder(stage2_geometry(vtcr), self.mem, base=0x4000_0000)
        self.backed: dict[int, int] = {}     # stage 2 page IPA -> its descriptor's PA
        self.s1 = TableBuilder(stage1_geometry(tcr, upper=False), _IpaView(self), base=self.TABLE_IPA)

    def back(self, ipa: int) -> None:
        g2 = self.s2.geo.granule
        page = ipa & ~(g2 - 1)
        if page not in self.backed:
            self.backed[page] = self.s2.map(page, page + self.TABLE_PA_DELTA, 3, S2_RW)

    def map(self, va: int, ipa: int, pa: int, s1_attrs: int = AF | (3 << 8), s2_attrs: int = S2_RW) -> None:
        """va -> ipa at stage 1 (a page), ipa -> pa at stage 2 (pages covering the stage 1 page)."""
        g1, g2 = self.s1.geo.granule, self.s2.geo.granule
        self.s1.map(va, ipa, 3, s1_attrs)
        for off in range(0, max(g1, g2), g2):
            self.s2.map(ipa + off, pa + off, 3, s2_attrs)

    def regs(self):
        from gdb_rkvm.arch.two_stage import Stage1Regs, Stage2Regs
        return (Stage1Regs(self.s1.root, 0, self.tcr, 1, 0xFF),
                Stage2Regs(self.s2.root | (self.vmid << 48), self.vtcr))
