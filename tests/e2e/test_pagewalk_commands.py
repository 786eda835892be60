"""`rkvm walk`, `v2p`, `contig`, `vmmap`, `p2v` on the live lab, checked against QEMU's own translation."""

import re

import pytest

from tests.conftest import js

pytestmark = pytest.mark.lab




def value(mi, expr: str) -> int:
    return int(mi.check(f"p/x {expr}").split("=")[1].split()[0], 16)


@pytest.fixture(scope="module")
def lab(lab_built, tmp_path_factory):
    """One lab booted to installed-all, shared by this module's read-only tests."""
    import os

    from gdb_rkvm.qemu import session
    from gdb_rkvm.host.mi import GdbMi
    d = tmp_path_factory.mktemp("session")
    old = os.environ.get("RKVM_SESSION_DIR")
    os.environ["RKVM_SESSION_DIR"] = str(d)
    sess = session.start("lab", directory=d)
    mi = GdbMi()
    try:
        mi.check("rkvm run-to installed-all", timeout=90)
        yield mi
    finally:
        mi.close()
        session.stop(d)
        if old is None:
            os.environ.pop("RKVM_SESSION_DIR", None)
        else:
            os.environ["RKVM_SESSION_DIR"] = old
        assert not sess.alive()


def words(x_output: str) -> list[str]:
    """The values an `x/Ngx` printed, without the address labels."""
    return [w for line in x_output.splitlines() if ":" in line for w in line.split(":", 1)[1].split()]


def qemu_gva2gpa(mi, va: int) -> int:
    out = mi.check(f"monitor gva2gpa {va:#x}")
    return int(re.search(r"gpa: (0x[0-9a-f]+)", out).group(1), 16)


def test_walk_agrees_with_qemu_and_bytes_match(lab):
    for expr in ("&rkvm_debug", "rkvm_debug.vmalloc_buf + 0x1008", "rkvm_debug.stub_va", "&init_task"):
        va = value(lab, f"(unsigned long)({expr})")
        r = js(lab.check(f"rkvm walk {va:#x} --json"))
        assert r["fault"] is None and r["table_register"] == "TTBR1_EL1"
        assert [s["level"] for s in r["steps"]][0] == 0
        assert r["pa"] == qemu_gva2gpa(lab, va), expr
        virt = words(lab.check(f"x/4gx {va:#x}"))
        lab.check("maint packet Qqemu.PhyMemMode:1")
        try:
            phys = words(lab.check(f"x/4gx {r['pa']:#x}"))
        finally:
            lab.check("maint packet Qqemu.PhyMemMode:0")
        assert virt == phys, expr


def test_walk_of_an_unmapped_address_names_the_level(lab):
    r = js(lab.check("rkvm walk 0xffff7000dead0000 --json"))
    assert r["pa"] is None and r["fault_level"] == 0
    text = lab.check("rkvm walk 0xffff7000dead0000")
    assert "unmapped: translation fault at level 0: descriptor 0x0000000000000000 is invalid" in text
    res = lab.console("rkvm v2p 0xffff7000dead0000")
    assert res.ok and "not mapped: translation fault at level 0" in res.output
    res = lab.console("rkvm contig 0xffff7000dead0000 0x2000")
    assert not res.ok and "is not mapped: translation fault at level 0" in res.error
    res = lab.console("rkvm walk 0x0001000000000000")
    assert not res.ok and "outside the TTBR0 (lower) range" in res.error
    res = lab.console("rkvm walk no_such_symbol")
    assert not res.ok and "neither an address nor a symbol" in res.error


def test_v2p_of_a_module_function_is_flagged(lab):
    r = js(lab.check("rkvm v2p rkvm_init --json"))
    assert r["region"] == "modules" and not r["agree"]
    assert r["formula"] == (r["va"] - value(lab, "kimage_voffset")) & (2**64 - 1)
    assert r["walk_pa"] == qemu_gva2gpa(lab, r["va"])
    assert "virt_to_phys() is not valid here: this is a module address" in r["verdict"]
    assert f"the real PA is {r['walk_pa']:#x}" in r["verdict"]
    # what mode=vmalloc hands to HVC_SET_VECTORS is exactly this formula applied to the module's copy
    blob = js(lab.check("rkvm v2p rkvm_stub_blob --json"))
    assert blob["region"] == "modules" and not blob["agree"]


def test_v2p_of_a_linear_map_address_agrees(lab):
    r = js(lab.check("rkvm v2p rkvm_debug.stub_va --json"))
    assert r["region"] == "linear map" and r["agree"] and r["formula_is_ram"]
    assert r["formula"] == r["walk_pa"] == value(lab, "rkvm_debug.stub_pa")


def test_contig_vmalloc_is_not_and_alloc_pages_is(lab):
    v = js(lab.check("rkvm contig rkvm_debug.vmalloc_buf rkvm_debug.vmalloc_len --json"))
    assert len(v["pages"]) == 8 and not v["contiguous"] and len(v["runs"]) > 1
    p = js(lab.check("rkvm contig rkvm_debug.pages_buf rkvm_debug.pages_len --json"))
    assert len(p["pages"]) == 4 and p["contiguous"] and p["runs"][0]["pages"] == 4
    assert "NOT physically contiguous" in lab.check("rkvm contig rkvm_debug.vmalloc_buf 0x8000")


def test_vmmap_shows_the_kernel_image_with_its_permissions(lab):
    r = js(lab.check("rkvm vmmap --json"))
    assert r["problems"] == [] and r["tables_total"] > 3

    def covering(va):
        return next(m for m in r["mappings"] if m["va"] <= va < m["end"])

    text = covering(value(lab, "(unsigned long)&_stext"))
    assert text["perms"] == "r-x ---"                        # kernel text: executable, read-only
    ro = covering(value(lab, "(unsigned long)&__start_rodata"))
    assert ro["perms"] == "r-- ---"
    data = covering(value(lab, "(unsigned long)&init_task"))
    assert data["perms"] == "rw- ---"
    assert text["attributes"]["MemType"].startswith("Normal Write-Back")
    uart = [m for m in r["mappings"] if m["pa"] <= 0x09000000 < m["pa"] + m["size"]]
    assert uart and uart[0]["attributes"]["MemType"].startswith("Device")   # the PL011's MMIO
    assert "ranges from" in lab.check("rkvm vmmap")


def test_p2v_finds_the_linear_alias(lab):
    pa = value(lab, "rkvm_debug.stub_pa")
    r = js(lab.check(f"rkvm p2v {pa:#x} --json"))
    assert value(lab, "rkvm_debug.stub_va") in [h["va"] for h in r["vas"]]
