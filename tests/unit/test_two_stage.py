"""The two-stage guest walker and the stage 2 helpers over synthetic tables: every granule, concatenated
stage 2 start tables, stage 1 tables at IPAs, faults named by stage and level, permissions intersected."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch import stage2 as s2
from gdb_rkvm.arch import two_stage as ts

from .pagetables import AF, S2_RW, FakeMemory, GuestTables


def vtcr(t0sz, sl0, tg0=0, ps=2, vs=0):
    return t0sz | (sl0 << 6) | (tg0 << 14) | (ps << 16) | (vs << 19)


def tcr(t0sz, tg0=0, ips=2):
    return t0sz | (tg0 << 14) | (ips << 32)


# (VTCR_EL2, expected start level, concatenated tables): TG0 0b00 4K, 0b10 16K, 0b01 64K
STAGE2 = [
    (vtcr(24, 1), 1, 2),                 # 4K, 40-bit IPA from level 1: two tables
    (vtcr(25, 1), 1, 1),                 # 4K, 39-bit, level 1
    (vtcr(30, 0), 2, 16),                # 4K, 34-bit from level 2: sixteen tables
    (vtcr(16, 2, ps=5), 0, 1),           # 4K, 48-bit from level 0
    (vtcr(24, 1, tg0=0b10), 2, 16),      # 16K, 40-bit from level 2: sixteen tables
    (vtcr(24, 2, tg0=0b10), 1, 1),       # 16K, 40-bit from level 1
    (vtcr(16, 2, tg0=0b10, ps=5), 1, 2),  # 16K, 48-bit from level 1: two tables
    (vtcr(24, 1, tg0=0b01), 2, 1),       # 64K, 40-bit from level 2
    (vtcr(20, 1, tg0=0b01, ps=4), 2, 4),  # 64K, 44-bit from level 2: four tables
    (vtcr(16, 2, tg0=0b01, ps=5), 1, 1),  # 64K, 48-bit from level 1
]
STAGE1 = [tcr(16), tcr(25), tcr(17, 0b10), tcr(22, 0b01)]


def s2_id(v):
    start = s2.stage2_start(v)
    return f"{start.granule // 1024}K-{start.ia_bits}b-L{start.start_level}x{start.tables}"


@pytest.mark.parametrize("value,level,tables", STAGE2, ids=[s2_id(v[0]) for v in STAGE2])
def test_stage2_start_and_concatenation(value, level, tables):
    start = s2.stage2_start(value)
    assert (start.start_level, start.tables) == (level, tables)
    assert s2.vtcr_problems(value, pa_range=5) == []
    geo = pt.stage2_geometry(value)
    assert geo.entries(level) == 1 << start.index_bits
    if tables > 1:   # concatenated: that many full tables, one after the other
        assert geo.entries(level) == tables * (geo.granule // 8) and start.table_bytes == tables * geo.granule


@pytest.mark.parametrize("value,name", [
    (vtcr(16, 0), "sl0-t0sz-inconsistent"),           # 48-bit from level 2 would need 27 index bits
    (vtcr(40, 2), "sl0-t0sz-inconsistent"),           # 24-bit IPA from level 0: no bit left for level 0
    (vtcr(24, 3, tg0=0b01), "reserved-sl0"),          # 64K SL0 = 3 is reserved
    (0b11 << 14, "reserved-granule"),
    (vtcr(24, 3), "sl0-needs-ttst"),                  # 4K SL0 = 3: level 3, FEAT_TTST only
    (vtcr(16, 3, tg0=0b10, ps=5), "sl0-needs-ds"),    # 16K level 0 is LPA2's
    (vtcr(10, 2), "t0sz-too-small"),
    (vtcr(42, 0), "t0sz-too-large"),
])
def test_vtcr_problems_are_named(value, name):
    assert name in [p.name for p in s2.vtcr_problems(value, pa_range=6)]


def test_vtcr_problems_that_need_the_pa_size():
    # 4K from level 0 needs a 44-bit PA; a 40-bit IPA space on a 36-bit PA machine cannot be backed
    assert [p.name for p in s2.vtcr_problems(vtcr(16, 2, ps=5), pa_range=2)] == ["sl0-needs-larger-pa",
                                                                               "ipa-larger-than-pa"]
    assert s2.vtcr_problems(vtcr(16, 2, ps=5), pa_range=None) == []
    assert "ipa-larger-than-pa" in [p.name for p in s2.vtcr_problems(vtcr(24, 1), pa_range=1)]


def test_lpa2_level_minus_1_start():
    value = vtcr(12, 0, ps=6) | (1 << 32) | (1 << 33)   # 4K, DS, SL2:SL0 = 1:00, 52-bit IPA
    start = s2.stage2_start(value)
    assert (start.start_level, start.index_bits, start.tables) == (-1, 4, 1)
    assert s2.vtcr_problems(value, pa_range=6) == []
    assert [p.name for p in s2.vtcr_problems(value, pa_range=5)][0] == "sl0-needs-larger-pa"


def test_vmid_width_follows_vtcr_vs():
    assert s2.vmid(0xABCD_0000_4000_0000, vtcr(24, 1)) == 0xCD
    assert s2.vmid(0xABCD_0000_4000_0000, vtcr(24, 1, vs=1)) == 0xABCD


def test_stage2_permissions_with_xnx():
    perms = s2.stage2_permissions
    assert str(perms(S2_RW)) == "rwx rwx"
    assert str(perms(AF | (1 << 6))) == "r-x r-x"                  # S2AP read-only
    assert str(perms(AF | (2 << 6))) == "-wx -wx"                  # write-only exists at stage 2
    assert str(perms(AF | (3 << 6) | (0b10 << 53))) == "rw- rw-"   # XN 0b10: nobody executes
    assert str(perms(AF | (3 << 6) | (0b01 << 53))) == "rw- rwx"   # XN 0b01: EL1 does not
    assert str(perms(AF | (3 << 6) | (0b11 << 53))) == "rwx rw-"   # XN 0b11: EL0 does not
    assert str(perms(AF | (3 << 6) | (0b01 << 53), xnx=False)) == "rwx rwx"  # XN[0] ignored


def test_stage1_permissions_tables_and_wxn():
    perms = s2.stage1_permissions
    assert str(perms(AF)) == "rwx ---"
    assert str(perms(AF | (1 << 6))) == "rw- rwx"          # EL0 writable: never EL1-executable
    assert str(perms(AF | (3 << 6) | (1 << 54))) == "r-x r--"
    assert str(perms(AF, wxn=True)) == "rw- ---"
    assert str(perms(AF | (1 << 6), s2.TableLimits(no_write=True))) == "r-x r-x"
    assert str(perms(AF | (1 << 6), s2.TableLimits(no_el0=True))) == "rwx ---"


def guest(value=STAGE2[0][0], s1=STAGE1[0]):
    return GuestTables(value, s1)


def test_worked_example_every_level_of_both_stages():
    g = guest()
    g.map(0x40_1000, 0x1234_0000, 0x20_5000_0000)
    s1regs, s2regs = g.regs()
    w = ts.walk_guest(0x40_1abc, s1regs, s2regs, g.mem.read)
    assert w.ok and w.ipa == 0x1234_0abc and w.pa == 0x20_5000_0abc and w.vmid == 5
    assert [s.level for s in w.stage1] == [0, 1, 2, 3] and w.table_register == "TTBR0_EL1"
    for step in w.stage1:   # every stage 1 descriptor is at an IPA, read at the PA stage 2 gives
        assert step.fetch.ok and step.entry_pa == step.entry + GuestTables.TABLE_PA_DELTA
        assert [s.level for s in step.fetch.steps] == [1, 2, 3]
    assert [s.level for s in w.stage2.steps] == [1, 2, 3] and w.stage2.start.tables == 2
    assert str(w.perms) == "rwx ---"


def test_guest_mmu_off_is_stage_2_only():
    g = guest()
    g.s2.map(0x1000_0000, 0x30_0000_0000, 3, S2_RW)
    s1regs, s2regs = g.regs()
    w = ts.walk_guest(0x1000_0010, ts.Stage1Regs(0, 0, 0, 0), s2regs, g.mem.read)
    assert not w.mmu_on and w.stage1 == () and w.ipa == 0x1000_0010 and w.pa == 0x30_0000_0010


def test_s1ptw_fault_when_a_table_page_is_not_in_stage_2():
    g = guest()
    g.map(0x40_1000, 0x1234_0000, 0x20_5000_0000)
    l2_table = g.s1.table_for(0x40_1000, 2)
    g.s2.set_raw(l2_table, 3, 0)            # stage 2 forgets the guest's level 2 table page
    w = ts.walk_guest(0x40_1000, *g.regs(), g.mem.read)
    f = w.fault
    assert not w.ok and f.stage == 2 and f.s1ptw and f.level == 3 and f.address == l2_table + 8 * 0x2
    assert [s.level for s in w.stage1] == [0, 1, 2] and w.stage1[-1].raw is None
    assert f.fsc == 0b000111 and "S1PTW" in f.describe()


def test_permission_faults_name_the_stage():
    g = guest()
    g.map(0x40_1000, 0x1234_0000, 0x20_5000_0000, s2_attrs=AF | (3 << 8) | (1 << 6))  # stage 2 read-only
    g.map(0x40_2000, 0x1235_0000, 0x20_6000_0000, s1_attrs=AF | (2 << 6))             # stage 1 read-only
    read_phys = g.mem.read
    w = ts.walk_guest(0x40_1000, *g.regs(), read_phys, access="w")
    assert (w.fault.stage, w.fault.kind, w.fault.level, w.fault.fsc) == (2, "permission", 3, 0b001111)
    assert ts.walk_guest(0x40_1000, *g.regs(), read_phys, access="r").ok
    w = ts.walk_guest(0x40_2000, *g.regs(), read_phys, access="w")
    assert (w.fault.stage, w.fault.kind, w.fault.level) == (1, "permission", 3) and w.stage2 is None


def test_access_flag_and_address_size_faults():
    g = guest()
    g.map(0x40_1000, 0x1234_0000, 0x20_5000_0000, s2_attrs=S2_RW & ~AF)
    w = ts.walk_guest(0x40_1000, *g.regs(), g.mem.read)
    assert (w.fault.stage, w.fault.kind, w.fault.fsc) == (2, "access flag", 0b001011)
    g.map(0x40_3000, 0x1236_0000, 1 << 41)      # beyond VTCR_EL2.PS (40 bits)
    w = ts.walk_guest(0x40_3000, *g.regs(), g.mem.read)
    assert (w.fault.stage, w.fault.kind, w.fault.level) == (2, "address size", 3)


def test_ipa_beyond_t0sz_is_a_level_0_translation_fault():
    g = guest(vtcr(30, 0))            # 34-bit IPA space
    g.s1.map(0x40_1000, 1 << 36)      # stage 1 gives an IPA stage 2 cannot take
    w = ts.walk_guest(0x40_1000, *g.regs(), g.mem.read)
    assert (w.fault.stage, w.fault.kind, w.fault.level) == (2, "translation", 0) and "T0SZ" in w.fault.reason


def test_bad_vtcr_faults_at_level_0_instead_of_raising():
    g = guest()
    g.map(0x40_1000, 0x1234_0000, 0x20_5000_0000)
    s1regs, s2regs = g.regs()
    bad = ts.Stage2Regs(s2regs.vttbr, vtcr(16, 0))
    w = ts.walk_guest(0x40_1000, s1regs, bad, g.mem.read)
    assert (w.fault.stage, w.fault.level, w.fault.s1ptw) == (2, 0, True) and "sl0-t0sz-inconsistent" in w.fault.reason


def test_unreadable_memory_is_an_external_abort():
    def read(addr, size):
        raise OSError("gdbstub said E14")
    w = ts.walk_stage2(0x1000, ts.Stage2Regs(0x4000_0000, vtcr(24, 1)), read)
    assert (w.fault.kind, w.fault.level, w.fault.fsc) == ("external abort", 1, 0b010101)


def test_budget_truncates_instead_of_hanging():
    g = guest()
    g.map(0x40_1000, 0x1234_0000, 0x20_5000_0000)
    w = ts.walk_guest(0x40_1000, *g.regs(), g.mem.read, budget=pt.Budget(max_tables=3))
    assert not w.ok and w.truncated.startswith("truncated: stopped after 3 descriptor reads")
    assert w.to_dict()["truncated"]


PAGE_SLOTS = st.integers(min_value=0, max_value=(1 << 40) - 1)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(STAGE2), st.sampled_from(STAGE1), st.lists(PAGE_SLOTS, min_size=1, max_size=6, unique=True),
       st.data())
def test_property_mapped_pages_walk_through_both_stages(s2case, s1tcr, seeds, data):
    g = GuestTables(s2case[0], s1tcr)
    g1, g2 = g.s1.geo.granule, g.s2.geo.granule
    big = max(g1, g2, 65536)
    expect = {}
    ipa_slots = set()
    for n, s in enumerate(seeds):
        va = (s % (1 << (g.s1.geo.ia_bits - g.s1.geo.page_shift))) << g.s1.geo.page_shift
        slot = (s >> 9) % (GuestTables.TABLE_IPA // big)
        if va in expect or slot in ipa_slots:
            continue
        ipa_slots.add(slot)
        ipa, pa = slot * big, 0x20_0000_0000 + n * big
        s1_ap = data.draw(st.integers(0, 3))
        s2_ap, s2_xn = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
        g.map(va, ipa, pa, s1_attrs=AF | (3 << 8) | (s1_ap << 6),
              s2_attrs=AF | (3 << 8) | (s2_ap << 6) | (s2_xn << 53))
        expect[va] = (ipa, pa, s1_ap, s2_ap)
    s1regs, s2regs = g.regs()
    for va, (ipa, pa, s1_ap, s2_ap) in expect.items():
        off = (va * 7 + 8) % g1 & ~7
        w = ts.walk_guest(va + off, s1regs, s2regs, g.mem.read)
        assert w.ok, w.fault and w.fault.describe()
        assert (w.ipa, w.pa) == (ipa + off, pa + off)
        assert [s.level for s in w.stage1] == list(range(g.s1.geo.start_level, 4))
        assert all(s.fetch.ok and s.fetch.steps[-1].level == 3 for s in w.stage1)
        assert [s.level for s in w.stage2.steps] == list(range(g.s2.geo.start_level, 4))
        # the combined permissions are the intersection, bit by bit
        assert w.perms == w.stage1_perms & w.stage2.perms
        assert ("w" in w.perms.el1) == (s1_ap & 2 == 0 and s2_ap & 2 != 0)
        assert ("r" in w.perms.el1) == bool(s2_ap & 1)
        assert ("r" in w.perms.el0) == bool(s1_ap & 1 and s2_ap & 1)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(STAGE2[:4] + STAGE2[5:6]), st.data())
def test_property_invalidated_descriptor_faults_at_its_stage_and_level(s2case, data):
    g = GuestTables(s2case[0], tcr(16, ips=5))   # a 48-bit IPS: stage 1 may give the top IPAs
    # the IPA's top bit set: its start-level entry is not the one the stage 1 table pages go through
    va, ipa, pa = 0x7F_1234_5000, (1 << (g.s2.geo.ia_bits - 1)) + 0x1234_0000, 0x20_5000_0000
    g.map(va, ipa, pa)
    stage = data.draw(st.sampled_from([1, 2]))
    if stage == 1:
        level = data.draw(st.integers(0, 3))
        g.s1.set_raw(va, level, 0)
    else:
        level = data.draw(st.integers(g.s2.geo.start_level, 3))
        g.s2.set_raw(ipa, level, 0x10)            # bit 0 clear: invalid
    w = ts.walk_guest(va, *g.regs(), g.mem.read)
    assert not w.ok and (w.fault.stage, w.fault.kind, w.fault.level) == (stage, "translation", level)
    assert w.fault.s1ptw is False and w.fault.address == (va if stage == 1 else ipa)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(STAGE2), st.sampled_from(STAGE1),
       st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=48),
       st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=48), st.integers(0, (1 << 48) - 1),
       st.sampled_from([None, "r", "w", "x"]))
def test_property_garbage_tables_never_raise(s2case, s1tcr, s2words, s1words, va, access):
    mem = FakeMemory()
    for i, w in enumerate(s2words):
        mem.write64(0x4000_0000 + 8 * i, w)
    for i, w in enumerate(s1words):
        mem.write64(0x8000_0000 + 8 * i, w)
    s1regs = ts.Stage1Regs(0x8000_0000, 0x8000_0000, s1tcr, 1)
    s2regs = ts.Stage2Regs(0x4000_0000, s2case[0])
    w = ts.walk_guest(va, s1regs, s2regs, mem.read, access=access)
    assert w.ok or w.fault is not None
    assert len(w.stage1) <= 4 and all(len(s.fetch.steps) <= 4 for s in w.stage1)
    assert mem.reads <= 35
    if w.fault:
        assert 0 <= w.fault.fsc < 64 and w.fault.describe()
    w.to_dict()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(STAGE2), st.lists(st.integers(0, (1 << 40) - 1), min_size=1, max_size=8, unique=True))
def test_property_stage2_walk_agrees_with_the_single_stage_walker(s2case, seeds):
    """walk_stage2 (descriptor reads) and pagetable.walk (whole tables) give the same PA and levels."""
    g = GuestTables(s2case[0], STAGE1[0])
    geo = g.s2.geo
    for n, s in enumerate(seeds):
        g.s2.map((s % (1 << (geo.ia_bits - geo.page_shift))) << geo.page_shift, 0x30_0000_0000 + n * geo.granule, 3,
                 S2_RW)
    s2regs = g.regs()[1]
    for s in seeds:
        ipa = ((s % (1 << (geo.ia_bits - geo.page_shift))) << geo.page_shift) | 0x18
        ours = ts.walk_stage2(ipa, s2regs, g.mem.read, access="r")
        theirs = pt.walk(ipa, s2regs.vttbr, geo, pt.TableReader(g.mem.read, geo.granule), stage=2)
        assert ours.pa == theirs.pa and [x.raw for x in ours.steps] == [x.desc.raw for x in theirs.steps]
        assert ours.vmid == 5
