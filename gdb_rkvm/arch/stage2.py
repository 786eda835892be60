"""Stage 2 (the EL1&0 regime's second translation, IPA -> PA): VTCR_EL2 checked, VTTBR_EL2 taken
apart, and the permissions of stage 1 and stage 2 leaves as rwx records that intersect.

What VTCR_EL2 may hold follows the Arm ARM's pseudocode for a stage 2 walk: AArch64.S2StartLevel,
AArch64.S2InvalidSL, AArch64.S2InconsistentSL, AArch64.S2TxSZFaults and AArch64.IPAIsOutOfRange; a
walk whose VTCR breaks one of them faults with a stage 2 translation fault at level 0.
"""

from dataclasses import dataclass

from . import pagetable as pt
from .fields import bits


@dataclass(frozen=True)
class Stage2Start:
    """Where a stage 2 walk starts, derived from VTCR_EL2 (T0SZ, SL0/SL2, TG0)."""

    granule: int
    ia_bits: int          # 64 - VTCR_EL2.T0SZ
    start_level: int
    index_bits: int       # IPA bits the start level resolves
    tables: int           # concatenated start-level tables (1..16 when consistent)

    @property
    def table_bytes(self) -> int:
        """Bytes of the start-level table(s) VTTBR_EL2.BADDR points at (and is aligned to)."""
        return max(64, (1 << self.index_bits) * 8) if self.index_bits > 0 else 0


def stage2_start(vtcr: int) -> Stage2Start:
    """The start level and the number of concatenated tables VTCR_EL2 implies, without checking that
    they are consistent (vtcr_problems() does). WalkError only for a reserved TG0 or SL0."""
    tg, start = pt.stage2_granule(vtcr), pt.stage2_start_level(vtcr)
    geo = pt.Geometry(tg, 64 - bits(vtcr, 5, 0), start)
    idx = geo.index_bits(start)
    tables = 1 << max(0, idx - geo.stride)
    return Stage2Start(tg, geo.ia_bits, start, idx, tables)


@dataclass(frozen=True)
class VtcrProblem:
    """A VTCR_EL2 value the hardware would not walk as written; `name` is stable (for triage)."""

    name: str
    text: str


# AArch64.MaxTxSZ: 39 for every granule (48 for 4K/16K and 47 for 64K only with FEAT_TTST)
MAX_T0SZ = 39


def vtcr_problems(vtcr: int, pa_range: int | None = None) -> list[VtcrProblem]:
    """What is wrong with VTCR_EL2 for a stage 2 walk, by name; [] when it is walkable.

    `pa_range` is ID_AA64MMFR0_EL1.PARange (the implemented PA size) when known: some start levels
    exist only on larger PA sizes, and an IPA space larger than the PA space cannot be walked."""
    out: list[VtcrProblem] = []
    tg0 = bits(vtcr, 15, 14)
    if tg0 == 0b11:
        return [VtcrProblem("reserved-granule", f"VTCR_EL2.TG0 = 0b11 is reserved ({vtcr:#x})")]
    try:
        start = stage2_start(vtcr)
    except pt.WalkError as e:
        return [VtcrProblem("reserved-sl0", str(e))]
    pa_max = pt.PA_BITS.get(pa_range) if pa_range is not None else None
    t0sz, ds = bits(vtcr, 5, 0), bits(vtcr, 32, 32)
    min_t0sz = 64 - (52 if ds or start.granule == 65536 else 48)
    if t0sz < min_t0sz:
        out.append(VtcrProblem("t0sz-too-small", f"VTCR_EL2.T0SZ = {t0sz} asks for a {64 - t0sz}-bit IPA space; "
                                                 f"at most {64 - min_t0sz} bits with this granule and DS"))
    if t0sz > MAX_T0SZ:
        out.append(VtcrProblem("t0sz-too-large", f"VTCR_EL2.T0SZ = {t0sz} gives a {64 - t0sz}-bit IPA space; "
                                                 f"the smallest is 25 bits (T0SZ 39) without FEAT_TTST"))
    out += _start_level_problems(vtcr, start, pa_max)
    ps_bits = pt.PA_BITS.get(bits(vtcr, 18, 16))
    if ps_bits is None:
        out.append(VtcrProblem("reserved-ps", f"VTCR_EL2.PS = {bits(vtcr, 18, 16)} is reserved"))
    if pa_max is not None and start.ia_bits > pa_max:
        out.append(VtcrProblem("ipa-larger-than-pa", f"a {start.ia_bits}-bit IPA space (T0SZ {t0sz}) is larger "
                                                     f"than the {pa_max}-bit PA size this CPU implements"))
    return out


