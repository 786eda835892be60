"""Every command's format() on records, without GDB or QEMU (a fake `gdb` module lets commands import)."""

import importlib
import sys
from types import SimpleNamespace

import pytest

from gdb_rkvm.arch import decode, esr, pagetable as pt
from gdb_rkvm.model.records import to_json
from gdb_rkvm.model.snapshot import CpuState, CpuSummary, ElPicture, Register, Snapshot
from gdb_rkvm.model.translation import AddressMap, Regime, Translation
from tests.hostile import fakegdb
from tests.unit.pagetables import TableBuilder

GEO = pt.Geometry(4096, 48, 0)
TCR = 0x34B5503510


@pytest.fixture
def cmd(monkeypatch):
    """cmd('walk') -> the commands module, imported against a fake gdb (forgotten afterwards)."""
    before = set(sys.modules)
    fakegdb.install(monkeypatch, fakegdb.Memory())
    yield lambda name: importlib.import_module(f"gdb_rkvm.commands.{name}")
    for name in set(sys.modules) - before:
        if name.startswith(("gdb_rkvm.live", "gdb_rkvm.commands")):
            del sys.modules[name]


def fmt(module, cls: str, record, **args):
    command = object.__new__(getattr(module, cls))
    return command.format(record, SimpleNamespace(**{"explain": False, "all": False, **args}))


def mapped_walk(va=0xFFFF800078542000, pa=0x4174D000):
    b = TableBuilder(GEO)
    b.map(va & ((1 << 48) - 1), pa)
    return pt.walk(va & ((1 << 48) - 1), b.root, GEO, pt.TableReader(b.mem.read, 4096), 1, 0xFF), b.root


def el1_regime(root: int) -> Regime:
    regs = {"TCR_EL1": TCR, "TTBR0_EL1": 0, "TTBR1_EL1": root, "MAIR_EL1": 0xFF, "SCTLR_EL1": 1}
    return Regime("el1", 1, regs, table_register="TTBR1_EL1", geometry=GEO, mair=0xFF)


def test_walk_mapped_unmapped_and_mmu_off(cmd):
    walk = cmd("walk")
    w, root = mapped_walk()
    tr = Translation(0xFFFF800078542000, el1_regime(root), w, w.pa)
    text = fmt(walk, "RkvmWalk", walk.WalkResult(tr, 0, "rkvm_debug"), explain=True)
    assert text.splitlines()[0] == ("VA 0xffff800078542000 <rkvm_debug> via TTBR1_EL1 (EL1&0, 4K granule, 48-bit, "
                                    "start level 0)")
    assert "PA 0x4174d000  (in a 4 KiB page)" in text and "level 3: a page descriptor ends the walk" in text
    j = to_json(walk.WalkResult(tr, 0, "rkvm_debug"))
    assert j["pa"] == 0x4174D000 and j["table_register"] == "TTBR1_EL1" and j["regime"] == "EL1&0"
    assert {"granule", "ia_bits", "start_level", "steps", "leaf", "mapping_size", "table_base", "cpu"} <= set(j)
    bad = pt.Walk(0x1000, GEO, fault="translation fault at level 0: descriptor 0x0000000000000000 is invalid")
    tr = Translation(0xFFFF000000001000, el1_regime(root), bad, None, fault=bad.fault)
    text = fmt(walk, "RkvmWalk", walk.WalkResult(tr, 0, None, "in the init sections"))
    assert text.endswith("unmapped: translation fault at level 0: descriptor 0x0000000000000000 is invalid\n"
                         "  (in the init sections)")
    off = Regime("el2", 1, {"SCTLR_EL2": 0}, mmu_on=False, disabled="EL2 MMU off (SCTLR_EL2.M = 0)")
    tr = Translation(0x40A60000, off, None, 0x40A60000, "EL2 MMU off (SCTLR_EL2.M = 0), VA = PA")
    assert fmt(walk, "RkvmWalk", walk.WalkResult(tr, 0, None)) == \
        "VA 0x40a60000: EL2 MMU off (SCTLR_EL2.M = 0), VA = PA; PA 0x40a60000"
    assert to_json(tr) == {"va": 0x40A60000, "pa": 0x40A60000, "regime": "EL2", "steps": [], "fault": None,
                           "note": "EL2 MMU off (SCTLR_EL2.M = 0), VA = PA"}
    with pytest.raises(Exception, match="is not mapped"):
        cmd("base").check_mapped(Translation(1, off, None, None, fault="no"))


