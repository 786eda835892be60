"""`rkvm lint-el2` on small objects assembled here: each check has an object that shows it and one
that does not; the repo's stubs; bad input; properties over generated code."""

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdb_rkvm.model import el2lint, stub_abi
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.paths import REPO
from tests.unit.el2asm import assemble, link, vector_object, vector_source

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("el2")


def checks(report, severity=None):
    return [f.check for f in report.findings if severity is None or f.severity == severity]


def only(report, check):
    found = [f for f in report.findings if f.check == check]
    assert found, el2lint.format_text(report)
    return found


# --- the clean baseline ---

def test_baseline_table_is_clean(tmp):
    r = el2lint.lint(vector_object(tmp))
    assert r.findings == [], el2lint.format_text(r)
    assert r.ranges[0].vector_tables == ["vectors (+0x0)"] and r.ranges[0].copy_alignment == 0x800
    assert el2lint.exit_code(r) == 0


# --- absolute addresses ---

JUMP_TABLE = """\
	adr	x3, table
	ldr	x3, [x3, x0, lsl #3]
	br	x3
one:
	mov	x0, #1
	eret
"""


def test_quad_jump_table_is_found(tmp):
    r = el2lint.lint(vector_object(tmp, handler=JUMP_TABLE, extra="\t.balign 8\ntable:\n\t.quad\tone\n\t.quad\tpark"))
    found = only(r, "absolute-address")
    assert [f.what for f in found] == [".quad one  (R_AARCH64_ABS64)", ".quad park  (R_AARCH64_ABS64)"]
    assert found[0].location == "table" and found[1].location == "table+0x8"
    assert "jump table" in found[0].why and "br x3 at handler+0x8" in found[0].why
    assert "MMU off" in found[0].why and el2lint.exit_code(r) == 1


def test_offset_table_is_not(tmp):
    handler = ("\tadr\tx3, table\n\tldr\tx4, [x3, x0, lsl #3]\n\tadd\tx3, x3, x4\n\tbr\tx3\none:\n\tmov\tx0, #1\n"
               "\teret")
    r = el2lint.lint(vector_object(tmp, handler=handler,
                                   extra="\t.balign 8\ntable:\n\t.quad\tone - table\n\t.quad\tpark - table"))
    assert "absolute-address" not in checks(r), el2lint.format_text(r)


