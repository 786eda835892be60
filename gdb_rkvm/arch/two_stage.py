"""A guest's two-stage translation: VA -> IPA by the guest's stage 1 (TTBR0/1_EL1, TCR_EL1), IPA ->
PA by the hypervisor's stage 2 (VTTBR_EL2, VTCR_EL2), over a read_phys(addr, size) callable.

Every stage 1 descriptor sits at an IPA: the walk translates each one through stage 2 before it can
read it (LevelStep.fetch), as the hardware does; a stage 2 fault there is an S1PTW fault. Checks follow
the Arm ARM's AArch64.S1Walk/S2Walk order: table base address size, descriptor valid, output address
size, access flag, then permissions, stage 1 before stage 2. The walk never raises on table contents.
Bounded: at most 5 stage 1 levels, each with a stage 2 walk of at most 5 levels, plus the final stage
2 walk (35 descriptor reads), and a Budget (reads, seconds) on top.
"""

from dataclasses import asdict, dataclass, field

from . import pagetable as pt
from . import stage2 as s2
from .fields import bits
from .stage2 import Permissions, TableLimits

# DFSC/IFSC of a fault of each kind at level 0..3 (level added in bits [1:0]); level -1 has its own codes
FAULT_CODES = {"address size": 0b000000, "translation": 0b000100, "access flag": 0b001000,
               "permission": 0b001100, "external abort": 0b010100}
LEVEL_MINUS_1_CODES = {"address size": 0b101001, "translation": 0b101011, "external abort": 0b010011}
ALL_ACCESS = Permissions("rwx", "rwx")


@dataclass(frozen=True)
class Stage1Regs:
    """The guest's EL1 translation registers (the guest's own values, saved or live)."""

    ttbr0: int
    ttbr1: int
    tcr: int
    sctlr: int
    mair: int | None = None


@dataclass(frozen=True)
class Stage2Regs:
    """The hypervisor's stage 2 for this guest; `pa_range` is ID_AA64MMFR0_EL1.PARange when known."""

    vttbr: int
    vtcr: int
    pa_range: int | None = None
    xnx: bool = True          # FEAT_XNX: stage 2 XN[0] (bit 53) splits execute by EL

    @property
    def vmid(self) -> int:
        return s2.vmid(self.vttbr, self.vtcr)


@dataclass(frozen=True)
class TranslationFault:
    """Where and why a translation failed, as the hardware would report it."""

    stage: int                 # 1 or 2
    level: int
    kind: str                  # translation | address size | access flag | permission | external abort
    reason: str
    address: int               # the failing stage's input: the VA (stage 1) or the IPA (stage 2)
    descriptor: int | None = None
    s1ptw: bool = False        # a stage 2 fault on a stage 1 table fetch

    @property
    def fsc(self) -> int:
        """The DFSC/IFSC (ESR_ELx.ISS[5:0]) this fault is reported with."""
        if self.level < 0:
            return LEVEL_MINUS_1_CODES.get(self.kind, FAULT_CODES[self.kind])
        return FAULT_CODES[self.kind] | (self.level & 3)

    def describe(self) -> str:
        where = f"stage {self.stage} {self.kind} fault at level {self.level}"
        if self.s1ptw:
            where += " on a stage 1 table fetch (S1PTW)"
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict:
        return {**asdict(self), "fsc": self.fsc, "text": self.describe()}


