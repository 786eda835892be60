"""The copy at VBAR_EL2 against its ELF (el2lint.compare), and the triage rules built on it."""

import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elftools.elf.elffile import ELFFile

from gdb_rkvm.model import stub_abi
from gdb_rkvm.model.el2lint import compare
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import REPO
from gdb_rkvm.host.triage import rules
from tests.unit.test_triage_rules import STUB, cpu, records, snap

BUILD = REPO / "stub" / "build"
MODULE_VA = 0xFFFF800078541000
CALLS = stub_abi.value("RKVM_HVC_NR")   # rkvm_stub_jump_table holds one absolute word per rkvm call


def jt_symbol(name: str) -> int:
    with open(BUILD / "el2_stub_jt.elf", "rb") as f:
        return ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)[0]["st_value"]


def table_words() -> list[int]:
    start = jt_symbol("rkvm_stub_jump_table")
    return list(range(start, start + 8 * CALLS, 8))


@pytest.fixture(scope="module")
def jt():
    subprocess.run(["make", "-s", "-C", str(REPO / "stub")], check=True, capture_output=True)
    exp = compare.expected(BUILD / "el2_stub_jt.elf")
    image = bytearray(exp.size)
    for off, word in exp.code.items():
        image[off:off + 4] = word.to_bytes(4, "little")
    for off, (size, value, _, _) in exp.absolute.items():
        image[off:off + size] = value.to_bytes(size, "little")
    return exp, bytes(image)


def relocated(exp, image: bytes) -> bytes:
    """What rkvm.ko's copy holds: every absolute word filled with the module's VA (the loader's work)."""
    out = bytearray(image)
    for off, (size, value, _, _) in exp.absolute.items():
        out[off:off + size] = (MODULE_VA + value).to_bytes(size, "little")
    return bytes(out)


def test_expected_image_of_the_jump_table_stub(jt):
    exp, _ = jt
    assert exp.table == 0 and exp.size == stub_abi.value("RKVM_STUB_SIZE")
    assert sorted(exp.absolute) == table_words()
    assert {t for _, _, kind, t in exp.absolute.values()} >= {"rkvm_stub_version", "rkvm_stub_fault"}
    assert 0x800 not in exp.code   # the data area ($d) is not compared: the stub writes there


def test_identical_copy_still_names_its_absolute_words(jt):
    exp, image = jt
    chk = compare.compare(exp, image, 0x40A20000)
    assert chk.identical and "identical to the ELF" in chk.verdict and f"{CALLS} of them are absolute" in chk.verdict


def test_relocated_words_are_named(jt):
    exp, image = jt
    chk = compare.compare(exp, relocated(exp, image), 0x40A20000)
    assert not chk.identical and chk.causes == ["relocated"]
    assert [d.offset for d in chk.diffs] == table_words()
    d = chk.diffs[0]
    assert d.location == "rkvm_stub_jump_table" and d.target == "rkvm_stub_version"
    assert d.memory == MODULE_VA + jt_symbol("rkvm_stub_version")
    text = "\n".join(compare.format_check(chk))
    assert f"{CALLS} relocated by the module loader" in text and "relocated: kernel virtual addresses" in text


def test_stub_data_area_is_ignored(jt):
    exp, image = jt
    mem = bytearray(image)
    mem[0x840:0x900] = b"\xff" * 0xC0   # counters and fault records change at run time
    assert compare.compare(exp, bytes(mem), 0).identical


def test_short_copy(jt):
    exp, image = jt
    cut = max(exp.code) - 0x100   # the last few instructions missing
    chk = compare.compare(exp, image[:cut] + bytes(0x400), 0)
    assert chk.causes == ["short-copy"] and chk.diffs[0].offset >= cut
    assert "shorter than the code" in chk.verdict
    chk = compare.compare(exp, image[:cut], 0)   # memory readable only that far
    assert chk.causes == ["short-copy"]


