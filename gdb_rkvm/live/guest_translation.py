"""The guest world's translation regimes on the live target: stage 2 (VTTBR_EL2/VTCR_EL2) and the
guest's stage 1 over it, from the live registers while a CPU is in the guest (HCR_EL2.VM = 1), else
from the vCPU that ran last on it (live/world.py), or from values the user names; and their walks.

While the CPU runs the host, VTTBR_EL2/VTCR_EL2 and the EL1 registers are not the guest's: the
stub's world switch loads them only for the guest's run, so the vCPU structure is where they are.
"""

from dataclasses import dataclass

import gdb

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch import regfields
from gdb_rkvm.arch import two_stage
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import kernel_facts, world
from gdb_rkvm.model.translation import GuestTranslation, Regime

STAGE1_NAMES = ("TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "SCTLR_EL1", "MAIR_EL1")


@dataclass(frozen=True)
class Given:
    """Register values the user names (--ttbr, --tcr, --vttbr, --vtcr); None: not given."""

    ttbr: int | None = None
    tcr: int | None = None
    vttbr: int | None = None
    vtcr: int | None = None


NOTHING_GIVEN = Given()


@dataclass(frozen=True)
class _Origin:
    """Where the guest's registers are for `cpu`: live (in the guest) or a saved vCPU."""

    cpu: int
    live: bool
    vcpu_pa: int | None = None
    vcpu: object = None          # stub_abi.VcpuState when not live

    def stage2_values(self) -> dict:
        if self.live:
            return {n: t.read_register(n, self.cpu) for n in ("VTTBR_EL2", "VTCR_EL2", "HCR_EL2")}
        v = self.vcpu
        return {"VTTBR_EL2": v.vttbr_el2, "VTCR_EL2": v.vtcr_el2, "HCR_EL2": v.hcr_el2}

    def stage1_values(self) -> dict:
        if self.live:
            return {n: t.read_register(n, self.cpu) for n in STAGE1_NAMES}
        return {n: self.vcpu.el1.get(n, 0) for n in STAGE1_NAMES}

    def says(self, what: str, saved: str) -> str:
        if self.live:
            return f"live {what} of CPU {self.cpu} (it is in the guest: HCR_EL2.VM = 1)"
        return (f"the vCPU at PA {self.vcpu_pa:#x} that ran last on CPU {self.cpu} ({saved}; CPU {self.cpu} is in "
                f"the host, its own registers are the host's)")


def _origin(cpu: int, needed: bool) -> _Origin | None:
    """Live when `cpu` is in the guest, else its last vCPU; None when not needed and there is none."""
    if regfields.stage2_enabled(t.read_register("HCR_EL2", cpu)):
        return _Origin(cpu, True)
    w = world.world(cpu)
    if not w.vcpu_pa:
        if needed:
            raise RkvmError(f"no vCPU has run on CPU {cpu}: give --vttbr (and --vtcr)")
        return None
    return _Origin(cpu, False, w.vcpu_pa, world.read_vcpu(w.vcpu_pa))


def _pa_range(cpu: int) -> int | None:
    """ID_AA64MMFR0_EL1.PARange, when this gdbstub exposes the register."""
    try:
        return regfields.field(t.read_register("ID_AA64MMFR0_EL1", cpu), regfields.ID_AA64MMFR0_EL1, "PARange")
    except (RkvmError, gdb.error):
        return None


def stage2_regime(cpu: int, given: Given = NOTHING_GIVEN, ipa: int | None = None) -> Regime:
    """The stage 2 to walk on `cpu`: --vttbr/--vtcr, else live (in the guest), else the last vCPU's.
    RkvmError when there is none, when `ipa` is beyond VTCR_EL2.T0SZ, or VTTBR_EL2 is not in RAM."""
    origin = None
    if given.vttbr is None or given.vtcr is None:
        origin = _origin(cpu, needed=given.vttbr is None)
    regs = origin.stage2_values() if origin else {"HCR_EL2": t.read_register("HCR_EL2", cpu)}
    named = [n for n, v in (("VTTBR_EL2", given.vttbr), ("VTCR_EL2", given.vtcr)) if v is not None]
    regs.update({n: v for n, v in (("VTTBR_EL2", given.vttbr), ("VTCR_EL2", given.vtcr)) if v is not None})
    if "VTCR_EL2" not in regs:
        regs["VTCR_EL2"] = t.read_register("VTCR_EL2", cpu)
    source = origin.says("VTTBR_EL2/VTCR_EL2", "its RKVM_VCPU_VTTBR_EL2/VTCR_EL2") if origin else \
        f"the live VTCR_EL2 of CPU {cpu}"
    if named:
        source = f"{' and '.join(named)} as given" + (f"; the rest from {source}" if len(named) < 2 else "")
    geo = _stage2_geometry(regs["VTCR_EL2"])
    if ipa is not None and ipa >> geo.ia_bits:
        raise RkvmError(f"IPA {ipa:#x} is beyond the {geo.ia_bits}-bit IPA space of VTCR_EL2 {regs['VTCR_EL2']:#x} "
                        f"(T0SZ = {64 - geo.ia_bits})")
    _check_in_ram(regs["VTTBR_EL2"], geo)
    return Regime("stage2", 2, regs, mmu_on=regfields.stage2_enabled(regs["HCR_EL2"]), table_register="VTTBR_EL2",
                  geometry=geo, source=source, pa_range=_pa_range(cpu))


def _stage2_geometry(vtcr: int) -> pt.Geometry:
    try:
        return pt.stage2_geometry(vtcr)
    except pt.WalkError as e:
        raise RkvmError(f"VTCR_EL2 {vtcr:#x} cannot be walked: {e}") from None


def _check_in_ram(vttbr: int, geo: pt.Geometry) -> None:
    base = pt.table_base(vttbr, geo)
    ram = kernel_facts.ram_ranges()
    if ram and not any(lo <= base < hi for lo, hi in ram):
        spans = ", ".join(f"{lo:#x}-{hi:#x}" for lo, hi in ram)
        raise RkvmError(f"VTTBR_EL2 {vttbr:#x} points at PA {base:#x}, outside RAM ({spans}): no stage 2 table "
                        f"is there (a VTTBR from virt_to_phys() of a vmalloc address?)")


def guest_regime(va: int, cpu: int, given: Given = NOTHING_GIVEN) -> Regime:
    """The guest's stage 1 on `cpu` (live EL1 registers in the guest, else the last vCPU's saved EL1
    context; --ttbr/--tcr override) with its stage 2 (stage2_regime)."""
    s2 = stage2_regime(cpu, given)
    origin = _origin(cpu, needed=given.ttbr is None or given.tcr is None)
    regs = origin.stage1_values() if origin else {n: 0 for n in STAGE1_NAMES}
    if origin is None:   # nothing ran: the user's TTBR/TCR with the MMU on
        regs["SCTLR_EL1"] = 1
    source = origin.says("EL1 registers", "its saved EL1 context, RKVM_EL1_*") if origin else "none"
    if given.tcr is not None:
        regs["TCR_EL1"] = given.tcr
        source = f"TCR_EL1 as given; {source}"
    table_register, geo = None, None
    if regfields.mmu_enabled(regs["SCTLR_EL1"]):
        try:
            upper, _ = pt.select_ttbr(va, regs["TCR_EL1"])
            geo = pt.stage1_geometry(regs["TCR_EL1"], upper)
        except pt.WalkError as e:
            raise RkvmError(f"guest VA {va:#x}: {e}") from None
        table_register = "TTBR1_EL1" if upper else "TTBR0_EL1"
        if given.ttbr is not None:
            regs[table_register] = given.ttbr
            source = f"{table_register} as given; {source}"
    return Regime("el1", 1, regs, mmu_on=table_register is not None, table_register=table_register, geometry=geo,
                  mair=regs["MAIR_EL1"], stage2=s2, source=source,
                  disabled=None if table_register else "the guest's MMU is off (SCTLR_EL1.M = 0): VA = IPA")


def walk_stage2(ipa: int, cpu: int, given: Given = NOTHING_GIVEN) -> GuestTranslation:
    regime = stage2_regime(cpu, given, ipa)
    with t.physical_reader() as read:
        w = two_stage.walk_stage2(ipa, regime.stage2_regs(), read)
    return GuestTranslation(ipa, regime, w, cpu)


def walk_guest(va: int, cpu: int, given: Given = NOTHING_GIVEN) -> GuestTranslation:
    regime = guest_regime(va, cpu, given)
    with t.physical_reader() as read:
        w = two_stage.walk_guest(va, regime.stage1_regs(), regime.stage2.stage2_regs(), read)
    return GuestTranslation(va, regime, w, cpu)
