"""VMSAv8-64 translation table walks, stage 1 and stage 2, over a read_phys(addr, size) callable.

Geometry comes from the translation control register at run time (TCR_ELx.TxSZ/TGx, VTCR_EL2
T0SZ/SL0/TG0), never from a kernel config. Descriptor formats follow the Arm ARM's "VMSAv8-64
translation table format descriptors". Every walk is bounded by the number of levels; a full-table
traversal (mappings()) walks each table once (a table reached again is reported as shared, not
re-walked) and is bounded in tables, descriptors, ranges and time (Budget).
"""

import struct
from itertools import compress
import time
from dataclasses import dataclass, field
from functools import lru_cache

from gdb_rkvm.arch import mair as mair_mod
from gdb_rkvm.arch.fields import bits

GRANULE_SHIFT = {4096: 12, 16384: 14, 65536: 16}
_TG0 = {0b00: 4096, 0b01: 65536, 0b10: 16384}
_TG1 = {0b10: 4096, 0b11: 65536, 0b01: 16384}
PA_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}   # ID_AA64MMFR0_EL1.PARange, TCR.IPS, VTCR.PS


class WalkError(Exception):
    """The walk could not start (bad geometry, address outside both ranges)."""


@dataclass(frozen=True)
class Geometry:
    granule: int          # bytes: 4096, 16384 or 65536
    ia_bits: int          # input address bits (64 - TxSZ)
    start_level: int      # -1..3
    oa_bits: int = 48     # output address bits the descriptors can carry
    ds: bool = False      # FEAT_LPA2 descriptor format (OA[51:50] in bits [9:8])

    @property
    def page_shift(self) -> int:
        return GRANULE_SHIFT[self.granule]

    @property
    def stride(self) -> int:
        return self.page_shift - 3

    def level_shift(self, level: int) -> int:
        """Lowest input-address bit indexed at `level` (12, 21, 30, 39 for 4K levels 3..0)."""
        return self.page_shift + self.stride * (3 - level)

    def index_bits(self, level: int) -> int:
        """Width of the table index at `level` (the start level may be narrower, or wider when concatenated)."""
        if level == self.start_level:
            return self.ia_bits - self.level_shift(level)
        return self.stride

    def entries(self, level: int) -> int:
        return 1 << self.index_bits(level)

    def index(self, va: int, level: int) -> int:
        return (va >> self.level_shift(level)) & (self.entries(level) - 1)

    def block_allowed(self, level: int) -> bool:
        """Levels whose descriptors may be blocks (4K: 1, 2 (and 0 with LPA2); 16K: 2 (1 with LPA2);
        64K: 2 (1 with 52-bit PA))."""
        if self.granule == 4096:
            return level in (1, 2) or (level == 0 and self.ds)
        if self.granule == 16384:
            return level == 2 or (level == 1 and self.ds)
        return level == 2 or (level == 1 and self.oa_bits == 52)


def table_base(ttbr: int, geo: Geometry) -> int:
    """The start-level table's PA from a TTBRn_ELx/VTTBR_EL2 value: BADDR, without ASID/VMID (bits
    [63:48]) and CnP (bit 0), aligned to the table's size (at least 64 bytes)."""
    size = max(64, geo.entries(geo.start_level) * 8)
    return ttbr & ((1 << 48) - 1) & ~(size - 1)


