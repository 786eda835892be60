"""`rkvm walk --stage 2`/`--guest` and `rkvm vmmap --stage 2`/`--guest` formatted from records built over
synthetic guest tables (tests/unit/pagetables.GuestTables), without GDB or QEMU; the VA/IPA/PA pieces of a
guest map checked against the two-stage walker (property test)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_rkvm.arch import guest_map as gm
from gdb_rkvm.arch import pagetable as pt
from gdb_rkvm.arch import two_stage as ts
from gdb_rkvm.model.records import to_json
from gdb_rkvm.model.translation import AddressMap, GuestMap, GuestTranslation, Regime
from tests.unit.pagetables import AF, S2_RW, GuestTables
from tests.unit.test_command_format import cmd, fmt  # noqa: F401  (cmd is a fixture)

VTCR = 32 | (1 << 6) | (2 << 16)           # the lab's: 4K, 32-bit IPA, start level 1, 40-bit PA
TCR = 25 | (1 << 32)                       # the lab guest's: 4K, 39-bit VA, start level 1
VA, IPA, PA = 0x4000_1000, 0x6000_2000, 0x4A3C_2000
DEVICE_PAGE = AF | (1 << 53) | (1 << 54)   # stage 1 page, AttrIndx 0 (Device with MAIR 0xff00), PXN, UXN


def lab_guest() -> GuestTables:
    g = GuestTables(VTCR, TCR, vmid=1)
    g.map(VA, IPA, PA)
    g.s1.map(0x4900_0000, 0x0900_0000, 3, DEVICE_PAGE)    # the UART: stage 2 leaves its IPA out
    return g


def regimes(g: GuestTables) -> tuple[Regime, Regime]:
    s1, s2 = g.regs()
    s2r = Regime("stage2", 2, {"VTTBR_EL2": s2.vttbr, "VTCR_EL2": VTCR, "HCR_EL2": 1}, table_register="VTTBR_EL2",
                 geometry=pt.stage2_geometry(VTCR), source="live VTTBR_EL2/VTCR_EL2 of CPU 0")
    regs = {"TTBR0_EL1": s1.ttbr0, "TTBR1_EL1": 0, "TCR_EL1": TCR, "SCTLR_EL1": 1, "MAIR_EL1": 0xFF00}
    s1r = Regime("el1", 1, regs, table_register="TTBR0_EL1", geometry=pt.stage1_geometry(TCR, False), mair=0xFF00,
                 stage2=s2r, source="live EL1 registers of CPU 0")
    return s1r, s2r


def guest_walk(g: GuestTables, va: int) -> GuestTranslation:
    s1r, s2r = regimes(g)
    return GuestTranslation(va, s1r, ts.walk_guest(va, s1r.stage1_regs(), s2r.stage2_regs(), g.mem.read), 0)


def test_stage2_walk_every_level_permissions_and_memattr(cmd):  # noqa: F811
    walk = cmd("walk")
    g = lab_guest()
    _, s2r = regimes(g)
    tr = GuestTranslation(IPA + 0x10, s2r, ts.walk_stage2(IPA + 0x10, s2r.stage2_regs(), g.mem.read), 0)
    text = fmt(walk, "RkvmWalk", tr, explain=True)
    lines = text.splitlines()
    assert lines[0] == (f"IPA {IPA + 0x10:#x} through stage 2: VTTBR_EL2 {s2r.registers['VTTBR_EL2']:#x} (VMID 1), "
                        f"VTCR_EL2 {VTCR:#x}: 4K granule, 32-bit IPA, start level 1")
    assert lines[1] == "  registers: live VTTBR_EL2/VTCR_EL2 of CPU 0"
    assert "An IPA (intermediate physical address)" in lines[2] and "S2AP" in lines[2]
    assert [ln.split()[1] for ln in lines if ln.strip().startswith("S2 L")] == ["L1", "L2", "L3"]
    assert "S2AP RW XN 0b00 (rwx rwx) MemAttr 0xf Normal Write-Back AF 1" in text
    assert lines[-1] == f"PA {PA + 0x10:#x}"
    j = to_json(tr)
    assert j["pa"] == PA + 0x10 and j["regime"] == "stage 2" and j["source"].startswith("live")
    assert [s["level"] for s in j["steps"]] == [1, 2, 3] and j["steps"][2]["attrs"]["S2AP"] == "RW"


def test_stage2_fault_says_level_descriptor_and_why(cmd):  # noqa: F811
    walk = cmd("walk")
    g = lab_guest()
    _, s2r = regimes(g)
    tr = GuestTranslation(0x0900_0000, s2r, ts.walk_stage2(0x0900_0000, s2r.stage2_regs(), g.mem.read), 0)
    text = fmt(walk, "RkvmWalk", tr)
    assert text.splitlines()[-1] == ("no PA: stage 2 translation fault at level 1: the level 1 descriptor "
                                     "0x0000000000000000 is invalid (bit 0 clear)")


def test_guest_walk_nests_each_table_fetch(cmd):  # noqa: F811
    walk = cmd("walk")
    g = lab_guest()
    tr = guest_walk(g, VA + 0x24)
    text = fmt(walk, "RkvmWalk", tr, explain=True)
    lines = text.splitlines()
    assert lines[0].startswith(f"guest VA {VA + 0x24:#x} (VMID 1): stage 1 via TTBR0_EL1 {g.s1.root:#x}")
    assert "4K granule, 39-bit, start level 1" in lines[0]
    assert "  stage 1 registers: live EL1 registers of CPU 0" in lines and "S1PTW" in text
    s1_lines = [i for i, ln in enumerate(lines) if ln.startswith("  S1 L")]
    assert len(s1_lines) == 3
    for i in s1_lines:   # every stage 1 level: its fetch through stage 2, indented under it
        assert lines[i + 1].startswith("      fetch of IPA ")
        assert [ln.split()[1] for ln in lines[i + 2:i + 5]] == ["L1", "L2", "L3"]
        assert lines[i + 5].startswith("        -> PA ")
    assert f"IPA {IPA + 0x24:#x} (stage 1: in a 4 KiB mapping, allows rwx ---)" in lines
    assert lines[-1] == f"PA {PA + 0x24:#x}  permissions: stage 1 rwx ---, stage 2 rwx rwx, combined rwx --- (EL1 EL0)"
    j = to_json(tr)
    assert j["pa"] == PA + 0x24 and j["ipa"] == IPA + 0x24 and j["stage2"]["pa"] == PA + 0x24
    assert j["stage2_regime"]["registers"]["VTCR_EL2"] == VTCR and j["regime"] == "guest EL1&0 + stage 2"
    assert all(s["fetch"]["pa"] == s["entry_pa"] for s in j["stage1"])


def test_guest_walk_of_the_mmio_page_faults_at_stage_2(cmd):  # noqa: F811
    walk = cmd("walk")
    tr = guest_walk(lab_guest(), 0x4900_0000)
    text = fmt(walk, "RkvmWalk", tr)
    assert "IPA 0x9000000 (stage 1: in a 4 KiB mapping, allows rw- ---)" in text
    assert text.splitlines()[-1].startswith("no PA: stage 2 translation fault at level 1: the level 1 descriptor")
    assert to_json(tr)["fault"]["address"] == 0x0900_0000


def maps(g: GuestTables) -> GuestMap:
    s1r, s2r = regimes(g)
    s2_reader = pt.TableReader(g.mem.read, 4096)
    m2, p2 = pt.mappings(s2r.registers["VTTBR_EL2"], s2r.geometry, s2_reader, stage=2)
    ipa_read = gm.IpaReader(g.mem.read, s2r.registers["VTTBR_EL2"], s2r.geometry, s2_reader)
    m1, p1 = pt.mappings(s1r.registers["TTBR0_EL1"], s1r.geometry, pt.TableReader(ipa_read.read, 4096), mair=0xFF00)
    pieces, cut = gm.combine(m1, m2)
    a2 = AddressMap("stage2", s2r.registers["VTTBR_EL2"], 4096, 32, m2, p2, 3, 3, None, {}, [], 0)
    a1 = AddressMap("ttbr0", s1r.registers["TTBR0_EL1"], 4096, 39, m1, p1, 3, 3, None, {}, [], 0)
    return GuestMap(s1r, a2, a1, pieces, cut, 0)


def test_vmmap_stage2_and_guest(cmd):  # noqa: F811
    vmmap = cmd("vmmap")
    gmap = maps(lab_guest())
    only2 = GuestMap(gmap.regime.stage2, gmap.stage2, cpu=0)
    text = fmt(vmmap, "RkvmVmmap", only2, explain=True)
    assert f"0x0000000060002000  0x0000000060003000  4 KiB    {PA:<#12x} RW   0b00 rwx rwx  Normal Write-Back" in text
    assert "Stage 2 maps IPAs" in text
    text = fmt(vmmap, "RkvmVmmap", gmap)
    assert f"0x0000000040001000  0x0000000040002000  4 KiB    {IPA:<#12x} {PA:<#12x} rwx ---  rwx ---" in text
    assert ("0x0000000049000000  0x0000000049001000  4 KiB    0x9000000    -            rw- ---  stage 2 unmapped "
            "(exits: MMIO?)  Device-nGnRnE") in text
    j = to_json(gmap)
    assert [r["pa"] for r in j["ranges"]] == [PA, None] and j["ranges"][1]["stage2_perms"] is None
    assert j["stage2_map"]["half"] == "stage2" and j["stage1_map"]["half"] == "ttbr0"


def test_memattr_names():
    assert [gm.memattr_name(v) for v in (0x0, 0x1, 0x5, 0xF, 0xD, 0x4)] == [
        "Device-nGnRnE", "Device-nGnRE", "Normal Non-cacheable", "Normal Write-Back",
        "Normal, Outer Write-Back, Inner Non-cacheable", "reserved (0b0100)"]
    assert str(gm.stage2_perms({"S2AP": "RO", "XN": 0b10})) == "r-- r--"


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 63), min_size=1, max_size=12), st.sets(st.integers(0, 63), max_size=40),
       st.integers(0, 0xFFF))
def test_guest_map_pieces_agree_with_the_walker(s1_pages, s2_pages, offset):
    """Stage 1 maps pages VA i -> IPA i; stage 2 maps some of those IPAs: each piece's IPA and PA is what
    walk_guest gives for an address inside it, and a piece without a PA is a stage 2 fault."""
    g = GuestTables(VTCR, TCR, vmid=1)
    va0, ipa0, pa0 = 0x1000_0000, 0x2000_0000, 0x5000_0000
    for i in s1_pages:
        g.s1.map(va0 + i * 4096, ipa0 + i * 4096, 3)
    for i in s2_pages:
        g.s2.map(ipa0 + i * 4096, pa0 + i * 8192, 3, S2_RW)   # not contiguous: one piece per page
    gmap = maps(g)
    assert sum(p.size for p in gmap.pieces) == 4096 * len(s1_pages)
    s1r, s2r = regimes(g)
    for p in gmap.pieces:
        va = p.va + min(offset, p.size - 1)
        w = ts.walk_guest(va, s1r.stage1_regs(), s2r.stage2_regs(), g.mem.read)
        assert w.ipa == p.ipa + (va - p.va)
        if p.pa is None:
            assert w.pa is None and w.fault.stage == 2
        else:
            assert w.pa == p.pa + (va - p.va)