def test_v2p_disagreeing_formula(cmd):
    v2p = cmd("v2p")
    w, root = mapped_walk(0xFFFF8000785404B8 & ~0xFFF, 0x4174A000)
    tr = Translation(0xFFFF8000785404B8, el1_regime(root), w, 0x4174A4B8)
    r = v2p.V2pReport(0xFFFF8000785404B8, "modules", 0xB85404B8, False, 0x4174A4B8, False,
                      v2p.verdict("modules", 0xB85404B8, 0x4174A4B8, tr), "rkvm_init", tr)
    text = fmt(v2p, "RkvmV2p", r)
    assert text.splitlines() == [
        "VA 0xffff8000785404b8 <rkvm_init> in modules", "virt_to_phys() formula  0xb85404b8  (not RAM)",
        "page-table walk         0x4174a4b8",
        "virt_to_phys() is not valid here: this is a module address (only the linear map, and the kernel image "
        "through __pa_symbol(), translate by formula); the real PA is 0x4174a4b8"]
    assert to_json(r)["walk"]["pa"] == 0x4174A4B8 and to_json(r)["walk_pa"] == 0x4174A4B8


def test_vmmap_ranges_shared_and_problems(cmd):
    vmmap = cmd("vmmap")
    m = pt.Mapping(0xFFFF000000000000, 2 << 20, 0x40000000, 2, {"AP": "EL1 RW, EL0 none", "PXN": 1, "UXN": 1,
                                                                 "MemType": "Normal Write-Back"})
    shared = pt.SharedTable(0xFFFF000040000000, 1 << 30, 0x41000000, 2, 0xFFFF000000000000)
    amap = AddressMap("ttbr1", 0x41A3A000, 4096, 48, [m], ["a problem"], 3, 3, None, {}, [shared], 2)
    text = fmt(vmmap, "RkvmVmmap", vmmap.VmmapResult(amap, 0))
    assert "0xffff000000000000  0xffff000000200000  2 MiB    0x40000000   rw- ---  Normal Write-Back" in text
    assert "shared: the level 2 table at PA 0x41000000, already listed at VA 0xffff000000000000" in text
    assert "... and 1 more shared-table ranges" in text and text.endswith("problem: a problem")
    j = to_json(vmmap.VmmapResult(amap, 0))
    assert j["mappings"][0]["perms"] == "rw- ---" and j["shared_tables"][0]["same_as_va"] == 0xFFFF000000000000


def summary(n=0, el=1, vbar=0x40A60000, sp=0x40A61400):
    return CpuSummary(n, el, f"EL{el}h", 0xFFFF800080A1C7D4, "cpu_do_idle+4", vbar, "rkvm-stub",
                      "the rkvm EL2 stub", "rkvm_vec_cur_sp0_sync", sp)


def picture():
    regs = {"ESR_EL2": Register(0x5A00004B, summary="EC 0x16 HVC64: HVC #0x4b", explain=["an HVC"]),
            "ELR_EL2": Register(0xFFFF800080012340, symbol="__hyp_call+4"),
            "HCR_EL2": Register(0x80000000), "SCTLR_EL2": Register(0x30C50830), "FAR_EL2": Register(None)}
    return ElPicture(1, 1, "EL1h", 0x3C5, 0xFFFF8000802688F8, "cpu_do_idle+8", regs, "RW", False,
                     "the rkvm EL2 stub")


