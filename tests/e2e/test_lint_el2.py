"""`rkvm lint-el2` on the built modules, and the copy-versus-ELF check at run time: rkvm.ko's
mode=jump-table found by `rkvm stub --elf` in GDB and by `rkvm triage`."""

import json
import subprocess
import sys

import pytest

from gdb_rkvm.model.el2lint.compare import is_kernel_va
from gdb_rkvm.paths import REPO, build_dir
from tests.conftest import js, no_new_qemu
from tests.unit.test_el2_copy import jt_symbol, table_words

pytestmark = pytest.mark.lab

JT_ELF = REPO / "stub" / "build" / "el2_stub_jt.elf"
STUB_ELF = REPO / "stub" / "build" / "el2_stub.elf"
TABLE = table_words()   # rkvm_stub_jump_table: one word per rkvm call (RKVM_HVC_NR)
N = len(TABLE)


def lint(*args):
    return subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "lint-el2", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_lint_the_built_modules(lab_built):
    res = lint(build_dir() / "module" / "rkvm.ko", "--json")
    assert res.returncode == 1, res.stderr
    r = json.loads(res.stdout)
    assert r["kind"] == "module" and [x["section"] for x in r["ranges"]] == [".text.rkvm_stub_jt"]
    assert [f["check"] for f in r["findings"]] == ["absolute-address"] * N
    assert [f["offset"] for f in r["findings"]] == TABLE
    assert "module loader writes a kernel virtual address" in r["findings"][0]["why"]
    res = lint(build_dir() / "module" / "rkvm.ko", "--symbol", "rkvm_stub_blob")   # mode=good's flat copy
    assert res.returncode == 0 and "clean: no findings" in res.stdout, res.stdout
    res = lint(build_dir() / "othervisor" / "othervisor.ko")
    assert res.returncode == 0 and "vector table at ov_vectors (+0x0)" in res.stdout, res.stdout
    res = lint(build_dir() / "module" / "rkvm.ko", "--symbol", "no_such_thing")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no symbol 'no_such_thing'" in res.stderr


def test_stub_elf_finds_the_relocated_words(start_lab, gdb_on):
    mi = gdb_on(start_lab(mode="jump-table"))
    event = js(mi.check("rkvm run-to installed-cpu --json", timeout=90))
    vbar = event["arg"]
    r = js(mi.check(f"rkvm stub --elf {JT_ELF} --json", timeout=60))
    copy = next(c for c in r["copy"] if c["vbar_el2"] == vbar)
    assert copy["base"] == vbar and copy["causes"] == ["relocated"], copy
    assert [d["offset"] for d in copy["diffs"]] == TABLE
    module_va = int(mi.check("p/x (unsigned long)rkvm_stub_jt_blob").split("=")[1], 16)
    for d in copy["diffs"]:
        assert is_kernel_va(d["memory"]) and d["memory"] == module_va + d["elf"], d   # the loader's work
    assert copy["diffs"][0]["target"] == "rkvm_stub_version"
    # the lint from inside GDB, without FILE: the EL2 ELF `rkvm stub --elf` loaded last
    assert len(js(mi.check("rkvm lint-el2 --json", timeout=60))["findings"]) == N
    text = mi.check(f"rkvm stub --elf {JT_ELF}", timeout=60)
    assert f"{N} word(s) differ from the ELF: {N} relocated by the module loader" in text
    assert "rkvm_stub_jump_table" in text and "relocated: kernel virtual addresses" in text
    # the default stub's ELF is not what this mode copied: the dispatch differs too
    other = js(mi.check(f"rkvm stub --elf {STUB_ELF} --json", timeout=60))
    assert "differs" in next(c for c in other["copy"] if c["vbar_el2"] == vbar)["causes"]
    out = mi.check(f"rkvm lint-el2 {REPO / 'stub/build/el2_stub_jt.o'}", timeout=60)
    assert "error: absolute-address at rkvm_stub_jump_table" in out and f"{N} finding(s)" in out
    res = mi.console("rkvm lint-el2 /nonexistent/el2.o")
    assert not res.ok and res.error == "rkvm lint-el2: /nonexistent/el2.o: no such file"


def test_stub_elf_says_identical_on_the_good_stub(installed_lab):
    _, mi, event = installed_lab()
    r = js(mi.check(f"rkvm stub --elf {STUB_ELF} --json", timeout=60))
    assert all(c["identical"] and c["vbar_el2"] == event["stub_pa"] for c in r["copy"]), r["copy"]
    assert "identical to the ELF" in mi.check(f"rkvm stub --elf {STUB_ELF}", timeout=60)


def test_triage_names_the_jump_table(lab_built, tmp_path):
    out = tmp_path / "out"
    with no_new_qemu():
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--mode", "jump-table", "--out",
                              str(out)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert res.returncode == 1, res.stdout + res.stderr
    r = json.loads((out / "report.json").read_text())
    found = {f["code"]: f for f in r["findings"]}
    rel = found["el2-code-relocated"]
    assert rel["cpus"] == [0, 1] and f"{N} kernel virtual address(es)" in rel["summary"]
    assert any(e.startswith(f"+{TABLE[0]:#x} rkvm_stub_jump_table: 0xffff") and "rkvm_stub_version" in e
               for e in rel["evidence"])
    fault = found["el2-fault-at-kernel-va"]
    set_stack = jt_symbol("rkvm_stub_set_stack")
    assert fault["cpus"] == [0, 1] and f"rkvm_stub_jt_blob+{set_stack:#x}" in fault["summary"]
    assert "el2-parked" in found
    codes = [f["code"] for f in r["findings"]]
    assert codes.index("el2-code-relocated") < codes.index("el2-parked")
    assert "el2-code-relocated" in res.stdout


def test_stub_elf_compares_a_module_that_is_not_ours(start_lab, gdb_on):
    from gdb_rkvm.qemu import session
    sess = start_lab(append="rkvm.load=othervisor")
    mi = gdb_on(sess)
    for _ in range(20):   # run until othervisor.ko has installed its vectors (the VBAR_EL2 watch stops us)
        mi.run_for(2)
        if "othervisor: vectors at PA" in open(sess.serial_log).read():
            break
    session.serial_wait(sess, "othervisor: vectors at PA", timeout=5)
    r = js(mi.check(f"rkvm stub --elf {build_dir() / 'othervisor' / 'ov_el2.elf'} --json", timeout=60))
    assert [c["cpus"] for c in r["copy"]] == [[0, 1]], r["copy"]
    assert r["copy"][0]["identical"] and r["copy"][0]["absolute_words"] == 0
