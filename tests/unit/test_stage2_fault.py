"""Stage 2 fault autopsy from ESR_EL2/FAR_EL2/HPFAR_EL2: worked examples and properties over every ISS."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gdb_rkvm.arch import stage2_fault as sf
from gdb_rkvm.arch.fields import bits
from gdb_rkvm.arch.stage2_fault import VmmAction

RAM = [(0x4000_0000, 0x1000_0000)]   # guest RAM at IPA 1 GiB, 256 MiB (as on QEMU virt)


def esr(ec, iss, il=1):
    return (ec << 26) | (il << 25) | iss


def hpfar(ipa):
    return (ipa >> 12) << 4          # HPFAR_EL2.FIPA, bits [43:4], holds IPA[51:12]


def dabt_iss(isv=0, sas=0, sse=0, srt=0, sf=0, ar=0, fnv=0, s1ptw=0, wnr=0, dfsc=0b000111, cm=0):
    return ((isv << 24) | (sas << 22) | (sse << 21) | (srt << 16) | (sf << 15) | (ar << 14) | (fnv << 10)
            | (cm << 8) | (s1ptw << 7) | (wnr << 6) | dfsc)


def test_str_w1_to_an_unmapped_device_ipa():
    # STR w1, [x0] with x0 = a guest VA mapped to IPA 0x0900_0004 (a PL011 on virt), which stage 2 leaves unmapped
    value = esr(0x24, dabt_iss(isv=1, sas=2, srt=1, wnr=1, dfsc=0b000111))
    f = sf.autopsy(value, 0xFFFF_0000_0800_0004, hpfar(0x0900_0004), RAM)
    assert f.is_stage2_abort and not f.instruction and f.write is True
    assert (f.access.size, f.access.register, f.access.sign_extend, f.access.acquire_release) == (4, "w1", False, False)
    assert (f.kind, f.level, f.fsc) == ("translation", 3, 0b000111)
    assert f.va == 0xFFFF_0000_0800_0004 and f.ipa == 0x0900_0004 and f.ipa_offset_known
    assert f.in_guest_ram is False and f.action is VmmAction.EMULATE_MMIO
    assert "w1" in f.advice and "ELR_EL2 += 4" in f.advice
    assert f.what_the_guest_did().endswith("4-byte write of w1")
    assert f.fault_text() == "stage 2 translation fault at level 3 (FSC 0x07: Translation fault, level 3)"


def test_ldrsw_x3_read_is_sign_extended_into_x3():
    value = esr(0x24, dabt_iss(isv=1, sas=2, sse=1, srt=3, sf=1, dfsc=0b000110))
    f = sf.autopsy(value, 0x1000, hpfar(0x0A00_0000), RAM)
    assert f.write is False and f.access.register == "x3" and f.level == 2
    assert "into x3 (sign-extended)" in f.advice


def test_guest_ram_missing_from_stage_2_is_mapped_and_retried():
    f = sf.autopsy(esr(0x24, dabt_iss(isv=1, sas=3, srt=2, sf=1, dfsc=0b000111)), 0x8123, hpfar(0x4123_4123), RAM)
    assert f.in_guest_ram and f.action is VmmAction.MAP_PAGE and "ELR_EL2 unchanged" in f.advice
    assert f.ipa == 0x4123_4123


def test_s1ptw_fault_maps_the_table_page():
    f = sf.autopsy(esr(0x24, dabt_iss(s1ptw=1, dfsc=0b000101)), 0xFFFF_8000_1234_5678, hpfar(0x4700_0000), RAM)
    assert f.s1ptw and f.level == 1 and f.action is VmmAction.MAP_TABLE_PAGE
    assert f.ipa == 0x4700_0000 and not f.ipa_offset_known   # FAR's offset is the VA's, not the table entry's
    assert "table fetch" in f.what_the_guest_did()


def test_fnv_leaves_the_va_unknown():
    f = sf.autopsy(esr(0x24, dabt_iss(fnv=1)), 0xDEAD, hpfar(0x0900_0000), RAM)
    assert f.va is None and f.ipa == 0x0900_0000 and "VA unknown" in f.what_the_guest_did()


def test_instruction_fetch_outside_ram_injects_an_abort():
    f = sf.autopsy(esr(0x20, 0b000111), 0x0800_0000, hpfar(0x0800_0000), RAM)
    assert f.instruction and f.write is None and f.access is None and f.action is VmmAction.INJECT_ABORT


def test_permission_and_access_flag_faults():
    f = sf.autopsy(esr(0x24, dabt_iss(wnr=1, dfsc=0b001111)), 0x1000, 0, RAM)
    assert f.kind == "permission" and not f.ipa_reliable and f.action is VmmAction.FIX_PERMISSION
    f = sf.autopsy(esr(0x24, dabt_iss(dfsc=0b001011)), 0x1000, hpfar(0x4000_0000), RAM)
    assert f.action is VmmAction.SET_ACCESS_FLAG


def test_mmio_without_syndrome_and_without_ram_ranges():
    f = sf.autopsy(esr(0x24, dabt_iss(isv=0, wnr=1)), 0x1000, hpfar(0x0900_0000))
    assert f.in_guest_ram is None and f.action is VmmAction.DECODE_MMIO and "no guest RAM ranges" in f.advice


def test_not_an_abort():
    f = sf.autopsy(esr(0x16, 0), 0, 0, RAM)
    assert not f.is_stage2_abort and f.action is VmmAction.NOT_A_STAGE2_ABORT
    assert sf.autopsy(esr(0x25, dabt_iss()), 0, 0).action is VmmAction.NOT_A_STAGE2_ABORT  # EL2's own fault


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([0x20, 0x24]), st.integers(0, (1 << 25) - 1), st.integers(0, (1 << 64) - 1),
       st.integers(0, (1 << 64) - 1), st.booleans())
def test_property_every_abort_iss_round_trips(ec, iss, far, hpf, with_ram):
    f = sf.autopsy(esr(ec, iss), far, hpf, RAM if with_ram else None)
    assert f.fsc == iss & 0x3F and f.s1ptw == bool(bits(iss, 7, 7))
    assert f.va == (None if bits(iss, 10, 10) else far)
    assert f.ipa_page == bits(hpf, 43, 4) << 12
    if ec == 0x24:
        assert f.write == bool(bits(iss, 6, 6))
        if bits(iss, 24, 24):
            a = f.access
            assert a.size == 1 << bits(iss, 23, 22) and a.srt == bits(iss, 20, 16)
            assert a.register[0] == ("x" if bits(iss, 15, 15) else "w")
            assert a.sign_extend == bool(bits(iss, 21, 21)) and a.acquire_release == bool(bits(iss, 14, 14))
        else:
            assert f.access is None
    else:
        assert f.access is None and f.write is None
    assert f.advice and f.what_the_guest_did() and f.fault_text()
    assert isinstance(f.action, VmmAction)
    f.to_dict()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_property_any_register_values_never_raise(e, far, hpf):
    f = sf.autopsy(e, far, hpf, RAM)
    assert f.is_stage2_abort == (bits(e, 31, 26) in (0x20, 0x24))
