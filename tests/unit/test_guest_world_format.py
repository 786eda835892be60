"""The guest world without GDB or QEMU: rkvm_guest_debug's bytes, `rkvm cpus`/`el`/`vcpu` format() on
records, $rkvm_world's decision, and a triage rule when the last exit was an IRQ."""

import dataclasses
import struct

from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.host.triage import rules
from gdb_rkvm.model import stub_abi
from gdb_rkvm.model.world import GUEST_DEBUG_SIZE, guest_module, vcpu_view
from tests.unit.test_command_format import cmd, fmt, picture, summary  # noqa: F401  cmd is a fixture
from tests.unit.test_triage_rules import (GUEST_EL1, HOLE_ESR, HOLE_FAR, HOLE_HPFAR, HOST_EL1, VCPU_PA, codes, guest,
                                          with_guest, world)

MAGIC = stub_abi.value("RKVM_STUB_MAGIC")


def debug_bytes(magic=MAGIC, level=1, sync=(HOLE_ESR, HOLE_FAR, HOLE_HPFAR, 0x800000E8, 199)):
    head = [magic, 0, VCPU_PA, 0x40E5C000, 0x80000000, 0x10000, (1 << 48) | 0x41E40000, 0x80043560, 0x80043560,
            0x80080039, 0xFFFF000001E40000, level & ((1 << 64) - 1), 32, 3, 200]
    return struct.pack("<27Q", *head, 0, 146, 0, 0, 54, 0, 7, *sync)


def test_guest_module_from_its_bytes():
    m = guest_module(debug_bytes(), MAGIC)
    assert len(debug_bytes()) == GUEST_DEBUG_SIZE
    assert m.state == "runnable" and m.vcpu_pa == VCPU_PA and m.s2_start_level == 1 and m.aborts == 146
    assert m.exits == {"hvc": 0, "dabt": 146, "iabt": 0, "wfx": 0, "irq": 54, "other": 0} and m.uart_chars == 7
    assert m.sync_esr == HOLE_ESR and m.sync_count == 199
    assert guest_module(debug_bytes(level=-1), MAGIC).s2_start_level == -1
    assert guest_module(debug_bytes(magic=0), MAGIC) is None            # before rkvm.ko filled it
    assert guest_module(debug_bytes()[:-8], MAGIC) is None               # a short read


@given(st.binary(min_size=0, max_size=GUEST_DEBUG_SIZE + 16))
def test_guest_module_never_raises_on_any_bytes(data):
    m = guest_module(data, MAGIC)
    assert m is None or m.state in ("runnable", "done", "stopped") or m.state.isdigit()


def test_loop_found_when_the_last_exit_was_an_irq():
    g = guest()
    irq = dataclasses.replace(g.exit, reason="irq", kind="irq", esr=0x5A00004B, text="irq")
    m = dataclasses.replace(g.module, sync_esr=HOLE_ESR, sync_far=HOLE_FAR, sync_hpfar=HOLE_HPFAR, sync_count=199)
    f = rules.diagnose(with_guest(dataclasses.replace(g, exit=irq, module=m), {0: world(200)}), {})
    assert codes(f) == ["stage2-fault-loop"] and "IPA 0x8000fff0" in f[0].summary
    assert f[0].evidence[0].startswith("last synchronous exit (#199): dabt") and "was irq" in f[0].evidence[0]
    # without rkvm.ko's record an IRQ exit says nothing about an abort: no finding rather than a guess
    assert rules.diagnose(with_guest(dataclasses.replace(g, exit=irq, module=None), {0: world(200)}), {}) == []


def test_cpus_shows_the_world_column(cmd):  # noqa: F811
    r = {"cpus": [summary(0), summary(1)], "worlds": {"0": world(1), "1": world(1, GUEST_EL1, in_guest=True)},
         "warnings": [], "hyp_stub_pa": None, "rkvm_stub_pas": []}
    text = fmt(cmd("cpus"), "RkvmCpus", r, explain=True)
    assert text.splitlines()[0].startswith("CPU  world         EL    PC")
    assert text.splitlines()[2].startswith("1    guest VMID 1  EL1h")
    assert "CPU 1 runs the guest: HCR_EL2.VM = 1" in text