def test_literal_pool_is_found_and_adr_is_not(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tldr\tx0, =park\n\teret\n\t.ltorg"))
    f = only(r, "absolute-address")
    assert len(f) == 1 and f[0].what.startswith("ldr x0, =park") and f[0].location == "handler"
    assert "literal pool" in f[0].why
    r = el2lint.lint(vector_object(tmp, handler="\tadr\tx0, park\n\teret"))
    assert r.findings == []


def test_movz_movk_address_is_one_finding(tmp):
    handler = "\tmovz\tx0, #:abs_g1:park\n\tmovk\tx0, #:abs_g0_nc:park\n\teret"
    f = only(el2lint.lint(vector_object(tmp, handler=handler)), "absolute-address")
    assert len(f) == 1 and "R_AARCH64_MOVW_UABS_G1 against park" in f[0].what and "movz/movk" in f[0].why
    r = el2lint.lint(vector_object(tmp, handler="\tmovz\tx0, #0x1234\n\tmovk\tx0, #0x5678, lsl #16\n\teret"))
    assert r.findings == []


def test_linked_elf_without_relocations_is_guessed(tmp):
    obj = vector_object(tmp, handler=JUMP_TABLE, extra="\t.balign 8\ntable:\n\t.quad\tone\n\t.quad\tpark")
    r = el2lint.lint(link(tmp, obj, keep_relocs=False))
    assert not r.relocations
    f = only(r, "absolute-address")
    assert {x.location for x in f} == {"table", "table+0x8"} and "link with -q" in f[0].why
    r = el2lint.lint(link(tmp, obj))
    assert r.relocations and len(only(r, "absolute-address")) == 2
    assert el2lint.lint(link(tmp, vector_object(tmp), keep_relocs=False)).findings == []


# --- ADRP ---

def test_adrp_pair_says_what_alignment_the_copy_keeps(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tadrp\tx0, park\n\tadd\tx0, x0, :lo12:park\n\teret"))
    f = only(r, "adrp-page")
    assert f[0].severity == "warning" and f[0].what.startswith("adrp x0") and "add x0, x0" in f[0].what
    assert "4 KiB" in f[0].why and "only 0x800-aligned" in f[0].why
    assert r.ranges[0].copy_alignment == 0x1000
    r = el2lint.lint(vector_object(tmp, handler="\tadrp\tx0, park\n\tadd\tx0, x0, :lo12:park\n\teret", align=4096))
    assert "page-aligned destination keeps it" in only(r, "adrp-page")[0].why
    assert el2lint.lint(vector_object(tmp, handler="\tadr\tx0, park\n\teret")).findings == []


# --- leaving the copy ---

def test_call_into_the_kernel_is_found(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tbl\tprintk\n\teret"))
    f = only(r, "leaves-copy")
    assert f[0].what == "bl #0x800 <printk>" or f[0].what.endswith("<printk>")
    assert "printk" in f[0].why and "undefined symbol" in f[0].why
    r = el2lint.lint(vector_object(tmp, handler="\tbl\thelper\n\teret\nhelper:\n\tret"))
    assert r.findings == []


def test_branch_past_the_symbol_range(tmp):
    src = vector_source(handler="\tb\tafter\n", extra="after:\n\teret")
    obj = assemble(tmp, src)
    r = el2lint.lint(obj, "vectors:after")
    assert [f.check for f in r.findings] == ["leaves-copy"] and "outside the copied range" in r.findings[0].why
    assert el2lint.lint(obj).findings == []


def test_adr_of_kernel_data_is_found(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tadrp\tx0, jiffies\n\tldr\tx0, [x0, :lo12:jiffies]\n\teret"))
    assert only(r, "leaves-copy")[0].what.startswith("adrp x0")


# --- the vector table ---

def test_misaligned_table(tmp):
    r = el2lint.lint(vector_object(tmp, align=0x80))
    f = only(r, "vector-table")
    assert any("2 KiB" in x.why and "RES0" in x.why for x in f)


def test_table_copied_short(tmp):
    r = el2lint.lint(vector_object(tmp), "vectors:+0x400")
    f = only(r, "vector-table")
    assert any("16 slots" in x.why and "last 8 slot(s)" in x.why for x in f)


def test_slot_running_into_the_next(tmp):
    long_slot = "\n".join(["\tadd\tx0, x0, #1"] * 32)
    r = el2lint.lint(vector_object(tmp, body={2: long_slot}))
    f = only(r, "vector-table")
    assert f[0].location == "vectors+0x100" and "32 instructions" in f[0].why
    assert "runs into the next slot (+0x180" in f[0].why
    f = only(el2lint.lint(vector_object(tmp, body={3: "\tmov\tx0, #1"})), "vector-table")
    assert f[0].location == "vectors+0x180" and "alignment nops" in f[0].why and "(+0x200" in f[0].why


def test_slot_falling_through_into_padding(tmp):
    r = el2lint.lint(vector_object(tmp, body={3: "\tmov\tx0, #1\n\t.inst\t0"}))
    f = only(r, "vector-table")
    assert f[0].location == "vectors+0x180" and "falls through into padding" in f[0].why


def test_empty_slots(tmp):
    r = el2lint.lint(vector_object(tmp, empty=(8,)))
    f = only(r, "vector-table")
    assert f[0].severity == "error" and "every HVC from EL1 lands there" in f[0].why
    r = el2lint.lint(vector_object(tmp, empty=(1, 2)))
    f = only(r, "vector-table")
    assert len(f) == 1 and f[0].severity == "warning" and f[0].what == "2 empty slot(s)"
    assert "+0x080 Current EL with SP0, IRQ" in f[0].why


# --- the stack ---

PUSH = "\tstp\tx4, x5, [sp, #-16]!\n\tldp\tx4, x5, [sp], #16\n\teret"


def test_stack_without_sp_el2(tmp):
    r = el2lint.lint(vector_object(tmp, handler=PUSH))
    f = only(r, "stack-unset")
    assert len(f) == 1 and f[0].location == "handler" and f[0].severity == "error"
    assert "Lower EL using AArch64, Synchronous vector" in f[0].why


def test_stack_set_on_the_path_per_cpu(tmp):
    handler = ("\tmrs\tx2, mpidr_el1\n\tand\tx2, x2, #7\n\tadr\tx3, stacks\n\tadd\tx3, x3, x2, lsl #10\n"
               "\tmov\tsp, x3\n" + PUSH)
    r = el2lint.lint(vector_object(tmp, handler=handler, extra="\t.balign 16\nstacks:\n\t.skip 8192"))
    assert r.findings == [], el2lint.format_text(r)


def test_one_stack_for_every_cpu(tmp):
    handler = "\tadr\tx3, stack_top\n\tmov\tsp, x3\n" + PUSH
    r = el2lint.lint(vector_object(tmp, handler=handler, extra="\t.skip 1024\nstack_top:"))
    f = only(r, "stack-unset")
    assert f[0].severity == "warning" and "same on every CPU" in f[0].why


def test_stack_set_by_an_hvc_is_a_note(tmp):
    handler = "\tcbz\tx0, set_stack\n" + PUSH + "\nset_stack:\n\tmov\tsp, x1\n\teret"
    r = el2lint.lint(vector_object(tmp, handler=handler))
    assert r.findings == [], el2lint.format_text(r)
    assert any("per CPU" in n.text and "set_stack" in n.text for n in r.notes)


def test_call_that_pushes(tmp):
    handler = "\tbl\tsave\n\teret\nsave:\n\tstp\tx29, x30, [sp, #-16]!\n\tldp\tx29, x30, [sp], #16\n\tret"
    f = only(el2lint.lint(vector_object(tmp, handler=handler)), "stack-unset")
    assert f[0].location == "save"


# --- ISB ---

def test_sctlr_write_used_before_isb(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tmsr\tsctlr_el2, x0\n\tldr\tx1, [x2]\n\teret"))
    f = only(r, "needs-isb")
    assert f[0].what == "msr sctlr_el2, x0" and "ldr x1, [x2] at handler+0x4" in f[0].why and "isb" in f[0].why
    r = el2lint.lint(vector_object(tmp, handler="\tmsr\tsctlr_el2, x0\n\tisb\n\tldr\tx1, [x2]\n\teret"))
    assert r.findings == []


def test_vbar_write_then_eret_is_fine_then_hvc_is_not(tmp):
    assert el2lint.lint(vector_object(tmp, handler="\tmsr\tvbar_el2, x1\n\tmov\tx0, #0\n\teret")).findings == []
    r = el2lint.lint(vector_object(tmp, handler="\tmsr\tvbar_el2, x1\n\tbrk\t#1"))
    assert only(r, "needs-isb")[0].what == "msr vbar_el2, x1"


def test_hcr_and_vttbr_writes(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tmsr\thcr_el2, x0\n\tmrs\tx1, sctlr_el1\n\teret"))
    assert only(r, "needs-isb")[0].what == "msr hcr_el2, x0"
    r = el2lint.lint(vector_object(tmp, handler="\tmsr\tvttbr_el2, x0\n\ttlbi\tvmalls12e1\n\teret"))
    assert only(r, "needs-isb")[0].what == "msr vttbr_el2, x0"
    r = el2lint.lint(vector_object(tmp, handler="\tmsr\tvttbr_el2, x0\n\tisb\n\ttlbi\tvmalls12e1\n\teret"))
    assert "needs-isb" not in checks(r)


# --- ERET ---

def test_hvc_at_el2_clobbers_elr(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\thvc\t#0\n\teret"))
    f = only(r, "eret-state")
    assert f[0].what == "eret" and "hvc #0 at handler" in f[0].why and "ELR_EL2 and SPSR_EL2" in f[0].why
    saved = ("\tmrs\tx2, elr_el2\n\tmrs\tx3, spsr_el2\n\thvc\t#0\n\tmsr\telr_el2, x2\n\tmsr\tspsr_el2, x3\n"
             "\teret")
    assert el2lint.lint(vector_object(tmp, handler=saved)).findings == []


def test_entry_point_eret_needs_both(tmp):
    src = ("\t.text\n\t.globl\t_start\n_start:\n\tmsr\telr_el2, x0\n\teret\n")
    r = el2lint.lint(link(tmp, assemble(tmp, src), entry="_start"))
    f = only(r, "eret-state")
    assert "SPSR_EL2" in f[0].why and "ELR_EL2 and" not in f[0].why and "not an exception entry" in f[0].why
    src = "\t.text\n\t.globl\t_start\n_start:\n\tmsr\telr_el2, x0\n\tmsr\tspsr_el2, x1\n\teret\n"
    assert el2lint.lint(link(tmp, assemble(tmp, src), entry="_start")).findings == []


# --- EL1 registers ---

def test_el1_registers_at_el2(tmp):
    r = el2lint.lint(vector_object(tmp, handler="\tmrs\tx0, esr_el1\n\teret"))
    f = only(r, "el1-register")
    assert f[0].severity == "warning" and "ESR_EL2" in f[0].why and "E2H" in f[0].why
    for ok in ("esr_el2", "mpidr_el1", "midr_el1", "tpidr_el2"):
        assert el2lint.lint(vector_object(tmp, handler=f"\tmrs\tx0, {ok}\n\teret")).findings == [], ok


# --- the repository's own EL2 code ---

@pytest.fixture(scope="module")
def stub_built():
    subprocess.run(["make", "-s", "-C", str(REPO / "stub")], check=True, capture_output=True)
    return REPO / "stub" / "build"


@pytest.mark.parametrize("name", ["el2_stub.o", "el2_stub.elf"])
def test_repo_stub_is_clean(stub_built, name):
    r = el2lint.lint(stub_built / name)
    assert r.findings == [], el2lint.format_text(r)
    assert any("rkvm_stub_set_stack" in n.text and "per CPU" in n.text for n in r.notes)


@pytest.mark.parametrize("name", ["el2_stub_jt.o", "el2_stub_jt.elf"])
def test_jump_table_stub_has_one_absolute_word_per_call(stub_built, name):
    r = el2lint.lint(stub_built / name)
    assert checks(r) == ["absolute-address"] * stub_abi.value("RKVM_HVC_NR"), el2lint.format_text(r)
    assert r.findings[0].location == "rkvm_stub_jump_table" and "rkvm_stub_version" in r.findings[0].what
    assert "br x3 at rkvm_stub_el1_sync+0x5c" in r.findings[0].why


def test_othervisor_vectors_are_clean(tmp):
    src = (REPO / "tests/modules/othervisor/ov_vectors.S").read_text()
    r = el2lint.lint(assemble(tmp, src, "ov_vectors"))
    assert r.findings == [] and r.ranges[0].vector_tables == ["ov_vectors (+0x0)"]


def test_module_built_stub_in_rodata_is_linted_by_flow(tmp, stub_built):
    """A flat binary embedded as a C array (bin2c) in .rodata, as rkvm.ko does for mode=good."""
    blob = (stub_built / "el2_stub.bin").read_bytes()
    body = "\n".join(f"\t.byte {', '.join(str(b) for b in blob[i:i + 32])}" for i in range(0, len(blob), 32))
    src = f'\t.section .rodata, "a"\n\t.balign 4096\n\t.globl blob\n\t.type blob, %object\nblob:\n{body}\n' \
          "\t.size blob, . - blob\n"
    r = el2lint.lint(assemble(tmp, src, "blob"), "blob")
    assert r.findings == [] and r.ranges[0].vector_tables == ["blob (+0x0)"], el2lint.format_text(r)


# --- bad input: one line, exit 2 ---

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "lint-el2", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_exit_codes_and_json(tmp, stub_built):
    res = run_cli(stub_built / "el2_stub.o")
    assert res.returncode == 0 and res.stdout.rstrip().endswith("clean: no findings")
    res = run_cli(stub_built / "el2_stub_jt.o", "--json")
    assert res.returncode == 1
    d = json.loads(res.stdout)
    assert d["clean"] is False and len(d["findings"]) == stub_abi.value("RKVM_HVC_NR")
    assert d["ranges"][0]["copy_alignment"] == 0x800


@pytest.mark.parametrize("make,words", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("hello"), "not an ELF file"),
    (lambda p: p.write_bytes((REPO / "stub/build/el2_stub.o").read_bytes()[:200]), "ELF"),
    (lambda p: p.write_bytes(open(sys.executable, "rb").read(1 << 20)), "not AArch64"),
])
def test_cli_bad_input_is_one_line(tmp, stub_built, make, words):
    p = tmp / "bad.file"
    p.unlink(missing_ok=True)
    make(p)
    res = run_cli(p)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and words in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.startswith("rkvm lint-el2: ")


def test_bad_symbol_ranges(tmp):
    obj = vector_object(tmp)
    for spec, words in (("nope", "no symbol 'nope'"), ("vector", "did you mean vectors"),
                        ("park:vectors", "the range is empty"), ("vectors:+0x100000", "past the end"),
                        ("vectors:+zz", "not a +LENGTH")):
        with pytest.raises(RkvmError) as e:
            el2lint.lint(obj, spec)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_control_characters_in_names_are_escaped(tmp):
    obj = vector_object(tmp, handler="\tbl\tprintk\n\teret")
    evil = tmp / "evil.o"
    subprocess.run(["aarch64-linux-gnu-objcopy", "--redefine-sym", "printk=pr\x1b[31mintk\x07",
                    "--redefine-sym", "handler=hand\nler", str(obj), str(evil)], check=True)
    r = el2lint.lint(evil)
    text = el2lint.format_text(r)
    assert "\x1b" not in text and "\x07" not in text and "pr\\x1b[31mintk\\x07" in text
    assert "hand\\nler" in text
    assert all(ch.isprintable() for line in text.splitlines() for ch in line)
    assert "\x1b" not in el2lint.format_json(r)
    res = run_cli(evil)
    assert res.returncode == 1 and "\x1b" not in res.stdout


# --- properties ---

FILLER = st.sampled_from(["\tmov\tx2, #3", "\tadd\tx3, x3, #1", "\teor\tx0, x1, x2", "\tcmp\tx0, #4",
                          "\tmrs\tx2, esr_el2", "\tmrs\tx3, mpidr_el1", "\tmsr\ttpidr_el2, x0", "\tnop",
                          "\tadr\tx3, park", "\tubfx\tx2, x2, #26, #6", "\tldr\tx2, [x3, #8]"])
BAD = {
    "absolute-address": "\tldr\tx4, =park",
    "leaves-copy": "\tbl\tsome_kernel_function",
    "stack-unset": "\tstr\tx0, [sp, #-16]!",
    "el1-register": "\tmrs\tx4, far_el1",
    "eret-state": "\thvc\t#1",
    "adrp-page": "\tadrp\tx4, park\n\tadd\tx4, x4, :lo12:park",
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FILLER, max_size=12), st.sampled_from(sorted(BAD)), st.data())
def test_property_one_bad_construct_gives_exactly_its_check(tmp, filler, bad, data):
    where = data.draw(st.integers(0, len(filler)))
    clean = "\n".join(filler) + "\n\teret\n\t.ltorg"
    assert el2lint.lint(vector_object(tmp, handler=clean)).findings == []
    lines = list(filler)
    lines.insert(where, BAD[bad])
    r = el2lint.lint(vector_object(tmp, handler="\n".join(lines) + "\n\teret\n\t.ltorg"))
    assert sorted(set(checks(r))) == [bad], el2lint.format_text(r)
    assert all(f.location.startswith(("handler", "park", "vectors")) for f in r.findings)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40))
def test_property_any_words_lint_without_error(tmp, words):
    handler = "\n".join(f"\t.inst\t{w:#010x}" for w in words)
    r = el2lint.lint(vector_object(tmp, handler=handler))
    rng = r.ranges[0]
    assert all(rng.start <= f.offset < rng.end and f.check in el2lint.CHECKS for f in r.findings)
    assert all(f.severity in ("error", "warning") and f.why for f in r.findings)
    json.loads(el2lint.format_json(r))


@given(st.text())
def test_property_printable_escapes_everything(text):
    out = el2lint.printable(text)
    assert out.isprintable()
    assert (out == text) == (text.isprintable() and "\\" not in text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_property_damaged_elf_is_a_report_or_one_line(tmp, stub_built, edits):
    data = bytearray((stub_built / "el2_stub_jt.o").read_bytes())
    for where, value in edits:   # the header, the section headers at the end, or anywhere
        pos = int(where * 0x40) if where < 0.2 else len(data) - 1 - int(where * 0x600) if where < 0.7 \
            else int(where * (len(data) - 1))
        data[pos] = value
    p = tmp / "damaged.o"
    p.write_bytes(bytes(data))
    try:
        text = el2lint.format_text(el2lint.lint(p))
        assert all(ch.isprintable() for line in text.splitlines() for ch in line)
    except RkvmError as e:
        assert "\n" not in str(e)


def test_format_is_separate_from_the_findings():
    from gdb_rkvm.model.el2lint.model import RangeReport
    f = el2lint.Finding("needs-isb", "error", ".text", 0x10, "handler+0x4", "msr vbar_el2, x1", "a sentence " * 20)
    r = el2lint.LintReport("x.o", "object", True, [RangeReport(".text", 0, 0x800, "section .text", ["vectors (+0x0)"],
                                                                 0x800)], [f], [el2lint.Note("vectors", "a note")])
    text = el2lint.format_text(r)
    assert text.splitlines()[0] == "x.o: relocatable object"
    assert "error: needs-isb at handler+0x4 (.text+0x10)" in text and "    msr vbar_el2, x1" in text
    assert all(len(line) <= 100 for line in text.splitlines()[3:])
    assert text.endswith("1 finding(s): 1 error(s), 0 warning(s)")
    d = json.loads(el2lint.format_json(r))
    assert d["clean"] is False and d["findings"][0]["offset"] == 0x10 and d["notes"][0]["text"] == "a note"
    assert el2lint.exit_code(r) == 1
    r.findings = []
    assert el2lint.format_text(r).endswith("clean: no findings") and el2lint.exit_code(r) == 0