@dataclass(frozen=True)
class LevelStep:
    """One descriptor read: stage 1 ones are at IPAs (`entry`), read at `entry_pa` after `fetch`."""

    stage: int
    level: int
    table: int                 # the table's address: an IPA for stage 1, a PA for stage 2
    index: int
    entry: int                 # the descriptor's address, in the same space as `table`
    entry_pa: int | None       # where it was read; None when its stage 2 walk faulted
    raw: int | None            # None when it could not be read
    kind: str                  # invalid | table | block | page | reserved | unread
    output: int | None = None
    attrs: dict = field(default_factory=dict, hash=False)
    fetch: "Stage2Walk | None" = None

    def describe(self) -> str:
        where = f"stage {self.stage} L{self.level} [{self.index}] at {self.entry:#x}"
        if self.stage == 1 and self.entry_pa is not None:
            where += f" (PA {self.entry_pa:#x})"
        if self.raw is None:
            return f"{where}: not read"
        out = f" -> {self.output:#x}" if self.output is not None else ""
        return f"{where}: {self.raw:#018x} {self.kind}{out}"

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "fetch"}
        d["fetch"] = self.fetch.to_dict() if self.fetch else None
        d["text"] = self.describe()
        return d


@dataclass(frozen=True)
class Stage2Walk:
    """An IPA through stage 2."""

    ipa: int
    vmid: int
    start: s2.Stage2Start | None = None
    steps: tuple = ()
    pa: int | None = None
    size: int | None = None            # bytes the leaf maps
    perms: Permissions | None = None
    attrs: dict = field(default_factory=dict, hash=False)
    fault: TranslationFault | None = None
    truncated: str | None = None

    @property
    def ok(self) -> bool:
        return self.pa is not None

    def to_dict(self) -> dict:
        return {"ipa": self.ipa, "vmid": self.vmid, "pa": self.pa, "size": self.size,
                "start": asdict(self.start) if self.start else None, "perms": str(self.perms) if self.perms else None,
                "attributes": self.attrs, "steps": [s.to_dict() for s in self.steps],
                "fault": self.fault.to_dict() if self.fault else None, "truncated": self.truncated}


@dataclass(frozen=True)
class GuestWalk:
    """A guest VA through both stages: stage 1 levels (each with its stage 2 fetch), the IPA, the
    final stage 2 walk, the PA, and the permissions of both stages intersected."""

    va: int
    vmid: int
    mmu_on: bool
    table_register: str | None = None      # TTBR0_EL1 / TTBR1_EL1; None with the guest's MMU off
    stage1: tuple = ()
    ipa: int | None = None
    stage1_size: int | None = None
    stage1_perms: Permissions | None = None
    stage1_attrs: dict = field(default_factory=dict, hash=False)
    stage2: Stage2Walk | None = None
    pa: int | None = None
    perms: Permissions | None = None
    fault: TranslationFault | None = None
    truncated: str | None = None

    @property
    def ok(self) -> bool:
        return self.pa is not None

    def to_dict(self) -> dict:
        return {"va": self.va, "vmid": self.vmid, "mmu_on": self.mmu_on, "table_register": self.table_register,
                "stage1": [s.to_dict() for s in self.stage1], "ipa": self.ipa, "stage1_size": self.stage1_size,
                "stage1_perms": str(self.stage1_perms) if self.stage1_perms else None,
                "stage1_attributes": self.stage1_attrs,
                "stage2": self.stage2.to_dict() if self.stage2 else None, "pa": self.pa,
                "perms": str(self.perms) if self.perms else None,
                "fault": self.fault.to_dict() if self.fault else None, "truncated": self.truncated}


class _Stop(Exception):
    """The budget ran out."""


class _Memory:
    """8-byte descriptor reads through read_phys, each PA read once per walk, counted in a Budget."""

    def __init__(self, read_phys, budget: pt.Budget):
        self.read_phys, self.budget, self.seen = read_phys, budget, {}

    def read64(self, pa: int) -> int:
        if pa in self.seen:
            return self.seen[pa]
        b = self.budget
        if b.tables >= b.max_tables:
            b.stop(f"stopped after {b.max_tables} descriptor reads (the read limit)")
            raise _Stop
        if b.elapsed() > b.max_seconds:
            b.stop(f"stopped after {b.max_seconds:g} s (the time limit)")
            raise _Stop
        b.tables += 1
        data = bytes(self.read_phys(pa, 8))
        if len(data) != 8:
            raise ValueError(f"read {len(data)} bytes of 8")
        self.seen[pa] = value = int.from_bytes(data, "little")
        return value


