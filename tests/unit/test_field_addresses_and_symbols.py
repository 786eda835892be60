"""Address fields decoded as the address they encode (VTTBR_EL2/TTBRn.BADDR, HPFAR_EL2.FIPA), and
which symbols are worth printing beside an address (none for 0, none for ELF markers)."""

from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.arch.decode import decode
from gdb_rkvm.model.symbol_names import worth_showing


def test_vttbr_baddr_shows_the_tables_pa_not_the_field():
    d = decode("VTTBR_EL2", 0x10000408E8000)
    assert d.field("BADDR").value == 0x20474000 and d.field("BADDR").meaning == "PA 0x408e8000"
    assert d.summary == "BADDR=PA 0x408e8000, VMID=0x1"
    assert "(PA 0x408e8000)" in "\n".join(d.explain)


def test_hpfar_fipa_shows_the_ipa_page():
    d = decode("HPFAR_EL2", 0x90000)
    assert d.field("FIPA").meaning == "IPA 0x9000000" and d.summary == "FIPA=IPA 0x9000000"


@given(st.integers(0, (1 << 64) - 1), st.sampled_from(["VTTBR_EL2", "TTBR0_EL1", "TTBR1_EL1"]))
def test_baddr_is_the_value_bits_47_to_1_in_place(value, reg):
    f = decode(reg, value).field("BADDR")
    assert f.meaning == f"PA {value & ((1 << 48) - 2):#x}"


def test_no_symbol_for_zero_or_markers():
    assert not worth_showing(0, "_note_19") and not worth_showing(0, "vectors")
    for marker in ("_note_19", "_note_0", "$x", "$d", "$x.12", ".text", ".L123"):
        assert not worth_showing(0xFFFF800080010800, marker), marker
    for real in ("vectors", "rkvm_vec_cur_sp0_sync", "vcpu_run_hvc", "_note", "note_19", "__start_notes"):
        assert worth_showing(0xFFFF800080010800, real), real


@given(st.integers(1, (1 << 64) - 1), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True))
def test_any_c_identifier_but_a_note_marker_is_shown(addr, name):
    import re
    assert worth_showing(addr, name) == (re.fullmatch(r"_note_\d+", name) is None)