def test_el_and_cpus(cmd):
    text = fmt(cmd("el"), "RkvmEl", picture(), explain=True)
    assert text.splitlines()[0] == "CPU 1: EL1h, PC 0xffff8000802688f8 <cpu_do_idle+8>"
    assert "ESR_EL2   0x5a00004b          EC 0x16 HVC64: HVC #0x4b" in text and "            an HVC" in text
    assert "<__hyp_call+4>" in text and "set: RW" in text and "M=0: EL2 MMU off" in text and "FAR_EL2   -" in text
    cpus = cmd("cpus")
    r = {"cpus": [summary(0), summary(1, el=2, sp=None)], "warnings": ["CPUs disagree"], "hyp_stub_pa": None,
         "rkvm_stub_pas": []}
    text = fmt(cpus, "RkvmCpus", r, explain=True)
    assert "0    EL1h  0xffff800080a1c7d4 <cpu_do_idle+4>  0x40a60000 <rkvm_vec_cur_sp0_sync>" in text
    assert "warning: CPUs disagree" in text and "CPU 1 runs inside EL2 code" in text
    assert to_json(r)["cpus"][1]["sp_el2"] is None


def test_snapshot(cmd):
    s = Snapshot([CpuState(0, summary(0), picture(), ["0x0 <x>"]), CpuState(1)], {"0": 0x40A60000}, {}, None, [],
                 [], None, {}, None, None, ["CPU 1 summary: lost"], True)
    text = fmt(cmd("snapshot"), "RkvmSnapshot", s)
    assert text.splitlines()[0] == ("CPU 0: EL1h at 0xffff800080a1c7d4 <cpu_do_idle+4>, VBAR_EL2 0x40a60000 "
                                    "(the rkvm EL2 stub)")
    assert text.endswith("problem: CPU 1 summary: lost") and to_json(s)["cpus"][1] == {"cpu": 1}


def test_status(cmd):
    r = {"session": {"profile": "lab", "pid": 42, "gdb": "127.0.0.1:1234", "alive": True, "serial_log": "s",
                     "kernel_cmdline": "console=ttyAMA0", "qmp_socket": "/q", "qemu_status": "paused",
                     "exception_log": None},
         "physical_reads": "guest RAM file", "connected": True, "vcpus": 2, "running": False, "vmlinux": None,
         "modules_with_symbols": {"rkvm\x1b": {"ko": "rkvm.ko", "text": "0xffff800078540000"}}}
    text = fmt(cmd("status"), "RkvmStatus", r)
    assert "session   lab (QEMU pid 42, gdbstub 127.0.0.1:1234, alive)" in text
    assert "target    connected, 2 vCPUs, stopped" in text and "vmlinux   not loaded" in text
    assert "\x1b" not in text and "qmp       /q (QEMU: paused)" in text
    assert fmt(cmd("status"), "RkvmStatus", {**r, "session": None, "connected": False}).startswith("session   none")


def test_sysreg_and_esr(cmd):
    d = {**decode.decode("HCR_EL2", 0x80000000).to_dict(), "cpu": 0, "doc": "", "encoding": None, "points_at": None}
    text = fmt(cmd("sysreg"), "RkvmSysreg", {"registers": [d]})
    assert text.startswith("HCR_EL2 = 0x80000000") and "RW" in text
    d = {**esr.decode(0x5A000042, "ESR").to_dict(), "cpu": None, "never_taken": False}
    text = fmt(cmd("esr"), "RkvmEsr", d)
    assert text.startswith("ESR = 0x5a000042  EC 0x16 HVC64: HVC #0x42") and "imm16[15:0] = 0x42" in text
    d = {**esr.decode(0, "ESR_EL2").to_dict(), "cpu": 0, "never_taken": True, "summary": esr.never_taken_summary(2)}
    assert fmt(cmd("esr"), "RkvmEsr", d) == f"ESR_EL2 = 0x0  {esr.never_taken_summary(2)}"


def test_vectors(cmd):
    r = {"cpu": 0, "el": 2, "vbar": 0x40A60000, "physical": True, "points_at": "the rkvm EL2 stub",
         "slots": [{"offset": 0x400, "slot": "Lower EL using AArch64, Synchronous", "address": 0x40A60400,
                    "symbol": "rkvm_vec_lower64_sync",
                    "instructions": [{"address": 0x40A60400, "text": "b #0x40a60b00 <rkvm_stub_el1_sync>"}]}]}
    text = fmt(cmd("vectors"), "RkvmVectors", r, explain=True)
    assert text.splitlines()[:3] == [
        "VBAR_EL2 = 0x40a60000 on CPU 0: the rkvm EL2 stub",
        "+0x400  Lower EL using AArch64, Synchronous  0x40a60400 <rkvm_vec_lower64_sync>",
        "        0x40a60400  b #0x40a60b00 <rkvm_stub_el1_sync>"]
    assert "read from physical memory" in text