def start_level_for(granule: int, ia_bits: int) -> int:
    """Stage 1: the start level implied by the input size (4 - number of levels needed)."""
    shift = GRANULE_SHIFT[granule]
    stride = shift - 3
    levels = -(-(ia_bits - shift) // stride)  # ceil
    return 4 - levels


def stage1_geometry(tcr: int, upper: bool, el2_regime: bool = False) -> Geometry:
    """Geometry of the TTBR1 (upper) or TTBR0 half of a stage 1 regime from TCR_EL1 (or TCR_EL2)."""
    if upper and not el2_regime:
        tsz, tg = bits(tcr, 21, 16), _TG1.get(bits(tcr, 31, 30))
    else:
        tsz, tg = bits(tcr, 5, 0), _TG0.get(bits(tcr, 15, 14))
    if tg is None:
        raise WalkError(f"reserved granule encoding in TCR ({tcr:#x})")
    ia_bits = 64 - tsz
    if not 16 <= ia_bits <= 52:
        raise WalkError(f"TxSZ={tsz} gives a {ia_bits}-bit input range, outside what the architecture allows")
    ds = bool(bits(tcr, 59, 59)) if not el2_regime else bool(bits(tcr, 32, 32))
    ps = bits(tcr, 18, 16) if el2_regime else bits(tcr, 34, 32)
    oa = PA_BITS.get(ps, 48)
    return Geometry(tg, ia_bits, start_level_for(tg, ia_bits), oa, ds)


# VTCR_EL2.SL0 -> start level, per granule (the Arm ARM's AArch64.S2StartLevel). With the 4K granule
# and VTCR_EL2.DS = 1, VTCR_EL2.SL2 = 1 with SL0 = 0 starts at level -1 (FEAT_LPA2).
S2_START_LEVEL = {4096: {0: 2, 1: 1, 2: 0, 3: 3}, 16384: {0: 3, 1: 2, 2: 1, 3: 0}, 65536: {0: 3, 1: 2, 2: 1}}


def stage2_granule(vtcr: int) -> int:
    """VTCR_EL2.TG0 as bytes (WalkError when reserved)."""
    tg = _TG0.get(bits(vtcr, 15, 14))
    if tg is None:
        raise WalkError(f"reserved VTCR_EL2.TG0 ({vtcr:#x})")
    return tg


def stage2_start_level(vtcr: int) -> int:
    """The start level VTCR_EL2.SL0 (and SL2) name for VTCR_EL2.TG0 (WalkError when reserved)."""
    tg = stage2_granule(vtcr)
    sl0, sl2, ds = bits(vtcr, 7, 6), bits(vtcr, 33, 33), bits(vtcr, 32, 32)
    if tg == 4096 and ds and sl2:
        if sl0 == 0:
            return -1
        raise WalkError(f"reserved VTCR_EL2.SL2:SL0={sl2}:{sl0:02b} for a 4K granule")
    start = S2_START_LEVEL[tg].get(sl0)
    if start is None:
        raise WalkError(f"reserved VTCR_EL2.SL0={sl0} for a {tg // 1024}K granule")
    return start


def stage2_geometry(vtcr: int) -> Geometry:
    """Geometry of stage 2 from VTCR_EL2: T0SZ, TG0, and SL0 (which names the start level).

    The start level may resolve more IPA bits than one table indexes: then 2..16 tables are
    concatenated there (AArch64.S2InconsistentSL: 1 to stride + 4 index bits at the start level)."""
    tg, start = stage2_granule(vtcr), stage2_start_level(vtcr)
    ia_bits = 64 - bits(vtcr, 5, 0)
    oa = PA_BITS.get(bits(vtcr, 18, 16), 48)
    geo = Geometry(tg, ia_bits, start, oa, bool(bits(vtcr, 32, 32)))
    if not 0 < geo.index_bits(start) <= geo.stride + 4:
        raise WalkError(f"VTCR_EL2 T0SZ={64 - ia_bits} and SL0={bits(vtcr, 7, 6)} are inconsistent "
                        f"({geo.index_bits(start)} index bits at level {start}: 1 to {geo.stride + 4} "
                        f"fit, up to 16 concatenated tables)")
    return geo


@dataclass
class Descriptor:
    level: int
    raw: int
    kind: str            # invalid | table | block | page | reserved
    output: int | None   # next table address or output address
    attrs: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind in ("invalid", "reserved"):
            return f"{self.kind} ({self.raw:#018x})"
        a = ", ".join(f"{k}={v}" for k, v in self.attrs.items())
        return f"{self.kind} -> {self.output:#x}" + (f" [{a}]" if a else "")


def _output_address(desc: int, geo: Geometry, low_bit: int) -> int:
    oa = desc & ((1 << 48) - 1) & ~((1 << low_bit) - 1)
    if geo.ds:
        oa |= bits(desc, 9, 8) << 50
    elif geo.granule == 65536 and geo.oa_bits == 52:
        oa |= bits(desc, 15, 12) << 48
    return oa


_AP = {0: "EL1 RW, EL0 none", 1: "EL1 RW, EL0 RW", 2: "EL1 RO, EL0 none", 3: "EL1 RO, EL0 RO"}
_S2AP = {0: "none", 1: "RO", 2: "WO", 3: "RW"}
_SH = {0: "NSH", 1: "reserved", 2: "OSH", 3: "ISH"}


def decode_descriptor(raw: int, level: int, geo: Geometry, stage: int = 1, mair: int | None = None) -> Descriptor:
    """One descriptor at `level`: kind, output address, and its attributes."""
    if not raw & 1:
        return Descriptor(level, raw, "invalid", None)
    is_table_bit = bool(raw & 2)
    if level == 3:
        if not is_table_bit:
            return Descriptor(level, raw, "reserved", None)
        kind = "page"
    elif is_table_bit:
        out = _output_address(raw, geo, geo.page_shift)
        attrs = {}
        if stage == 1:
            attrs = {k: v for k, v in (("NSTable", bits(raw, 63, 63)), ("APTable", bits(raw, 62, 61)),
                                      ("UXNTable", bits(raw, 60, 60)), ("PXNTable", bits(raw, 59, 59))) if v}
        return Descriptor(level, raw, "table", out, attrs)
    else:
        if not geo.block_allowed(level):
            return Descriptor(level, raw, "reserved", None)
        kind = "block"
    out = _output_address(raw, geo, geo.level_shift(level))
    return Descriptor(level, raw, kind, out, leaf_attributes(raw, geo, stage, mair))


# Descriptor bits that are attributes, not output address: [11:2] and [63:50] ([51:50] are OA under LPA2,
# harmless to include in a cache key).
ATTRIBUTE_BITS = (((1 << 14) - 1) << 50) | 0xFFC


def leaf_attributes(raw: int, geo: Geometry, stage: int, mair: int | None) -> dict:
    """Attributes of a block or page descriptor, named as the Arm ARM names them (a fresh dict)."""
    return dict(_leaf_attributes(raw & ATTRIBUTE_BITS, geo, stage, mair))


@lru_cache(maxsize=4096)
def _leaf_attributes(raw: int, geo: Geometry, stage: int, mair: int | None) -> tuple:
    return tuple(_compute_leaf_attributes(raw, geo, stage, mair).items())


def _compute_leaf_attributes(raw: int, geo: Geometry, stage: int, mair: int | None) -> dict:
    a = {"AF": bits(raw, 10, 10), "Contiguous": bits(raw, 52, 52)}
    if not geo.ds:
        a["SH"] = _SH[bits(raw, 9, 8)]
    if stage == 1:
        idx = bits(raw, 4, 2)
        a.update({"AttrIndx": idx, "AP": _AP[bits(raw, 7, 6)], "nG": bits(raw, 11, 11), "NS": bits(raw, 5, 5),
                  "PXN": bits(raw, 53, 53), "UXN": bits(raw, 54, 54), "DBM": bits(raw, 51, 51)})
        if mair is not None:
            a["MemType"] = mair_mod.attr_name(mair_mod.attribute(mair, idx))
    else:
        a.update({"MemAttr": bits(raw, 5, 2), "S2AP": _S2AP[bits(raw, 7, 6)], "XN": bits(raw, 54, 53)})
    return a


@dataclass
class Step:
    level: int
    table: int      # PA of the table read at this level
    index: int
    entry_pa: int   # PA of the descriptor
    desc: Descriptor

    def to_dict(self):
        return {"level": self.level, "table": self.table, "index": self.index, "entry_pa": self.entry_pa,
                "descriptor": self.desc.raw, "kind": self.desc.kind, "output": self.desc.output,
                "attributes": self.desc.attrs, "text": self.desc.describe()}


@dataclass
class Walk:
    va: int
    geometry: Geometry
    steps: list = field(default_factory=list)
    pa: int | None = None
    leaf: Descriptor | None = None
    fault: str | None = None
    fault_level: int | None = None

    @property
    def ok(self) -> bool:
        return self.pa is not None

    @property
    def mapping_size(self) -> int | None:
        if self.leaf is None:
            return None
        return 1 << self.geometry.level_shift(self.leaf.level)

    def to_dict(self):
        return {"va": self.va, "pa": self.pa, "fault": self.fault, "fault_level": self.fault_level,
                "granule": self.geometry.granule, "ia_bits": self.geometry.ia_bits,
                "start_level": self.geometry.start_level, "mapping_size": self.mapping_size,
                "leaf": self.leaf.attrs if self.leaf else None, "steps": [s.to_dict() for s in self.steps]}


class TableReader:
    """Reads whole translation tables through read_phys and keeps them: one read per table, not per
    descriptor (a gdbstub round trip is the expensive part). Make a new one whenever the target runs."""

    def __init__(self, read_phys, granule: int):
        self.read_phys, self.granule = read_phys, granule
        self.tables: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def table(self, table: int, entries: int) -> tuple:
        """All descriptors of the table at `table`, as integers."""
        key = (table, entries * 8)
        found = self.tables.get(key)
        if found is None:
            data = bytes(self.read_phys(table, entries * 8))
            self.reads += 1
            found = self.tables[key] = struct.unpack(f"<{entries}Q", data)
        return found

    def entry(self, table: int, index: int, entries: int) -> int:
        return self.table(table, entries)[index]


def walk(va: int, base: int, geo: Geometry, reader: TableReader, stage: int = 1, mair: int | None = None) -> Walk:
    """Translate `va` (already stripped to its in-range bits) from the table at `base`."""
    result = Walk(va, geo)
    table = table_base(base, geo)
    for level in range(geo.start_level, 4):
        idx = geo.index(va, level)
        try:
            raw = reader.entry(table, idx, geo.entries(level))
        except Exception as e:  # noqa: BLE001  any read failure is a walk fault at this level
            result.fault, result.fault_level = f"cannot read the level {level} table at PA {table:#x}: {e}", level
            return result
        desc = decode_descriptor(raw, level, geo, stage, mair)
        result.steps.append(Step(level, table, idx, table + 8 * idx, desc))
        if desc.kind == "invalid":
            result.fault = f"translation fault at level {level}: descriptor {raw:#018x} is invalid (bit 0 clear)"
            result.fault_level = level
            return result
        if desc.kind == "reserved":
            what = "a level 3 descriptor with bit 1 clear" if level == 3 else f"a block not allowed at level {level}"
            result.fault = f"translation fault at level {level}: descriptor {raw:#018x} is {what}"
            result.fault_level = level
            return result
        if desc.kind == "table":
            table = desc.output
            continue
        offset_mask = (1 << geo.level_shift(level)) - 1
        result.pa, result.leaf = desc.output | (va & offset_mask), desc
        return result
    result.fault, result.fault_level = "walk ran past level 3", 3  # unreachable with a valid geometry
    return result


CONTIGUOUS_BIT = 1 << 52


def permissions(attrs: dict) -> str:
    """'rwx rwx' at EL1 then EL0, from a stage 1 leaf's AP, PXN and UXN (as leaf_attributes names them)."""
    ap = attrs.get("AP", "")
    el1_w = "EL1 RW" in ap
    el0_r = "EL0 RW" in ap or "EL0 RO" in ap
    el0_w = "EL0 RW" in ap
    k = "r" + ("w" if el1_w else "-") + ("-" if attrs.get("PXN") else "x")
    u = ("r" if el0_r else "-") + ("w" if el0_w else "-") + ("-" if attrs.get("UXN") or not el0_r else "x")
    return f"{k} {u}"


@dataclass
class Mapping:
    va: int
    size: int
    pa: int
    level: int
    attrs: dict
    key: int = 0     # attribute bits (without Contiguous): equal keys can be coalesced

    def end(self) -> int:
        return self.va + self.size

    def to_dict(self):
        return {"va": self.va, "end": self.end(), "size": self.size, "pa": self.pa, "level": self.level,
                "attributes": self.attrs}


@dataclass
class Budget:
    """Bounds on a whole-table traversal, and what it spent. The tables are guest memory: four pages
    can describe 512^4 leaves, so tables, leaves, output ranges and time are all bounded. The first
    bound reached stops the traversal and is named in `truncated`, with the numbers."""

    max_tables: int = 20000
    max_leaves: int = 2_000_000      # descriptors looked at (a 8 GiB linear map in 4 KiB pages is 2M)
    max_ranges: int = 65536          # coalesced ranges kept (each is a Mapping with its attributes)
    max_seconds: float = 20.0
    clock: object = time.monotonic
    tables: int = 0
    leaves: int = 0
    started: float | None = None
    truncated: str | None = None

    def start(self) -> None:
        self.started = self.clock()

    def stop(self, what: str) -> None:
        if self.truncated is None:
            self.truncated = (f"truncated: {what}; walked {self.tables} tables, {self.leaves} descriptors "
                              f"in {self.elapsed():.1f} s")

    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def to_dict(self) -> dict:
        return {"truncated": self.truncated, "tables": self.tables, "leaves": self.leaves,
                "seconds": round(self.elapsed(), 3),
                "limits": {"tables": self.max_tables, "leaves": self.max_leaves, "ranges": self.max_ranges,
                           "seconds": self.max_seconds}}


@dataclass
class SharedTable:
    """Table descriptors that point at a table already walked from elsewhere (shared or aliased
    tables): the VA range they cover maps what the first VA maps, and is not walked again."""

    va: int           # first VA covered by these descriptors
    size: int         # bytes of VA covered (consecutive descriptors pointing at the same table merge)
    table: int        # PA of the shared table
    level: int        # level of the shared table
    first_va: int     # where the table was first walked

    def to_dict(self):
        return {"va": self.va, "end": self.va + self.size, "size": self.size, "table": self.table,
                "level": self.level, "same_as_va": self.first_va}


_ONE = 1


def mappings(base: int, geo: Geometry, reader: TableReader, va_base: int = 0, stage: int = 1,
             mair: int | None = None, max_tables: int | None = None, budget: Budget | None = None,
             shared: list | None = None) -> tuple[list[Mapping], list[str]]:
    """Every valid leaf under the table at `base`, coalesced into ranges of equal attributes and
    contiguous output. Returns (mappings, problems).

    Each table is walked once: a table reached again (from another entry, another level, or its own
    path) is not re-walked; the references are appended to `shared` (SharedTable, consecutive ones
    merged) and a loop is a problem. `budget` (a Budget) bounds tables, descriptors, ranges and time;
    when one runs out the traversal stops and `budget.truncated` (also the last problem) says so."""
    out: list[Mapping] = []
    problems: list[str] = []
    budget = budget or Budget()
    if max_tables is not None:
        budget.max_tables = max_tables
    shared = shared if shared is not None else []
    budget.start()
    walked: dict[int, int] = {}     # table PA -> the VA it was first walked for

    class Stop(Exception):
        pass

    def note_shared(va: int, size: int, table: int, level: int) -> None:
        last = shared[-1] if shared else None
        if last is not None and last.table == table and last.level == level and last.va + last.size == va:
            last.size += size
        else:
            shared.append(SharedTable(va, size, table, level, walked[table]))

    def visit(table: int, level: int, va_prefix: int, path: frozenset):
        if budget.tables >= budget.max_tables:
            budget.stop(f"stopped after {budget.max_tables} tables (the table limit)")
            raise Stop
        budget.tables += 1
        walked[table] = va_prefix
        n = geo.entries(level)
        shift = geo.level_shift(level)
        try:
            entries = reader.table(table, n)
        except Exception as e:  # noqa: BLE001
            problems.append(f"cannot read the level {level} table at PA {table:#x}: {e}")
            return
        size = 1 << shift
        blocks_ok = level == 3 or geo.block_allowed(level)
        prev_idx, prev_raw = -2, 0
        first = entries[0] if entries else 0
        if blocks_ok and first & 1 and first & 2 == (level == 3) * 2 and \
                entries == tuple(range(first, first + n * size, size)):
            # the whole table is one run (a level 3 table of consecutive pages, same attributes): one leaf
            # of n * size, decided in C by one tuple comparison instead of n steps in Python
            if budget.leaves + n > budget.max_leaves:
                budget.stop(f"stopped at {budget.max_leaves} descriptors (the descriptor limit)")
                raise Stop
            budget.leaves += n
            pa = _output_address(first, geo, shift)
            key = first & ATTRIBUTE_BITS & ~CONTIGUOUS_BIT
            last = out[-1] if out else None
            if last is not None and last.va + last.size == va_prefix and last.pa + last.size == pa and last.key == key:
                last.size += n * size
            elif len(out) >= budget.max_ranges:
                budget.stop(f"stopped after {budget.max_ranges} ranges (the range limit)")
                raise Stop
            else:
                out.append(Mapping(va_prefix, n * size, pa, level, leaf_attributes(first, geo, stage, mair), key))
            return
        # valid descriptors (bit 0): picked in C (compress/map), then paired only for those
        valid = [(i, entries[i]) for i in compress(range(len(entries)), map(_ONE.__and__, entries))]
        if budget.leaves + len(valid) > budget.max_leaves:
            budget.stop(f"stopped at {budget.max_leaves} descriptors (the descriptor limit)")
            raise Stop
        if budget.elapsed() > budget.max_seconds:
            budget.stop(f"stopped after {budget.max_seconds:g} s (the time limit)")
            raise Stop
        budget.leaves += len(valid)
        for idx, raw in valid:
            if blocks_ok and idx == prev_idx + 1 and raw == prev_raw + size and raw & 2 == (level == 3) * 2:
                # next leaf, same attributes, next output block: only the run grows
                out[-1].size += size
                prev_idx, prev_raw = idx, raw
                continue
            prev_idx, prev_raw = idx, raw
            va = va_prefix | (idx << shift)
            if raw & 2 and level < 3:
                nxt = _output_address(raw, geo, geo.page_shift)
                if nxt in path or nxt == table:
                    problems.append(f"table at PA {nxt:#x} refers back to itself (level {level + 1}, "
                                    f"VA {va:#x}): skipped")
                    continue
                if nxt in walked:
                    note_shared(va, size, nxt, level + 1)
                    continue
                visit(nxt, level + 1, va, path | {table})
                continue
            if not blocks_ok or (level == 3 and not raw & 2):
                continue  # reserved encodings map nothing
            pa = _output_address(raw, geo, shift)
            key = raw & ATTRIBUTE_BITS & ~CONTIGUOUS_BIT
            last = out[-1] if out else None
            if last is not None and last.va + last.size == va and last.pa + last.size == pa and last.key == key:
                last.size += size  # the common case in a full map: extend the run, decode nothing
                continue
            if len(out) >= budget.max_ranges:
                budget.stop(f"stopped after {budget.max_ranges} ranges (the range limit)")
                raise Stop
            out.append(Mapping(va, size, pa, level, leaf_attributes(raw, geo, stage, mair), key))

    try:
        visit(table_base(base, geo), geo.start_level, va_base, frozenset())
    except Stop:
        pass
    if len(problems) > 64:  # one line per unreadable table or loop: keep the report readable
        problems[64:] = [f"... and {len(problems) - 64} more problems"]
    if budget.truncated:
        problems.append(budget.truncated)
    return out, problems


def is_upper_half(va: int) -> bool:
    """Whether the EL1&0 regime translates `va` through TTBR1_EL1 (the kernel's half): VA[55] selects
    it, whatever the top byte holds (TCR_EL1.TBI1 may make it a tag)."""
    return bool(bits(va, 55, 55))


def select_ttbr(va: int, tcr: int) -> tuple[bool, int]:
    """EL1&0 regime: (upper?, va bits inside the range) for `va`; WalkError if in neither range.

    VA[55] picks TTBR1 (1) or TTBR0 (0); the bits above the range must all equal it, except the top
    byte when TCR_EL1.TBIx ignores it.
    """
    upper = is_upper_half(va)
    geo = stage1_geometry(tcr, upper)
    tbi = bits(tcr, 38, 38) if upper else bits(tcr, 37, 37)
    top = 56 if tbi else 64
    high = bits(va, top - 1, geo.ia_bits) if top > geo.ia_bits else 0
    want = (1 << (top - geo.ia_bits)) - 1 if upper else 0
    if high != want:
        half = "TTBR1 (upper)" if upper else "TTBR0 (lower)"
        raise WalkError(f"{va:#x} is outside the {half} range: TCR gives {geo.ia_bits}-bit addresses, "
                        f"so bits [{top - 1}:{geo.ia_bits}] must all be {int(upper)}")
    if bits(tcr, 23, 23) if upper else bits(tcr, 7, 7):
        raise WalkError(f"walks through {'TTBR1' if upper else 'TTBR0'} are disabled (TCR_EL1.EPD{int(upper)} = 1)")
    return upper, va & ((1 << geo.ia_bits) - 1)
