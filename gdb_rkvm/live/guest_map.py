"""Whole-space maps of the guest world on the live target: stage 2 (IPA -> PA ranges) and the guest's
stage 1 (VA -> IPA ranges, its tables read at IPAs through stage 2) cut by stage 2 into VA/IPA/PA
pieces. Bounded like `rkvm vmmap` (pagetable.Budget): the tables are guest-controlled memory."""

from gdb_rkvm.arch import guest_map as gm
from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import guest_translation as gt
from gdb_rkvm.live.translation import table_reader
from gdb_rkvm.model.translation import AddressMap, GuestMap

MAX_SHARED_SHOWN = 256


def _map(name: str, base: int, geo: pt.Geometry, reader: pt.TableReader, stage: int, mair: int | None,
         va_base: int = 0) -> AddressMap:
    budget, shared = pt.Budget(), []
    before = reader.reads
    maps, problems = pt.mappings(base, geo, reader, va_base=va_base, stage=stage, mair=mair, budget=budget,
                                 shared=shared)
    return AddressMap(name, base, geo.granule, geo.ia_bits, maps, problems, reader.reads - before, len(reader.tables),
                      budget.truncated, budget.to_dict(), shared[:MAX_SHARED_SHOWN], len(shared))


def stage2_map(cpu: int, given: gt.Given = gt.NOTHING_GIVEN) -> GuestMap:
    """Every IPA range stage 2 maps on `cpu` (live, last vCPU's, or --vttbr/--vtcr)."""
    regime = gt.stage2_regime(cpu, given)
    with table_reader(regime.geometry.granule) as reader:
        s2 = _map("stage2", regime.registers["VTTBR_EL2"], regime.geometry, reader, 2, None)
    return GuestMap(regime, s2, cpu=cpu)


def guest_map(cpu: int, given: gt.Given = gt.NOTHING_GIVEN, half: str = "ttbr0") -> GuestMap:
    """The guest's stage 1 ranges under TTBR0_EL1 (or TTBR1_EL1) with each piece's IPA and PA."""
    probe = 0 if half == "ttbr0" else (1 << 64) - 1
    regime = gt.guest_regime(probe, cpu, given)
    if regime.table_register is None:
        raise RkvmError("the guest's MMU is off (SCTLR_EL1.M = 0): its VAs are IPAs; see 'rkvm vmmap --stage 2'")
    s2r = regime.stage2
    geo1 = regime.geometry
    va_base = ((1 << 64) - (1 << geo1.ia_bits)) if half == "ttbr1" else 0
    with table_reader(s2r.geometry.granule) as s2_reader:
        s2 = _map("stage2", s2r.registers["VTTBR_EL2"], s2r.geometry, s2_reader, 2, None)
        with t.physical_reader() as read:
            ipa_read = gm.IpaReader(read, s2r.registers["VTTBR_EL2"], s2r.geometry, s2_reader)
            # a reader of its own: its keys are IPAs, not the PAs the stop's shared readers hold
            s1 = _map(half, regime.registers[regime.table_register], geo1, pt.TableReader(ipa_read.read, geo1.granule),
                      1, regime.mair, va_base)
    pieces, truncated = gm.combine(s1.mappings, s2.mappings)
    return GuestMap(regime, s2, s1, pieces, truncated, cpu)

