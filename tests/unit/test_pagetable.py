"""The walker over synthetic tables: every granule and start level, blocks, faults, bad tables."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch.pagetable import Geometry, TableReader, WalkError

from .pagetables import AF, FakeMemory, TableBuilder

GEOMETRIES = [
    Geometry(4096, 48, 0), Geometry(4096, 39, 1), Geometry(4096, 30, 2), Geometry(4096, 42, 0),
    Geometry(16384, 47, 1), Geometry(16384, 36, 2), Geometry(16384, 25, 3), Geometry(16384, 48, 0),
    Geometry(65536, 48, 1), Geometry(65536, 42, 2), Geometry(65536, 29, 3),
]


def walk(builder, va, stage=1, mair=None):
    return pt.walk(va, builder.root, builder.geo, TableReader(builder.mem.read, builder.geo.granule), stage, mair)


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: f"{g.granule // 1024}K-{g.ia_bits}b-L{g.start_level}")
def test_start_level_matches_the_input_size(geo):
    assert pt.start_level_for(geo.granule, geo.ia_bits) == geo.start_level


@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: f"{g.granule // 1024}K-{g.ia_bits}b-L{g.start_level}")
def test_pages_translate_in_every_geometry(geo):
    b = TableBuilder(geo)
    top = 1 << geo.ia_bits
    vas = [0, geo.granule, top - geo.granule, (top // 3) & ~(geo.granule - 1)]
    for n, va in enumerate(vas):
        b.map(va, 0x8000_0000 + n * geo.granule * 7)
    for n, va in enumerate(vas):
        w = walk(b, va + 0x18)
        assert w.ok, w.fault
        assert w.pa == 0x8000_0000 + n * geo.granule * 7 + 0x18
        assert [s.level for s in w.steps] == list(range(geo.start_level, 4))
        assert w.leaf.kind == "page" and w.mapping_size == geo.granule


@pytest.mark.parametrize("granule,level,size", [(4096, 1, 1 << 30), (4096, 2, 2 << 20), (16384, 2, 32 << 20),
                                                (65536, 2, 512 << 20)])
def test_blocks_where_the_granule_allows_them(granule, level, size):
    geo = Geometry(granule, 48, pt.start_level_for(granule, 48))
    b = TableBuilder(geo)
    va, pa = 5 * size, 0x1_0000_0000 + 3 * size
    b.map(va, pa, level=level)
    w = walk(b, va + 0x1234)
    assert w.ok and w.pa == pa + 0x1234 and w.leaf.kind == "block" and w.mapping_size == size


@pytest.mark.parametrize("granule,level", [(4096, 0), (16384, 1), (65536, 1)])
def test_blocks_where_they_are_not_allowed_fault(granule, level):
    geo = Geometry(granule, 48, pt.start_level_for(granule, 48))
    assert level >= geo.start_level  # every case here is a level the 48-bit geometry walks
    b = TableBuilder(geo)
    b.set_raw(0, level, 0x4000_0000 | AF | 1)
    w = walk(b, 0x10)
    assert not w.ok and w.fault_level == level and "not allowed" in w.fault


def test_invalid_entry_names_level_and_descriptor():
    geo = Geometry(4096, 48, 0)
    b = TableBuilder(geo)
    b.map(0x1000, 0x5000_0000)
    b.set_raw(0x2000, 3, 0xDEAD0000)  # bit 0 clear
    w = walk(b, 0x2000)
    assert not w.ok and w.fault_level == 3
    assert "translation fault at level 3" in w.fault and "0x00000000dead0000" in w.fault
    w = walk(b, 1 << 40)  # nothing at level 0 index 2
    assert w.fault_level == 0 and len(w.steps) == 1


def test_level3_with_bit1_clear_is_reserved():
    geo = Geometry(4096, 48, 0)
    b = TableBuilder(geo)
    b.set_raw(0x3000, 3, 0x5000_0000 | AF | 1)
    w = walk(b, 0x3000)
    assert not w.ok and "bit 1 clear" in w.fault


def test_attributes_and_mair():
    geo = Geometry(4096, 48, 0)
    b = TableBuilder(geo)
    raw_attrs = AF | (3 << 8) | (1 << 6) | (2 << 2) | (1 << 11) | (1 << 52) | (1 << 53) | (1 << 54)
    b.map(0x7000, 0x6000_0000, attrs=raw_attrs)
    mair = 0x00_44_FF_04 << 0  # Attr0 Device-nGnRE, Attr1 WB, Attr2 NC
    w = walk(b, 0x7000, mair=mair)
    a = w.leaf.attrs
    assert a["AttrIndx"] == 2 and a["MemType"] == "Normal Non-cacheable"
    assert a["AP"] == "EL1 RW, EL0 RW" and a["SH"] == "ISH" and a["nG"] == 1
    assert a["Contiguous"] == 1 and a["PXN"] == 1 and a["UXN"] == 1 and a["AF"] == 1


def test_stage2_concatenated_start_tables():
    vtcr = (24) | (1 << 6) | (0b00 << 14) | (2 << 16)  # T0SZ 24 (40-bit IPA), SL0 1 (level 1), 4K, 40-bit PA
    geo = pt.stage2_geometry(vtcr)
    assert geo.start_level == 1 and geo.index_bits(1) == 10  # two concatenated level 1 tables
    b = TableBuilder(geo)
    ipa = (1 << 39) + 0x5000     # lands in the second concatenated table
    b.map(ipa, 0x4800_0000, attrs=AF | (3 << 6) | (0xF << 2))
    w = walk(b, ipa + 8, stage=2)
    assert w.ok and w.pa == 0x4800_0008
    assert w.leaf.attrs["S2AP"] == "RW" and w.leaf.attrs["MemAttr"] == 0xF
    assert w.steps[0].index == 512 + 0


def test_stage2_rejects_inconsistent_sl0():
    with pytest.raises(WalkError):
        pt.stage2_geometry(16 | (0 << 6))  # 48-bit IPA starting at level 2: 27 index bits
    with pytest.raises(WalkError):
        pt.stage2_geometry(24 | (3 << 6) | (0b01 << 14))  # 64K granule, SL0=3 reserved


def test_self_referencing_table_cannot_loop():
    geo = Geometry(4096, 48, 0)
    b = TableBuilder(geo)
    # level 0 entry 0 points at the root itself
    b.mem.write64(b.root, b.root | 3)
    w = walk(b, 0)
    assert len(w.steps) <= 4   # bounded by the levels, whatever the tables say
    maps, problems = pt.mappings(b.root, geo, TableReader(b.mem.read, geo.granule))
    assert any("refers back to itself" in p for p in problems)


def test_table_budget_bounds_a_full_traversal():
    geo = Geometry(4096, 48, 0)
    b = TableBuilder(geo)
    for i in range(6):
        b.map(i << 30, 0x4000_0000 + (i << 12))
    maps, problems = pt.mappings(b.root, geo, TableReader(b.mem.read, geo.granule), max_tables=3)
    assert len(problems) == 1 and problems[0].startswith("truncated: stopped after 3 tables")


def test_mappings_coalesce_contiguous_runs():
    geo = Geometry(4096, 48, 0)
    b = TableBuilder(geo)
    for i in range(16):
        b.map(0x10_0000 + i * 4096, 0x5000_0000 + i * 4096)
    b.map(0x20_0000, 0x6000_0000)  # not contiguous in PA with the run above
    b.map(0x20_1000, 0x6000_1000, attrs=AF | (3 << 8) | (1 << 7))  # different permission
    reader = TableReader(b.mem.read, geo.granule)
    maps, problems = pt.mappings(b.root, geo, reader)
    assert problems == []
    assert [(m.va, m.size, m.pa) for m in maps] == [(0x10_0000, 16 * 4096, 0x5000_0000),
                                                     (0x20_0000, 4096, 0x6000_0000),
                                                     (0x20_1000, 4096, 0x6000_1000)]
    assert reader.reads == 5  # one read per table: L0, L1, L2 and the two L3 tables


def test_ttbr_selection_and_range_checks():
    tcr = 16 | (16 << 16) | (0b10 << 30)  # 48-bit both halves, 4K
    assert pt.select_ttbr(0xFFFF_0000_1234_5000, tcr) == (True, 0x0000_1234_5000)
    assert pt.select_ttbr(0x0000_7FFF_0000_0000, tcr) == (False, 0x7FFF_0000_0000)
    with pytest.raises(WalkError, match="outside the TTBR1"):
        pt.select_ttbr(0xFFFE_8000_0000_0000, tcr)
    with pytest.raises(WalkError, match="EPD1"):
        pt.select_ttbr(0xFFFF_8000_0000_0000, tcr | (1 << 23))
    # TBI1: the top byte is ignored
    assert pt.select_ttbr(0x12FF_8000_0000_0000, tcr | (1 << 38))[0] is True


def test_stage1_geometry_from_tcr():
    geo = pt.stage1_geometry(0x34B5503510, upper=True)   # the lab's TCR_EL1
    assert (geo.granule, geo.ia_bits, geo.start_level) == (4096, 48, 0)
    geo = pt.stage1_geometry((0b01 << 30) | (17 << 16), upper=True)  # 16K, 47-bit
    assert (geo.granule, geo.start_level) == (16384, 1)
    with pytest.raises(WalkError, match="reserved granule"):
        pt.stage1_geometry(0b11 << 14, upper=False)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(GEOMETRIES), st.lists(st.integers(min_value=0, max_value=(1 << 52) - 1),
                                             min_size=1, max_size=8, unique=True))
def test_property_mapped_pages_walk_back(geo, seeds):
    b = TableBuilder(geo)
    top_pages = 1 << (geo.ia_bits - geo.page_shift)
    expect = {}
    for s in seeds:
        va = (s % top_pages) << geo.page_shift
        pa = ((s >> 7) % (1 << 20)) << geo.page_shift | (1 << 40)
        b.map(va, pa)
        expect[va] = pa
    for va, pa in expect.items():
        w = walk(b, va + 8)
        assert w.ok and w.pa == pa + 8


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(GEOMETRIES), st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), min_size=1,
                                             max_size=64), st.integers(min_value=0, max_value=(1 << 52) - 1))
def test_property_garbage_tables_never_raise(geo, words, va):
    mem = FakeMemory()
    for i, w in enumerate(words):
        mem.write64(0x4000_0000 + 8 * i, w)
    va &= (1 << geo.ia_bits) - 1
    w = pt.walk(va, 0x4000_0000, geo, TableReader(mem.read, geo.granule))
    assert w.ok or (w.fault and w.fault_level is not None)
    assert len(w.steps) <= 4 - geo.start_level


def test_kernel_layout_of_a_48bit_4k_kernel():
    from gdb_rkvm.model.kernel_layout import KernelLayout, page_offset_from
    po = page_offset_from(0xFFFF_0000_8000_0000, 0xC000_0000, 0x4000_0000)
    assert po == 0xFFFF_0000_0000_0000
    lay = KernelLayout(po, 0x4000_0000, 0xFFFF_8000_3FE0_0000, 0xFFFF_8000_8000_0000, 0xFFFF_8000_8054_0000, 48)
    assert lay.config_va_bits == 48 and lay.page_end == 0xFFFF_8000_0000_0000
    assert lay.region(0xFFFF_0000_00A6_0000) == "linear map"
    assert lay.region(0xFFFF_8000_7854_04B8) == "modules"
    assert lay.region(0xFFFF_8000_8001_0800) == "kernel image"
    assert lay.region(0xFFFF_8000_8056_9000) == "vmalloc"
    assert lay.region(0x0000_FFFF_0000_0000) == "user (TTBR0)"
    # the formula, as the kernel computes it: linear map by offsets, anything else by kimage_voffset
    assert lay.virt_to_phys(0xFFFF_0000_00A6_0000) == 0x40A6_0000
    assert lay.virt_to_phys(0xFFFF_8000_7854_04B8) == 0x3874_04B8  # below RAM: what the seed saw
    assert lay.pa_symbol(0xFFFF_8000_8001_0800) == 0x4021_0800
    assert lay.phys_to_virt(0x40A6_0000) == 0xFFFF_0000_00A6_0000


def test_kernel_layout_52bit_config_on_48bit_hardware():
    from gdb_rkvm.model.kernel_layout import KernelLayout
    lay = KernelLayout(0xFFF0_0000_0000_0000, 0, 0, 0, 0, 48)
    assert lay.config_va_bits == 52 and lay.va_bits_min == 48
    assert lay.page_end == 0xFFFF_8000_0000_0000


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(GEOMETRIES[:6]), st.lists(st.tuples(st.integers(0, 63), st.integers(0, 3), st.booleans()),
                                                 min_size=1, max_size=24))
def test_property_full_map_equals_page_by_page_walks(geo, pages):
    """mappings() coalesces, but must describe exactly what walking each page gives."""
    b = TableBuilder(geo)
    g = geo.granule
    for slot, pa_slot, ro in pages:
        b.map(slot * g, 0x4000_0000 + (slot + pa_slot) * g, attrs=AF | (3 << 8) | ((2 << 6) if ro else 0))
    reader = TableReader(b.mem.read, g)
    maps, problems = pt.mappings(b.root, geo, reader)
    assert problems == []
    covered = {}
    for m in maps:
        for off in range(0, m.size, g):
            covered[m.va + off] = (m.pa + off, m.attrs["AP"])
    expected = {}
    for slot in {p[0] for p in pages}:
        w = walk(b, slot * g)
        expected[slot * g] = (w.pa, w.leaf.attrs["AP"])
    assert covered == expected


def test_kernel_layout_with_kaslr_module_ranges():
    from gdb_rkvm.model.kernel_layout import KernelLayout
    text, end = 0xFFFF_CFEB_E000_0000, 0xFFFF_CFEB_E054_0000
    direct = 0xFFFF_CFEB_D800_0000
    lay = KernelLayout(0xFFFF_0000_0000_0000, 0x4000_0000, 0xFFFF_CFEB_9FE0_0000, text, end, 48,
                       module_ranges=[(direct, direct + (128 << 20)), (text - (1 << 30), text + (1 << 30))])
    assert lay.region(0xFFFF_CFEB_D99E_C560) == "modules"
    assert lay.region(text + 0x10800) == "kernel image"   # the image sits inside the PLT window
    assert lay.region(0xFFFF_8000_8056_9000) == "vmalloc"