def _oa_limit(geo: pt.Geometry, pa_range: int | None) -> int:
    """Output address bits descriptors may use: TCR.IPS/VTCR.PS, at most 48 without LPA2 (4K/16K),
    at most the implemented PA size."""
    oa = geo.oa_bits if (geo.ds or geo.granule == 65536) else min(geo.oa_bits, 48)
    pa_max = pt.PA_BITS.get(pa_range) if pa_range is not None else None
    return min(oa, pa_max) if pa_max else oa


def _base_level(start: int) -> int:
    return -1 if start < 0 else 0


def walk_stage2(ipa: int, regs: Stage2Regs, read_phys, access: str | None = None, el: int = 1,
                budget: pt.Budget | None = None) -> Stage2Walk:
    """`ipa` through the stage 2 at VTTBR_EL2/VTCR_EL2. `access` ('r', 'w', 'x' at EL `el`) adds a
    permission check; without it only validity, address sizes and the access flag can fault."""
    budget = budget or pt.Budget()
    budget.start()
    mem = _Memory(read_phys, budget)
    try:
        return _stage2(ipa, regs, mem, access, el, s1ptw=False)
    except _Stop:
        return Stage2Walk(ipa, regs.vmid, truncated=budget.truncated)


def _stage2(ipa: int, regs: Stage2Regs, mem: _Memory, access: str | None, el: int, s1ptw: bool) -> Stage2Walk:
    vmid, steps = regs.vmid, []
    start = None

    def fail(level: int, kind: str, reason: str, raw: int | None = None) -> Stage2Walk:
        f = TranslationFault(2, level, kind, reason, ipa, raw, s1ptw)
        return Stage2Walk(ipa, vmid, start, tuple(steps), fault=f)

    fatal = [p for p in s2.vtcr_problems(regs.vtcr, regs.pa_range) if p.name != "reserved-ps"]
    if fatal:
        return fail(0, "translation", f"VTCR_EL2 {regs.vtcr:#x} cannot be walked ({fatal[0].name}): {fatal[0].text}")
    start, geo = s2.stage2_start(regs.vtcr), pt.stage2_geometry(regs.vtcr)
    if ipa >> geo.ia_bits:
        return fail(0, "translation", f"IPA {ipa:#x} is outside the {geo.ia_bits}-bit IPA space "
                                      f"(VTCR_EL2.T0SZ = {64 - geo.ia_bits})")
    oa_bits = _oa_limit(geo, regs.pa_range)
    if bits(regs.vttbr, 47, 0) >> oa_bits:
        return fail(_base_level(geo.start_level), "address size",
                    f"VTTBR_EL2.BADDR {s2.vttbr_baddr(regs.vttbr):#x} is beyond the {oa_bits}-bit output size")
    table = pt.table_base(regs.vttbr, geo)
    for level in range(geo.start_level, 4):
        idx = geo.index(ipa, level)
        entry = table + 8 * idx
        try:
            raw = mem.read64(entry)
        except _Stop:
            raise
        except Exception as e:  # noqa: BLE001  an unreadable descriptor is what an external abort is
            return fail(level, "external abort", f"cannot read the level {level} descriptor at PA {entry:#x}: {e}")
        desc = pt.decode_descriptor(raw, level, geo, 2)
        steps.append(LevelStep(2, level, table, idx, entry, entry, raw, desc.kind, desc.output, dict(desc.attrs)))
        problem = _descriptor_problem(desc, level, oa_bits)
        if problem:
            return fail(level, problem[0], problem[1], raw)
        if desc.kind == "table":
            table = desc.output
            continue
        if not desc.attrs.get("AF") and not bits(regs.vtcr, 21, 21):
            return fail(level, "access flag", f"the level {level} {desc.kind} descriptor {raw:#018x} has AF = 0 "
                                              f"(bit 10) and VTCR_EL2.HA = 0", raw)
        perms = s2.stage2_permissions(raw, regs.xnx)
        if access and not perms.allows(access, el):
            return fail(level, "permission", f"stage 2 allows {perms} (S2AP={desc.attrs['S2AP']}, "
                                             f"XN={desc.attrs['XN']:#04b}), not {_ACCESS[access]} at EL{el}", raw)
        shift = geo.level_shift(level)
        return Stage2Walk(ipa, vmid, start, tuple(steps), desc.output | (ipa & ((1 << shift) - 1)), 1 << shift,
                          perms, dict(desc.attrs))
    return fail(3, "translation", "walk ran past level 3")  # unreachable with a valid geometry


