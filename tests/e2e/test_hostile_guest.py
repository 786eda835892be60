"""The hostile suite's attacks on the live lab (tests/hostile/ has the unit-level ones): a guest that
corrupts its own memory in the ways issue 13 describes, then a fresh GDB attaches to it (module
symbols load at attach, as they do in triage)."""

import os
import time
from pathlib import Path

import pytest

from tests.conftest import js

pytestmark = pytest.mark.lab
GUEST = Path(__file__).parent.parent / "hostile" / "guest"   # GDB scripts that corrupt the guest
RAW_CONTROL = ("\x1b", "\x07")


def clean(text: str) -> None:
    assert "Traceback" not in text and "Python Exception" not in text, text
    assert not any(c in text for c in RAW_CONTROL), repr(text)


def test_hostile_guest_at_attach(installed_lab, gdb_on, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("RKVM_HOSTILE_MARKER", str(marker))
    sess, mi, _ = installed_lab()
    assert "PLANTED .data" in mi.check(f"source {GUEST / 'plant_section_name.py'}")
    mi.close()

    # 1. a section name with a newline: refused in one line at attach, the rest of rkvm loads
    mi = gdb_on(sess)
    out = mi.startup_output
    clean(out)
    assert not marker.exists(), "the guest ran a host command"
    refused = [x for x in out.splitlines() if "refused" in x]
    assert refused == ["rkvm: module rkvm: 1 section name(s) refused, not ELF section names "
                       f"(first: '.text.x 0x1\\x0ashell touch {marker};')"], out
    assert "rkvm: loaded symbols of rkvm at " in out

    # 2. a module name with escape sequences and a byte that is not UTF-8
    assert "RENAMED" in mi.check(f"source {GUEST / 'rename_module.py'}")
    for cmd in ("rkvm modules", "rkvm modules --load"):
        res = mi.console(cmd)
        clean(res.output + str(res.error))
        assert "rkvm\\x1b]0;pwned\\x07\\x1b[2J\ufffd" in res.output, res

    # 3. rkvm_debug.stub_pa near 2^64 (every read past 2^64 was an OverflowError traceback)
    mi.check("set var rkvm_debug.stub_pa = 0xfffffffffffff800")
    for cmd in ("rkvm stub --json", "rkvm snapshot --json", "rkvm cpus --json"):
        res = mi.console(cmd, timeout=120)
        clean(res.output + str(res.error))
        assert res.ok, res
    assert js(mi.check("rkvm stub --json"))["stub_pa"] == 0xFFFFFFFFFFFFF800

    # 4. the guest's own page tables turned into the four-page attack
    assert "HOSTILE TABLES" in mi.check(f"source {GUEST / 'hostile_tables.py'}")
    t0 = time.monotonic()
    r = js(mi.check("rkvm vmmap --json", timeout=120))
    seconds = time.monotonic() - t0
    print(f"rkvm vmmap on the hostile tables: {seconds:.2f} s, {len(r['mappings'])} ranges, "
          f"{r['shared_total']} shared-table ranges, {r['traversal']}")
    assert seconds < 30 and r["truncated"] is None
    assert r["traversal"]["tables"] == 4 and len(r["mappings"]) == 512
    assert sorted(s["level"] for s in r["shared_tables"]) == [1, 2, 3] and r["shared_total"] == 3
    text = mi.check("rkvm vmmap")
    assert "shared: the level 3 table at PA" in text and "3 shared-table ranges (not walked again)" in text
    assert not marker.exists()
    # QEMU and both GDBs end with the fixtures (start_lab checks QEMU is gone); tests/conftest.py checks
    # that no process carrying this run's token outlives the suite.
    assert os.environ.get("RKVM_TEST_RUN")