def test_stub(cmd):
    r = {"cpus": [{"cpu": 0, "vbar_el2": 0x40A60000, "installed": True, "why_not": None},
                  {"cpu": 1, "vbar_el2": 0x4046E000, "installed": False, "why_not": "VBAR_EL2 = 0x4046e000 is x"}],
         "stub_pa": 0x40A60000, "symbols": "rkvm: loaded symbols", "elf": "el2_stub.elf", "magic_offset": 0,
         "copy": [{"cpus": [0, 1], "vbar_el2": 0, "error": "VBAR_EL2 is 0 (not set): nothing to compare"}]}
    assert fmt(cmd("stub"), "RkvmStub", r).splitlines() == [
        "CPU 0  VBAR_EL2 0x40a60000  rkvm stub installed", "CPU 1  VBAR_EL2 0x4046e000  VBAR_EL2 = 0x4046e000 is x",
        "rkvm: loaded symbols", "CPU 0, 1: VBAR_EL2 is 0 (not set): nothing to compare"]


def test_kaslr_format_says_capable_known_and_pending(cmd):
    kaslr = cmd("kaslr_cmd")
    base = {"capable": True, "known": True, "slide": 0x1E000000, "how": "VBAR_EL1 - vectors", "changed": None}
    assert fmt(kaslr, "RkvmKaslr", base) == "KASLR slide 0x1e000000: VBAR_EL1 - vectors"
    moved = fmt(kaslr, "RkvmKaslr", {**base, "changed": "rkvm: vmlinux symbols at slide 0x1e000000"})
    assert moved.splitlines() == ["KASLR slide 0x1e000000: VBAR_EL1 - vectors",
                                  "rkvm: vmlinux symbols at slide 0x1e000000"]
    pending = fmt(kaslr, "RkvmKaslr", {**base, "known": False, "slide": None, "how": "VBAR_EL1 not set yet"})
    assert pending.startswith("KASLR slide not known yet: VBAR_EL1 not set yet") and "not shown" in pending
    assert "not built with KASLR" in fmt(kaslr, "RkvmKaslr", {**base, "capable": False})


def test_psci_format_lists_landings_calls_and_escapes_guest_text(cmd):
    psci = cmd("psci_cmd")
    r = {"conduit": "hvc", "how": "device tree /psci method", "armed_sites": 3, "calls_dropped": 2,
         "cpus": {0: {"lands": "VBAR_EL2 0x40b78400 (rkvm stub)", "handles_psci": False, "why": "no PSCI in it"},
                  1: {"lands": None, "handles_psci": None, "why": None}},
         "calls": [{"cpu": 1, "conduit": "hvc", "site": 0xFFFF800080010000, "site_symbol": "__invoke\x1b[2J",
                    "vbar_el2": 0x40B78000, "vbar_kind": "the rkvm EL2 stub", "call": "PSCI CPU_ON",
                    "result": 0, "result_text": "SUCCESS"}]}
    text = fmt(psci, "RkvmPsci", r, explain=True)
    lines = text.splitlines()
    assert lines[0] == "conduit   hvc (device tree /psci method)"
    assert lines[1].startswith("CPU 0     VBAR_EL2 0x40b78400 (rkvm stub)  does NOT handle PSCI: no PSCI in it")
    assert "every PSCI call is an exception to EL2" in text and "(3 HVC/SMC instructions)" in text
    assert "\x1b" not in text and "CPU 1 HVC at 0xffff800080010000" in text and "-> SUCCESS" in text
    assert lines[-1] == "          (2 more calls not recorded)" and not any(x.startswith("CPU 1 ") for x in lines)