_ACCESS = {"r": "read", "w": "write", "x": "execute"}


def _descriptor_problem(desc: pt.Descriptor, level: int, oa_bits: int) -> tuple[str, str] | None:
    if desc.kind == "invalid":
        return "translation", f"the level {level} descriptor {desc.raw:#018x} is invalid (bit 0 clear)"
    if desc.kind == "reserved":
        what = "a level 3 descriptor with bit 1 clear" if level == 3 else f"a block, not allowed at level {level}"
        return "translation", f"the level {level} descriptor {desc.raw:#018x} is {what}"
    if desc.output >> oa_bits:
        return "address size", (f"the level {level} {desc.kind} descriptor {desc.raw:#018x} gives {desc.output:#x}, "
                                f"beyond the {oa_bits}-bit output size")
    return None


def walk_guest(va: int, s1: Stage1Regs, s2regs: Stage2Regs, read_phys, access: str | None = None, el: int = 1,
               budget: pt.Budget | None = None) -> GuestWalk:
    """`va` through the guest's stage 1 and the hypervisor's stage 2 (see the module docstring).
    With the guest's MMU off (SCTLR_EL1.M = 0) the VA is the IPA and only stage 2 applies."""
    budget = budget or pt.Budget()
    budget.start()
    acc = _Acc(va, s2regs.vmid, bool(bits(s1.sctlr, 0, 0)))
    mem = _Memory(read_phys, budget)
    try:
        _walk(acc, s1, s2regs, mem, access, el)
    except _Stop:
        acc.truncated = budget.truncated
    return acc.freeze()


@dataclass
class _Acc:
    """A GuestWalk being built (the walk stops anywhere; what it found so far is the record)."""

    va: int
    vmid: int
    mmu_on: bool
    table_register: str | None = None
    stage1: list = field(default_factory=list)
    ipa: int | None = None
    stage1_size: int | None = None
    stage1_perms: Permissions | None = None
    stage1_attrs: dict = field(default_factory=dict)
    stage2: Stage2Walk | None = None
    pa: int | None = None
    perms: Permissions | None = None
    fault: TranslationFault | None = None
    truncated: str | None = None

    def fail(self, level: int, kind: str, reason: str, raw: int | None = None) -> None:
        self.fault = TranslationFault(1, level, kind, reason, self.va, raw)

    def freeze(self) -> GuestWalk:
        return GuestWalk(**{**self.__dict__, "stage1": tuple(self.stage1)})


def _walk(acc: _Acc, s1: Stage1Regs, s2regs: Stage2Regs, mem: _Memory, access: str | None, el: int) -> None:
    if acc.mmu_on:
        if not _stage1(acc, s1, s2regs, mem, access, el):
            return
    else:
        pa_bits = pt.PA_BITS.get(s2regs.pa_range, 52) if s2regs.pa_range is not None else 52
        if acc.va >> pa_bits:
            acc.fail(0, "address size", f"with the guest's MMU off (SCTLR_EL1.M = 0) the VA is the IPA, and "
                                        f"{acc.va:#x} is beyond {pa_bits} bits")
            return
        acc.ipa, acc.stage1_perms = acc.va, ALL_ACCESS
    acc.stage2 = final = _stage2(acc.ipa, s2regs, mem, access, el, s1ptw=False)
    if not final.ok:
        acc.fault = final.fault
        return
    acc.pa, acc.perms = final.pa, acc.stage1_perms & final.perms


