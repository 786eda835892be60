"""Whole address-space maps of the EL1&0 regime: every mapped range, coalesced (for vmmap and p2v)."""

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch import regfields
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live.gdb_state import STATE
from gdb_rkvm.model.translation import AddressMap
from gdb_rkvm.live.translation import _geometry, table_reader


MAX_SHARED_SHOWN = 256   # shared-table references listed (all are counted)


def el1_map(half: str, cpu: int | None = None) -> AddressMap:
    """Mappings under TTBR1_EL1 (half='ttbr1') or TTBR0_EL1 ('ttbr0') of vCPU `cpu`, cached per stop."""
    key = ("vmmap", half, cpu)
    if key in STATE.stop_cache:
        return STATE.stop_cache[key]
    tcr, mair = t.read_register("TCR_EL1", cpu), t.read_register("MAIR_EL1", cpu)
    if not regfields.mmu_enabled(t.read_register("SCTLR_EL1", cpu)):
        raise RkvmError("the EL1 MMU is off (SCTLR_EL1.M = 0): nothing is mapped yet, VA = PA")
    upper = half == "ttbr1"
    if regfields.walks_disabled(tcr, upper):
        raise RkvmError(f"walks through {half.upper()}_EL1 are disabled (TCR_EL1.EPD{int(upper)} = 1)")
    geo = _geometry(lambda: pt.stage1_geometry(tcr, upper))
    ttbr = t.read_register(f"{half.upper()}_EL1", cpu)
    va_base = ((1 << 64) - (1 << geo.ia_bits)) if upper else 0
    budget, shared = pt.Budget(), []
    with table_reader(geo.granule) as reader:
        before = reader.reads
        maps, problems = pt.mappings(ttbr, geo, reader, va_base=va_base, mair=mair, budget=budget, shared=shared)
        reads = reader.reads - before
    result = AddressMap(half, ttbr, geo.granule, geo.ia_bits, maps, problems, reads, len(reader.tables),
                        budget.truncated, budget.to_dict(), shared[:MAX_SHARED_SHOWN], len(shared))
    STATE.stop_cache[key] = result
    return result
