"""The EL2 stub is position independent and laid out as rkvm_abi.h says."""

import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from gdb_rkvm.model import stub_abi
from gdb_rkvm.model.elf_check import absolute_relocations
from gdb_rkvm.paths import REPO

STUB = REPO / "stub" / "build"
SLOTS = ["cur_sp0_sync", "cur_sp0_irq", "cur_sp0_fiq", "cur_sp0_serror",
         "cur_spx_sync", "cur_spx_irq", "cur_spx_fiq", "cur_spx_serror",
         "lower64_sync", "lower64_irq", "lower64_fiq", "lower64_serror",
         "lower32_sync", "lower32_irq", "lower32_fiq", "lower32_serror"]


@pytest.fixture(scope="module")
def stub_built():
    subprocess.run(["make", "-s", "-C", str(REPO / "stub")], check=True)
    return STUB


def _symbols(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}


def test_stub_object_has_no_absolute_relocations(stub_built):
    assert absolute_relocations(stub_built / "el2_stub.o") == []


def test_checker_catches_an_absolute_address(tmp_path):
    # The same check on code that stores a pointer (what a literal pool or .quad would do) must fail.
    src = tmp_path / "bad.S"
    src.write_text(".text\nfoo:\n\tldr x0, =foo\n\tb foo\n.data\n\t.quad foo\n")
    obj = tmp_path / "bad.o"
    subprocess.run(["aarch64-linux-gnu-gcc", "-c", "-o", obj, src], check=True)
    kinds = {k for _, _, k in absolute_relocations(obj)}
    assert "R_AARCH64_ABS64" in kinds


def test_vector_slots_are_where_the_architecture_puts_them(stub_built):
    syms = _symbols(stub_built / "el2_stub.elf")
    assert syms["rkvm_stub_vectors"] == 0
    for n, slot in enumerate(SLOTS):
        assert syms[f"rkvm_vec_{slot}"] == n * 0x80, slot


def test_layout_matches_the_abi_header(stub_built):
    syms = _symbols(stub_built / "el2_stub.elf")
    c = stub_abi.constants()
    assert syms["rkvm_stub_data"] == c["RKVM_OFF_DATA"]
    assert syms["rkvm_stub_el1_sync"] == c["RKVM_OFF_CODE"]
    assert max(syms.values()) < c["RKVM_STUB_SIZE"]
    assert "rkvm_stub_park" in syms
    blob = (stub_built / "el2_stub.bin").read_bytes()
    assert len(blob) == c["RKVM_STUB_SIZE"]
    off = c["RKVM_OFF_MAGIC"]
    assert int.from_bytes(blob[off:off + 8], "little") == c["RKVM_STUB_MAGIC"]
    assert blob[off:off + 8] == b"RKVMSTUB"
    # Fault records for every CPU fit between their offset and the code.
    assert c["RKVM_OFF_FAULT"] + c["RKVM_MAX_CPUS"] * c["RKVM_FAULT_SIZE"] <= c["RKVM_OFF_CODE"]
    # Per-CPU arrays do not overlap each other.
    arrays = sorted(c[k] for k in ("RKVM_OFF_HVC_COUNT", "RKVM_OFF_PING_COUNT", "RKVM_OFF_STACK_TOP"))
    assert all(b - a >= 8 * c["RKVM_MAX_CPUS"] for a, b in zip(arrays, arrays[1:], strict=False))


def test_abi_header_parses_the_kernel_calls():
    c = stub_abi.constants()
    assert (c["HVC_SET_VECTORS"], c["HVC_SOFT_RESTART"], c["HVC_RESET_VECTORS"], c["HVC_FINALISE_EL2"]) == (0, 1, 2, 3)
    assert c["HVC_STUB_ERR"] == 0xBADCA11
    assert stub_abi.hvc_calls()["PING"] == 0x524B0001
    assert len(stub_abi.sysreg_selectors()) == c["RKVM_SYSREG_NR"]


def test_debug_events_come_from_the_abi_header():
    from gdb_rkvm.model import stub_abi
    assert stub_abi.EVENTS == {"installed-cpu": 1, "installed-all": 2, "hvc-issued": 3, "removed": 4,
                               "hvc-returned": 5, "guest-enter": 6, "guest-exit": 7}
    ev = stub_abi.DebugEvent.from_registers(0xdead_0000_0000_0001, 0xffff_ffff_0000_0001, 0x40a60000, 0x40a60000)
    assert ev == stub_abi.DebugEvent("installed-cpu", 1, 0x40a60000, 0x40a60000)
    assert stub_abi.DebugEvent.from_registers(99, 0, 0, 0).event == "99"