def _stage1(acc: _Acc, s1: Stage1Regs, s2regs: Stage2Regs, mem: _Memory, access: str | None, el: int) -> bool:
    """The guest's stage 1 walk into `acc`; True when it produced an IPA."""
    try:
        upper, ia = pt.select_ttbr(acc.va, s1.tcr)
        geo = pt.stage1_geometry(s1.tcr, upper)
    except pt.WalkError as e:
        acc.fail(0, "translation", str(e))
        return False
    acc.table_register = "TTBR1_EL1" if upper else "TTBR0_EL1"
    ttbr = s1.ttbr1 if upper else s1.ttbr0
    oa_bits = _oa_limit(geo, s2regs.pa_range)
    if bits(ttbr, 47, 0) >> oa_bits:
        acc.fail(_base_level(geo.start_level), "address size",
                 f"{acc.table_register}.BADDR {bits(ttbr, 47, 1) << 1:#x} is beyond the {oa_bits}-bit "
                 f"IPA size (TCR_EL1.IPS)")
        return False
    hpd = bits(s1.tcr, 42, 42) if upper else bits(s1.tcr, 41, 41)
    table, limits = pt.table_base(ttbr, geo), TableLimits()
    for level in range(geo.start_level, 4):
        idx = geo.index(ia, level)
        entry = table + 8 * idx
        fetch = _stage2(entry, s2regs, mem, "r", 1, s1ptw=True)
        if not fetch.ok:
            acc.stage1.append(LevelStep(1, level, table, idx, entry, None, None, "unread", fetch=fetch))
            acc.fault = fetch.fault
            return False
        try:
            raw = mem.read64(fetch.pa)
        except _Stop:
            raise
        except Exception as e:  # noqa: BLE001
            acc.stage1.append(LevelStep(1, level, table, idx, entry, fetch.pa, None, "unread", fetch=fetch))
            acc.fail(level, "external abort", f"cannot read the level {level} descriptor at PA {fetch.pa:#x}: {e}")
            return False
        desc = pt.decode_descriptor(raw, level, geo, 1, s1.mair)
        acc.stage1.append(LevelStep(1, level, table, idx, entry, fetch.pa, raw, desc.kind, desc.output,
                                    dict(desc.attrs), fetch))
        problem = _descriptor_problem(desc, level, oa_bits)
        if problem:
            acc.fail(level, problem[0], problem[1], raw)
            return False
        if desc.kind == "table":
            limits = limits if hpd else limits.add(raw)
            table = desc.output
            continue
        return _stage1_leaf(acc, s1, geo, desc, ia, limits, access, el)
    acc.fail(3, "translation", "walk ran past level 3")
    return False


def _stage1_leaf(acc: _Acc, s1: Stage1Regs, geo: pt.Geometry, desc: pt.Descriptor, ia: int, limits: TableLimits,
                 access: str | None, el: int) -> bool:
    level, raw = desc.level, desc.raw
    if not desc.attrs.get("AF") and not bits(s1.tcr, 39, 39):
        acc.fail(level, "access flag", f"the level {level} {desc.kind} descriptor {raw:#018x} has AF = 0 (bit 10) "
                                       f"and TCR_EL1.HA = 0", raw)
        return False
    perms = s2.stage1_permissions(raw, limits, wxn=bool(bits(s1.sctlr, 19, 19)))
    acc.stage1_perms, acc.stage1_attrs = perms, dict(desc.attrs)
    if access and not perms.allows(access, el):
        acc.fail(level, "permission", f"stage 1 allows {perms} (AP={desc.attrs['AP']}), not "
                                      f"{_ACCESS[access]} at EL{el}", raw)
        return False
    shift = geo.level_shift(level)
    acc.ipa, acc.stage1_size = desc.output | (ia & ((1 << shift) - 1)), 1 << shift
    return True