def test_other_code_is_not_this_code(jt):
    exp, _ = jt
    other = (REPO / "stub" / "build" / "el2_stub.bin").read_bytes()
    chk = compare.compare(exp, other, 0)   # the default stub: same code but the dispatch and the table
    assert chk.causes == ["differs"] and not chk.not_this_code
    chk = compare.compare(exp, bytes(range(256)) * 16, 0)
    assert chk.not_this_code and chk.verdict.startswith("not this code")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_property_flipped_code_words_are_exactly_the_diffs(jt, data):
    exp, image = jt
    nonzero = sorted(o for o, w in exp.code.items() if w and o < 0xC00)
    flipped = data.draw(st.sets(st.sampled_from(nonzero), max_size=20))
    mem = bytearray(image)
    for o in flipped:
        mem[o] ^= 0x01
    chk = compare.compare(exp, bytes(mem), 0)
    assert {d.offset for d in chk.diffs} == flipped
    assert chk.identical == (not flipped)
    assert all(d.cause == "differs" for d in chk.diffs)


def test_expected_refuses_a_module_without_layout(tmp_path):
    with pytest.raises(RkvmError):
        compare.expected(tmp_path / "missing.elf")


# --- triage rules ---

def copy_check(exp, image):
    return compare.compare(exp, relocated(exp, image), STUB).to_dict()


def test_rule_code_relocated(jt):
    exp, image = jt
    s = snap([cpu(0), cpu(1)], stub_records=records())
    s["el2_copy"] = {f"{STUB:#x}": copy_check(exp, image)}
    f = [x for x in rules.diagnose(s, {}) if x.code == "el2-code-relocated"]
    assert len(f) == 1 and f[0].cpus == [0, 1] and f[0].severity == "error"
    assert any(f"+{table_words()[0]:#x} rkvm_stub_jump_table" in e and "rkvm_stub_version" in e for e in f[0].evidence)
    s["el2_copy"] = {f"{STUB:#x}": compare.compare(exp, image, STUB).to_dict()}
    assert "el2-code-relocated" not in [x.code for x in rules.diagnose(s, {})]
    s["el2_copy"] = {f"{STUB:#x}": None}
    assert rules.diagnose(s, {}) == []


def test_rule_fault_at_kernel_va_from_the_stub_record():
    va = MODULE_VA + 0xC54
    rec = records(stack_top=0x40A61400)
    for n in ("0", "1"):
        rec[n]["fault"] = {"count": 1, "esr": 0x86000000, "elr": va, "far": va, "spsr": 0x3C9, "vector": 0x200,
                           "x0": 0, "mpidr": int(n)}
    s = snap([cpu(0, el=2, pc=STUB + 0xD18, sym="rkvm_stub_park"), cpu(1, el=2, pc=STUB + 0xD18,
                                                                       sym="rkvm_stub_park")], stub_records=rec)
    s["kernel_va_symbols"] = {f"{va:#x}": "rkvm_stub_jt_blob+0xc54"}
    found = rules.diagnose(s, {})
    f = [x for x in found if x.code == "el2-fault-at-kernel-va"]
    assert len(f) == 1 and f[0].cpus == [0, 1]
    assert "fetching an instruction from kernel virtual address 0xffff800078541c54 <rkvm_stub_jt_blob+0xc54>" \
        in f[0].summary
    assert [x.code for x in found].index("el2-fault-at-kernel-va") < [x.code for x in found].index("el2-parked")


def test_rule_fault_at_kernel_va_from_live_registers_only_for_aborts():
    va = 0xFFFF800080012340
    c = cpu(0, el=2, pc=STUB + 0x200, esr=0x96000000)   # data abort at EL2 (EC 0x25)
    c["el"]["registers"]["FAR_EL2"]["value"] = va
    f = [x for x in rules.diagnose(snap([c]), {}) if x.code == "el2-fault-at-kernel-va"]
    assert len(f) == 1 and "accessing data at kernel virtual address" in f[0].summary
    c = cpu(0, el=2, pc=STUB + 0x200, esr=0x96000000)
    c["el"]["registers"]["FAR_EL2"]["value"] = 0x38000000   # a bad PA is another finding, not this one
    assert "el2-fault-at-kernel-va" not in [x.code for x in rules.diagnose(snap([c]), {})]
    c = cpu(0, el=1, esr=0x5A00004B)   # at EL1 after an HVC: ELR_EL2 is a kernel VA, and that is normal
    assert "el2-fault-at-kernel-va" not in [x.code for x in rules.diagnose(snap([c]), {})]


@given(st.integers(0, 2**64 - 1))
def test_property_kernel_va_is_the_ttbr1_half(v):
    assert compare.is_kernel_va(v) == (v >> 52 == 0xFFF)