def test_el_in_the_guest_shows_the_hosts_saved_el1_beside(cmd):  # noqa: F811
    w = world(3, GUEST_EL1, in_guest=True)
    text = fmt(cmd("el"), "RkvmEl", dataclasses.replace(picture(), world=w), explain=True)
    assert text.splitlines()[0].endswith("- in the guest (VMID 1, VTTBR_EL2 0x0)")
    assert "EL1 register  guest (live)  host (saved by the stub)" in text
    assert f"VBAR_EL1      {GUEST_EL1['VBAR_EL1']:#x}    {HOST_EL1['VBAR_EL1']:#x}" in text
    host = fmt(cmd("el"), "RkvmEl", dataclasses.replace(picture(), world=world(3)))
    assert "host; the last guest run on this CPU was vCPU at PA 0x40d8e000 (3 run(s))" in host
    bad = fmt(cmd("el"), "RkvmEl", dataclasses.replace(picture(), world=world(3, GUEST_EL1)))
    assert "warning: the host's live EL1 registers differ from the stub's host save area" in bad


def test_vcpu_format_decodes_the_exit(cmd):  # noqa: F811
    data = bytearray(stub_abi.value("RKVM_VCPU_SIZE"))
    c = stub_abi.constants()
    for name, value in (("PC", 0x800000E8), ("PSTATE", 0x3C5), ("VTTBR_EL2", (1 << 48) | 0x41E40000),
                        ("VTCR_EL2", 0x80043560), ("EXIT_REASON", 1), ("EXIT_ESR", HOLE_ESR),
                        ("EXIT_FAR", HOLE_FAR), ("EXIT_HPFAR", HOLE_HPFAR), ("EXIT_COUNT", 200)):
        struct.pack_into("<Q", data, c[f"RKVM_VCPU_{name}"], value)
    v = vcpu_view(VCPU_PA, stub_abi.vcpu_state(bytes(data)), [], [(0x80000000, 0x10000)])
    assert v.exit.kind == "dabt" and v.fault["ipa"] == 0x8000FFF0 and v.fault["in_guest_ram"] is True
    text = fmt(cmd("vcpu"), "RkvmVcpu", v, explain=True)
    assert text.splitlines()[0] == "vCPU at PA 0x40d8e000 (saved at its last exit)"
    assert "PC 0x800000e8  PSTATE 0x3c5 EL1h" in text and "VMID 1, stage-2 tables at PA 0x41e40000" in text
    assert "32-bit IPA, 4K granule, start level 1" in text and "last exit (#200): dabt" in text
    assert "stage 2 translation fault at level 3" in text and ", guest RAM" in text and "VMM: map-page" in text


def test_world_function_decides_from_hcr_vm(monkeypatch):
    from tests.hostile import fakegdb
    fakegdb.install(monkeypatch, fakegdb.Memory())
    from gdb_rkvm.commands.functions import world_name
    assert world_name(0x80080039) == "guest" and world_name(0x80000000) == "host"


def test_vcpu_that_never_ran_says_so(cmd):  # noqa: F811
    """Before the first `run N` the vCPU is rkvm.ko's preparation: no exit record to decode."""
    data = bytearray(stub_abi.value("RKVM_VCPU_SIZE"))
    struct.pack_into("<Q", data, stub_abi.value("RKVM_VCPU_PC"), 0x80000000)
    v = vcpu_view(VCPU_PA, stub_abi.vcpu_state(bytes(data)), [], [(0x80000000, 0x10000)])
    text = fmt(cmd("vcpu"), "RkvmVcpu", v)
    assert text.splitlines()[0] == "vCPU at PA 0x40d8e000 (as rkvm.ko prepared it: it has not run yet)"
    assert "no exit yet" in text and "last exit" not in text and "UNKNOWN" not in text
