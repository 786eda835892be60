"""The guest-world part of rkvm_abi.h as gdb_rkvm reads it: vCPU, host save area, EL1 context, exits."""

import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.model import stub_abi
from gdb_rkvm.paths import REPO

C = stub_abi.constants()
u64s = st.integers(min_value=0, max_value=(1 << 64) - 1)


def test_new_call_and_events_parse():
    assert stub_abi.hvc_calls()["VCPU_RUN"] == 0x524B0007 and C["RKVM_HVC_NR"] == 8
    assert stub_abi.EVENTS["guest-enter"] == 6 and stub_abi.EVENTS["guest-exit"] == 7
    assert stub_abi.exit_reasons() == {1: "sync", 2: "irq", 3: "fiq", 4: "serror"}
    assert C["RKVM_HOST_SIZE"] == 0x200 and C["RKVM_STUB_SIZE"] == 0x3000


def test_layouts_do_not_overlap_and_fit():
    el1 = stub_abi.el1_fields()
    assert el1["SCTLR_EL1"] == 0 and el1["TPIDR_EL0"] == C["RKVM_EL1_TPIDR_EL0"] and "TPIDR_EL1" in el1
    assert sorted(el1.values()) == list(range(0, C["RKVM_EL1_SIZE"], 8))
    vcpu = sorted(v for k, v in C.items()
                  if k.startswith("RKVM_VCPU_") and k not in ("RKVM_VCPU_SIZE", "RKVM_VCPU_EL1"))
    assert vcpu[0] == 0 and C["RKVM_VCPU_SP_EL0"] == 31 * 8              # right after x0-x30
    assert max(vcpu) + 8 <= C["RKVM_VCPU_EL1"] <= C["RKVM_VCPU_SIZE"] - C["RKVM_EL1_SIZE"]
    host = sorted(v for k, v in C.items() if k.startswith("RKVM_HOST_") and k not in
                  ("RKVM_HOST_SIZE", "RKVM_HOST_SHIFT", "RKVM_HOST_EL1", "RKVM_HOST_X18"))
    assert max(host) < C["RKVM_HOST_X18"] and C["RKVM_HOST_X18"] + 13 * 8 <= C["RKVM_HOST_EL1"]
    assert C["RKVM_HOST_EL1"] + C["RKVM_EL1_SIZE"] <= C["RKVM_HOST_SIZE"]
    assert C["RKVM_OFF_HOST"] + C["RKVM_MAX_CPUS"] * C["RKVM_HOST_SIZE"] <= C["RKVM_STUB_SIZE"] == C["RKVM_OFF_STACKS"]
    assert C["RKVM_OFF_STACKS"] + (C["RKVM_MAX_CPUS"] + 1) * C["RKVM_STACK_SIZE"] <= 0x1000 << C["RKVM_STUB_ORDER"]


def test_stub_code_stops_before_the_host_area():
    subprocess.run(["make", "-s", "-C", str(REPO / "stub")], check=True, capture_output=True)
    with open(REPO / "stub" / "build" / "el2_stub.elf", "rb") as f:
        syms = {s.name: s["st_value"] for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}
    assert syms["rkvm_stub_host"] == C["RKVM_OFF_HOST"]
    code = [v for k, v in syms.items() if k.startswith("rkvm_") and k != "rkvm_stub_host"]
    assert C["RKVM_OFF_CODE"] < max(code) < C["RKVM_OFF_HOST"]


@given(st.lists(u64s, min_size=C["RKVM_VCPU_SIZE"] // 8, max_size=C["RKVM_VCPU_SIZE"] // 8))
def test_vcpu_fields_read_back_from_their_offsets(words):
    data = struct.pack(f"<{len(words)}Q", *words)
    v = stub_abi.vcpu_state(data)
    w = {off: words[off // 8] for off in range(0, len(data), 8)}
    assert v.x == tuple(words[:31]) and v.pc == w[C["RKVM_VCPU_PC"]] and v.vtcr_el2 == w[C["RKVM_VCPU_VTCR_EL2"]]
    assert v.exit.esr == w[C["RKVM_VCPU_EXIT_ESR"]] and v.exit.count == w[C["RKVM_VCPU_EXIT_COUNT"]]
    assert v.el1["VBAR_EL1"] == w[C["RKVM_VCPU_EL1"] + C["RKVM_EL1_VBAR"]]
    assert v.vmid == (w[C["RKVM_VCPU_VTTBR_EL2"]] >> 48) & 0xFF
    assert v.exit.reason in stub_abi.exit_reasons().values() or v.exit.reason.isdigit()
    assert stub_abi.vcpu_state(data[:-1]) is None     # a short read: nothing, never a partial record


def test_exit_ipa_from_hpfar_and_far():
    # a byte store to the lab's UART: FAR_EL2 = the guest VA, HPFAR_EL2.FIPA = IPA[47:12] at [43:4]
    e = stub_abi.ExitRecord("sync", 0x93000046, 0x49000000, 0x90000, 1)
    assert e.ipa == C["RKVM_GUEST_UART_IPA"]
    assert stub_abi.ExitRecord("sync", 0, 0x8000FFF0, 0x8000F0, 1).ipa == 0x8000FFF0


@given(st.integers(min_value=-2, max_value=C["RKVM_MAX_CPUS"] + 2), st.binary(max_size=64), u64s)
def test_host_save_area_by_cpu(cpu, junk, value):
    stub = bytearray(C["RKVM_STUB_SIZE"])
    if 0 <= cpu < C["RKVM_MAX_CPUS"]:
        base = C["RKVM_OFF_HOST"] + cpu * C["RKVM_HOST_SIZE"]
        struct.pack_into("<QQ", stub, base, 1, value)
        struct.pack_into("<Q", stub, base + C["RKVM_HOST_EL1"] + C["RKVM_EL1_TTBR1"], value)
        h = stub_abi.host_save(bytes(stub), cpu)
        assert h.in_guest and h.vcpu_pa == value and h.el1["TTBR1_EL1"] == value and len(h.x18_x30) == 13
        assert stub_abi.host_save(bytes(stub[:base + 8]), cpu) is None
    else:
        assert stub_abi.host_save(bytes(stub) + junk, cpu) is None


@pytest.mark.parametrize("name", ["RKVM_GUEST_RAM_IPA", "RKVM_GUEST_UART_IPA", "RKVM_GUEST_UART_VA"])
def test_guest_layout_is_page_aligned(name):
    assert C[name] % 0x1000 == 0 and C["RKVM_GUEST_UART_VA"] != C["RKVM_GUEST_UART_IPA"]


def test_exit_ipa_ignores_hpfar_ns_and_res0_bits():
    # HPFAR_EL2.NS (bit 63) and RES0 bits [62:44] are no part of the IPA (HPFAR_EL2.FIPA is [43:4])
    hpfar = (1 << 63) | (1 << 50) | (0x8000F << 4)
    assert stub_abi.ExitRecord("sync", 0, 0x123, hpfar, 1).ipa == 0x8000F123
