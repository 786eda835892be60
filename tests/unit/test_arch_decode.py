"""Register decoders against encodings worked out by hand from the Arm ARM, and over all inputs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.arch import decode, esr, mair, pstate, regfields, sysregs, vectors
from gdb_rkvm.commands.format import fields_block
from gdb_rkvm.arch.fields import bits


def esr_value(ec, iss, il=1, iss2=0):
    return (iss2 << 32) | (ec << 26) | (il << 25) | iss


def sys64_iss(op0, op1, crn, crm, op2, rt, read):
    return (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | int(read)


# (ESR value, EC name, words the summary must contain)
CASES = [
    (0x5A000042, "HVC64", "HVC #0x42"),                    # hvc #0x42 from EL1, as the lab shows
    (esr_value(0x16, 0x4B), "HVC64", "HVC #0x4b"),
    (esr_value(0x15, 0), "SVC64", "SVC #0x0"),
    (esr_value(0x17, 0), "SMC64", "SMC #0x0"),
    (esr_value(0x3C, 0x52), "BRK64", "BRK #0x52"),         # rkvm_stub_fault's brk
    (esr_value(0x25, (1 << 6) | 0b000101), "DABT_CUR", "Translation fault, level 1 on data write"),
    (esr_value(0x24, 0b000110), "DABT_LOW", "Translation fault, level 2 on data read"),
    (esr_value(0x21, 0b001111), "IABT_CUR", "Permission fault, level 3 on instruction"),
    (esr_value(0x20, 0b010000), "IABT_LOW", "Synchronous External abort, not on translation table walk"),
    (esr_value(0x25, (1 << 7) | 0b000111), "DABT_CUR", "during a stage 1 table walk"),
    (esr_value(0x25, 0b100001), "DABT_CUR", "Alignment fault"),
    (esr_value(0x18, sys64_iss(3, 4, 12, 0, 0, 5, True)), "SYS64", "trapped MRS x5, VBAR_EL2"),
    (esr_value(0x18, sys64_iss(3, 0, 1, 0, 0, 31, False)), "SYS64", "trapped MSR SCTLR_EL1, xzr"),
    (esr_value(0x18, sys64_iss(3, 7, 15, 2, 0, 1, True)), "SYS64", "S3_7_C15_C2_0"),
    (esr_value(0x18, sys64_iss(1, 0, 7, 5, 1, 0, False)), "SYS64", "trapped system instruction SYS #0, C7, C5, #1"),
    (esr_value(0x01, 0), "WFx", "trapped WFI"),
    (esr_value(0x01, 1), "WFx", "trapped WFE"),
    (esr_value(0x2F, 0), "SERROR", "SError (uncategorized)"),
    (esr_value(0x2F, 1 << 24), "SERROR", "IMPLEMENTATION DEFINED"),
    (esr_value(0x0E, 0), "ILL", "Illegal Execution state"),
    (esr_value(0x07, 0), "FP_ASIMD", "FP/SIMD/SVE/SME access trapped"),
    (esr_value(0x19, 0), "SVE", "SVE"),
    (esr_value(0x22, 0), "PC_ALIGN", "PC alignment fault"),
    (esr_value(0x26, 0), "SP_ALIGN", "SP alignment fault"),
    (esr_value(0x00, 0, il=0), "UNKNOWN", "Unknown reason"),
    (esr_value(0x3F, 0), "EC_0x3f", "unknown exception class 0x3f"),
    (esr_value(0x1A, 0b10), "ERET", "ERETAA"),
]


@pytest.mark.parametrize("value,name,words", CASES)
def test_esr_table(value, name, words):
    d = esr.decode(value)
    assert esr.ec_name(bits(value, 31, 26)) == name
    assert name in d.summary
    assert words in d.summary


def test_hvc_imm16_field():
    d = esr.decode(0x5A000042)
    assert d.field("EC").value == 0x16 and d.field("IL").value == 1 and d.field("imm16").value == 0x42


def test_data_abort_instruction_syndrome():
    # ISV=1, SAS=word, SRT=x3, SF=1, WnR=1, DFSC=permission fault level 3: a `str w3`-style store? SF says x.
    iss = (1 << 24) | (2 << 22) | (3 << 16) | (1 << 15) | (1 << 6) | 0b001111
    d = esr.decode(esr_value(0x24, iss))
    assert d.field("SAS").meaning == "word" and d.field("SRT").meaning == "register x3"
    assert d.field("SF").meaning == "64-bit register" and d.field("WnR").meaning == "write"
    assert esr.fault_level(d.field("DFSC").value) == 3


def test_fault_levels():
    assert esr.fault_level(0b000100) == 0 and esr.fault_level(0b101011) == -1
    assert esr.fault_level(0b100001) is None


def test_every_defined_ec_has_a_name_and_decodes():
    for ec, (name, desc) in esr.EXCEPTION_CLASSES.items():
        d = esr.decode(esr_value(ec, 0))
        assert d.field("EC").meaning.startswith(name) and desc


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_every_32bit_esr_decodes(value):
    d = esr.decode(value)
    assert d.field("EC").value == value >> 26
    assert d.summary.startswith(f"EC {value >> 26:#04x}")
    assert d.to_dict()["hex"] == hex(value)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_every_64bit_esr_decodes(value):
    assert esr.decode(value).value == value


@pytest.mark.parametrize("value,mode,el", [(0x3C5, "EL1h", 1), (0x3C9, "EL2h", 2), (0x3C4, "EL1t", 1),
                                           (0x0, "EL0t", 0), (0x3CD, "EL3h", 3)])
def test_spsr_modes(value, mode, el):
    assert pstate.mode_name(value) == mode
    assert pstate.exception_level(value) == el
    assert pstate.decode(value).summary.startswith(mode)


def test_spsr_masks_and_aarch32():
    assert pstate.decode(0x3C5).summary == "EL1h, DAIF masked: DAIF"
    assert pstate.decode(0x5).summary == "EL1h, DAIF masked: none"
    assert pstate.mode_name(0x13 | 0x1C0) == "svc (AArch32)"
    assert pstate.exception_level(0x13) is None
    assert pstate.mode_name(0b0110).startswith("invalid mode")


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_every_64bit_spsr_decodes(value):
    d = pstate.decode(value, "SPSR_EL2")
    assert d.field("M").value == value & 0x1F
    el = pstate.exception_level(value)
    assert el is None or el == (value >> 2) & 3


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_every_64bit_hcr_decodes(value):
    d = decode.decode("HCR_EL2", value)
    flags = {f.name for f in d.fields if f.meaning == "set"}
    assert ("RW" in flags) == bool(value >> 31 & 1)
    # the fields HCR_EL2 is known for are always there, 0 included, with what the value means
    assert d.field("VM").value == value & 1 and d.field("VM").meaning
    assert d.field("E2H").value == value >> 34 & 1 and d.field("E2H").meaning
    assert f"VM={d.field('VM').meaning}" in d.summary


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_sctlr_el2_always_shows_m_and_marks_what_differs_from_reset(value):
    d = decode.decode("SCTLR_EL2", value)
    m = d.field("M")
    assert m is not None and m.value == value & 1
    assert ("EL2 MMU off" in m.meaning) == (not value & 1)
    assert "M=EL2 MMU" in d.summary
    assert m.to_dict()["reset"] == 0
    full = decode.decode("SCTLR_EL2", value, all_fields=True)
    # --all: every field of the table, single-bit zeros included; the one-line summary is the same
    assert {f.name for f in full.fields} == {f.name for f in regfields.SCTLR_EL2}
    assert full.summary == d.summary
    assert {f.name for f in d.fields} <= {f.name for f in full.fields}


def test_sctlr_el2_of_the_lab():
    # 0x30c50830 (RES1 bits, EOS, EIS; M = C = I = 0): the bit that matters most is in the summary
    d = decode.decode("SCTLR_EL2", 0x30C50830)
    assert d.summary.startswith("EOS EIS, M=EL2 MMU off (EL2 addresses are physical), C=")
    block = fields_block([f.to_dict() for f in d.fields])
    assert "M[0] = 0x0  EL2 MMU off" in block and "reset value" not in block  # M, C, I are at their reset 0
    # with the I-cache on (I = 1, as a hypervisor sets it), the field is marked as changed since reset
    block = fields_block([f.to_dict() for f in decode.decode("SCTLR_EL2", 0x30C51830).fields])
    assert "I[12] = 0x1  EL2 instruction caches on  (reset value 0x0)" in block


@given(st.sampled_from(decode.decodable()), st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_every_decodable_register_takes_any_value(name, value):
    d = decode.decode(name, value)
    assert d.value == value and d.summary and d.explain


def test_hcr_of_the_lab_host():
    # HCR_EL2 as the 6.12 hyp-stub leaves it (HCR_HOST_NVHE_FLAGS: RW | API | APK | ... ): RW is what matters.
    d = decode.decode("HCR_EL2", (1 << 31) | (1 << 41) | (1 << 40))
    assert d.summary.split(",")[0].split() == ["RW", "APK", "API"]
    assert any("no stage 2" in line for line in d.explain)


def test_sctlr_el2_mmu_explained():
    assert any("physical addresses" in x for x in decode.decode("SCTLR_EL2", 0x30C50830).explain)
    assert any("virtual" in x for x in decode.decode("SCTLR_EL2", 0x30C50831).explain)


def test_tcr_el1_geometry_fields():
    d = decode.decode("TCR_EL1", (16 << 16) | (0b10 << 30) | 16 | (5 << 32))
    assert d.field("T0SZ").value == 16 and d.field("T1SZ").value == 16
    assert d.field("TG0").meaning == "4KB" and d.field("TG1").meaning == "4KB"
    assert d.field("IPS").meaning.startswith("48 bits")


def test_mair_attributes():
    assert mair.attr_name(0x00) == "Device-nGnRnE"
    assert mair.attr_name(0x04) == "Device-nGnRE"
    assert mair.attr_name(0x0C) == "Device-GRE"
    assert mair.attr_name(0x44) == "Normal Non-cacheable"
    assert mair.attr_name(0xFF) == "Normal Write-Back non-transient RW-alloc"
    assert mair.attr_name(0xF0).endswith("Tagged (MTE)")
    assert mair.attr_name(0xBB) == "Normal Write-Through non-transient RW-alloc"
    d = mair.decode(0x000000000044FF04)
    assert [f.meaning for f in d.fields[:3]] == ["Device-nGnRE", "Normal Write-Back non-transient RW-alloc",
                                                  "Normal Non-cacheable"]


@given(st.integers(min_value=0, max_value=255))
def test_every_mair_attribute_has_a_meaning(attr):
    assert mair.attr_name(attr)


def test_sysreg_catalogue_is_consistent():
    encodings = [r.encoding for r in sysregs.CATALOGUE.values()]
    assert len(encodings) == len(set(encodings)), "two names share an encoding"
    assert sysregs.lookup("vbar_el2").encoding == (3, 4, 12, 0, 0)
    assert sysregs.lookup("ESR_EL2").encoding == (3, 4, 5, 2, 0)
    assert sysregs.lookup("HCR_EL2").encoding == (3, 4, 1, 1, 0)
    assert sysregs.lookup("SP_EL2").encoding == (3, 6, 4, 1, 0)
    assert sysregs.by_encoding(3, 0, 1, 0, 0).name == "SCTLR_EL1"
    assert sysregs.closest("VBAR_EL")[:3] and "VBAR_EL2" in sysregs.closest("VBARR_EL2")


def test_vector_slots():
    s = vectors.slots()
    assert len(s) == 16 and s[8] == (0x400, "Lower EL using AArch64, Synchronous")
    assert vectors.slot_name(0x204) == "Current EL with SPx, Synchronous"
    assert vectors.slot_name(0x800) == "not in the vector table"
    assert vectors.is_aligned(0x40A60000) and not vectors.is_aligned(0x40A60400)


def test_vbar_el2_not_set_yet_is_no_disagreement():
    from gdb_rkvm.model.vbar_el2 import VectorLandmarks, warnings
    marks = VectorLandmarks(hyp_stub_pa=0x4046E000, ram=[(0x40000000, 0xC0000000)])
    assert warnings({0: 0x4046E000, 1: 0}, marks) == []            # CPU 1 still in reset
    assert warnings({0: 0x4046E000, 1: 0x40A60000, 2: 0}, marks)[0].startswith(
        "CPUs disagree on VBAR_EL2 (CPU 0: 0x4046e000; CPU 1: 0x40a60000)")


def test_never_taken_is_exactly_an_all_zero_syndrome():
    assert esr.never_taken(0) and "no exception taken to EL2 yet" in esr.never_taken_summary(2)
    assert not esr.never_taken(esr_value(0x00, 0))        # EC 0 with IL 1: a real UNKNOWN exception
    assert not esr.never_taken(0x5A000000)


def test_branch_targets_and_registers():
    from gdb_rkvm.arch import disasm
    b = disasm.disassemble((0x14000000 | (0x700 >> 2)).to_bytes(4, "little"), 0x40A60400)[0]   # b +0x700
    assert disasm.branch_target(b) == 0x40A60B00 and disasm.is_branch(b)
    tbnz = disasm.disassemble(bytes.fromhex("a1000037"), 0x1000)[0]   # tbnz w1, #0, +0x14
    assert tbnz.mnemonic == "tbnz" and disasm.branch_target(tbnz) == 0x1014
    ret = disasm.disassemble(bytes.fromhex("c0035fd6"), 0x1000)[0]
    assert disasm.branch_register(ret) == "x30" and disasm.branch_target(ret) is None
    br = disasm.disassemble(bytes.fromhex("60001fd6"), 0x1000)[0]    # br x3
    assert disasm.branch_register(br) == "x3"
    mov = disasm.disassemble(bytes.fromhex("e0031faa"), 0x1000)[0]   # mov x0, xzr
    assert not disasm.is_branch(mov)


def test_image_header_and_where_to_look():
    from gdb_rkvm.model import kernel_layout as kl
    header = bytearray(0x40)
    header[0x10:0x18] = (0x5C0000).to_bytes(8, "little")
    header[0x38:0x3C] = b"ARM\x64"
    h = kl.parse_image_header(bytes(header))
    assert h is not None and h.image_size == 0x5C0000 and h.text_offset == 0
    assert kl.parse_image_header(bytes(0x40)) is None and kl.parse_image_header(b"ARM\x64") is None
    cands = kl.image_base_candidates(0x40000000)
    assert 0x40200000 in cands and all(c % 0x80000 == 0 for c in cands)


@given(st.integers(0, (1 << 64) - 1))
def test_currentel_value_holds_only_the_el(cpsr):
    value = pstate.currentel_value(cpsr)
    assert value & ~0xC == 0 and value >> 2 == pstate.current_el_from_cpsr(cpsr)


@given(st.integers(0, (1 << 64) - 1))
def test_upper_half_is_va_bit_55(va):
    from gdb_rkvm.arch.pagetable import is_upper_half
    assert is_upper_half(va) == bool(va >> 55 & 1)
    assert is_upper_half(0xFFFF800080000000) and not is_upper_half(0x0000AAAAC0DE0000)


@given(st.integers(-0x1000, 0x2000))
def test_short_slot_name_agrees_with_slot_name(offset):
    short = vectors.short_slot_name(offset)
    if short is None:
        assert vectors.slot_name(offset) == "not in the vector table"
    else:
        group = {"cur-sp0": "Current EL with SP0", "cur-spx": "Current EL with SPx",
                 "lower64": "Lower EL using AArch64", "lower32": "Lower EL using AArch32"}[short.split()[0]]
        assert vectors.slot_name(offset).startswith(group)


@given(st.integers(0, (1 << 64) - 1))
def test_vttbr_baddr_drops_vmid_and_cnp(vttbr):
    """VTTBR_EL2.BADDR is bits [47:1]: the VMID (63:48) and CnP (bit 0) never reach the table address."""
    from gdb_rkvm.arch.stage2 import vttbr_baddr
    base = vttbr_baddr(vttbr)
    assert base == vttbr & 0x0000_FFFF_FFFF_FFFE and base % 2 == 0 and base >> 48 == 0