def _start_level_problems(vtcr: int, start: Stage2Start, pa_max: int | None) -> list[VtcrProblem]:
    tg, level, sl0 = start.granule, start.start_level, bits(vtcr, 7, 6)
    out = []
    needs = {(4096, -1): 52, (4096, 0): 44, (16384, 1): 42, (16384, 0): 52, (65536, 1): 44}.get((tg, level))
    if needs is not None and pa_max is not None and pa_max < needs:
        out.append(VtcrProblem("sl0-needs-larger-pa", f"VTCR_EL2.SL0 = {sl0} (start at level {level} with "
                                                      f"{tg // 1024}K) needs a PA size of {needs} bits; this CPU "
                                                      f"has {pa_max}"))
    if (tg, level) == (16384, 0) and not bits(vtcr, 32, 32):
        out.append(VtcrProblem("sl0-needs-ds", "VTCR_EL2.SL0 = 3 with 16K (level 0) needs VTCR_EL2.DS = 1 (LPA2)"))
    if (tg, level) == (4096, 3):
        out.append(VtcrProblem("sl0-needs-ttst", "VTCR_EL2.SL0 = 3 with 4K (start at level 3) needs FEAT_TTST"))
    stride = pt.GRANULE_SHIFT[tg] - 3
    if not 0 < start.index_bits <= stride + 4:
        lo = pt.Geometry(tg, 64, level).level_shift(level) + 1
        out.append(VtcrProblem(
            "sl0-t0sz-inconsistent",
            f"VTCR_EL2.T0SZ = {64 - start.ia_bits} ({start.ia_bits}-bit IPA) and SL0 = {sl0} (level {level}, "
            f"{tg // 1024}K) disagree: level {level} resolves {lo}..{lo + stride + 3} bit IPAs (1 to 16 "
            f"concatenated tables), this one would need {start.index_bits} index bits there"))
    return out


def vttbr_baddr(vttbr: int) -> int:
    """VTTBR_EL2.BADDR as an address: bits [47:1] (without VMID [63:48] and CnP, bit 0)."""
    return bits(vttbr, 47, 1) << 1


def vmid(vttbr: int, vtcr: int) -> int:
    """VTTBR_EL2.VMID: bits [63:48] with 16-bit VMIDs (VTCR_EL2.VS = 1), else [55:48]."""
    return bits(vttbr, 63, 48) if bits(vtcr, 19, 19) else bits(vttbr, 55, 48)


@dataclass(frozen=True)
class Permissions:
    """What a translation allows at EL1 and EL0, as 'rwx' strings ('-' where denied)."""

    el1: str = "rwx"
    el0: str = "rwx"

    def __and__(self, other: "Permissions") -> "Permissions":
        return Permissions(_meet(self.el1, other.el1), _meet(self.el0, other.el0))

    def __str__(self) -> str:
        return f"{self.el1} {self.el0}"

    def allows(self, access: str, el: int = 1) -> bool:
        """Whether `access` ('r', 'w' or 'x') is allowed at EL `el` (0 or 1)."""
        return access in (self.el1 if el else self.el0)


def _meet(a: str, b: str) -> str:
    return "".join(x if x == y else "-" for x, y in zip(a, b, strict=True))


def _rwx(r: bool, w: bool, x: bool) -> str:
    return ("r" if r else "-") + ("w" if w else "-") + ("x" if x else "-")


def stage2_permissions(raw: int, xnx: bool = True) -> Permissions:
    """A stage 2 block/page descriptor's permissions: S2AP [7:6] (bit 6 read, bit 7 write) for both
    ELs; XN[1:0] [54:53] (FEAT_XNX: 0b01 no EL1 execute, 0b10 none, 0b11 no EL0 execute; without
    FEAT_XNX only XN[1] counts). Stage 2 execute does not need read permission."""
    r, w = bool(bits(raw, 6, 6)), bool(bits(raw, 7, 7))
    xn = bits(raw, 54, 53) if xnx else bits(raw, 54, 54) << 1
    x1 = xn in (0b00, 0b11)
    x0 = xn in (0b00, 0b01)
    return Permissions(_rwx(r, w, x1), _rwx(r, w, x0))


@dataclass(frozen=True)
class TableLimits:
    """Hierarchical limits a stage 1 walk gathers from its table descriptors (APTable, XNTables)."""

    no_write: bool = False     # APTable[1]
    no_el0: bool = False       # APTable[0]
    pxn: bool = False          # PXNTable
    uxn: bool = False          # UXNTable

    def add(self, raw: int) -> "TableLimits":
        """These limits with a table descriptor's bits [62:59] added."""
        return TableLimits(self.no_write or bool(bits(raw, 62, 62)), self.no_el0 or bool(bits(raw, 61, 61)),
                           self.pxn or bool(bits(raw, 59, 59)), self.uxn or bool(bits(raw, 60, 60)))


def stage1_permissions(raw: int, limits: TableLimits = TableLimits(), wxn: bool = False) -> Permissions:
    """A stage 1 (EL1&0) leaf's permissions: AP[2:1] [7:6], PXN [53], UXN [54], the table limits,
    SCTLR_EL1.WXN (writable implies execute-never), and a location writable at EL0 is never
    executable at EL1. EL0 execution needs EL0 read access."""
    ap2, ap1 = bits(raw, 7, 7), bits(raw, 6, 6)
    el0_r = bool(ap1) and not limits.no_el0
    el1_w = not ap2 and not limits.no_write
    el0_w = el0_r and el1_w
    el1_x = not (bits(raw, 53, 53) or limits.pxn or el0_w or (wxn and el1_w))
    el0_x = el0_r and not (bits(raw, 54, 54) or limits.uxn or (wxn and el0_w))
    return Permissions(_rwx(True, el1_w, el1_x), _rwx(el0_r, el0_w, el0_x))
