"""`rkvm walk --stage 2`, `walk --guest`, `vmmap --stage 2`/`--guest` on the lab with a CPU stopped in the
guest (a hardware breakpoint just after the guest turns its MMU on), checked against QEMU's own two-stage
translation (`monitor gva2gpa`, which for a CPU at EL1 under stage 2 answers the final PA: QEMU's debug
translation uses the CPU's current regime, stage 1 + stage 2) and against descriptor bytes read
physically (`monitor xp`)."""

import re

import pytest

from gdb_rkvm.model import stub_abi
from gdb_rkvm.paths import REPO
from tests.conftest import js
from tests.e2e.test_hvc_commands import run_while_typing

pytestmark = pytest.mark.lab
GUEST = "/sys/kernel/debug/rkvm/guest"
RAM_IPA = stub_abi.value("RKVM_GUEST_RAM_IPA")
RAM_SIZE = stub_abi.value("RKVM_GUEST_RAM_SIZE")
UART_VA = stub_abi.value("RKVM_GUEST_UART_VA")
UART_IPA = stub_abi.value("RKVM_GUEST_UART_IPA")
MOV_X23_UART = 0xD2A00017 | ((UART_VA >> 16) << 5)   # movz x23, #(UART_VA >> 16), lsl #16: MMU is on by then


def mmu_on_pc() -> int:
    """The guest's first instruction run with its MMU on (stub/guest.S sets x23 to the UART VA there)."""
    image = (REPO / "stub/build/guest.bin").read_bytes()
    words = [int.from_bytes(image[i:i + 4], "little") for i in range(0, len(image) - 3, 4)]
    return RAM_IPA + 4 * words.index(MOV_X23_UART)


def xp(mi, pa: int) -> int:
    out = mi.check(f"monitor xp /1gx {pa:#x}")
    return int(re.search(r":\s*(0x[0-9a-f]+)", out).group(1), 16)


def gva2gpa(mi, cpu: int, va: int) -> int:
    """QEMU's translation of `va` on `cpu` (the monitor translates on its own current CPU: set it first)."""
    mi.check(f"monitor cpu {cpu}")
    out = mi.check(f"monitor gva2gpa {va:#x}")
    return int(re.search(r"gpa: (0x[0-9a-f]+)", out).group(1), 16)


def test_walks_of_the_guest_world(installed_lab):
    sess, mi, _ = installed_lab()
    res = mi.console(f"rkvm walk --stage 2 {RAM_IPA:#x}")        # no guest has run yet
    assert not res.ok and re.search(r"no vCPU has run on CPU \d: give --vttbr", res.error)
    pc = mmu_on_pc()
    mi.check(f"hbreak *{pc:#x}")
    res, _ = run_while_typing(mi, sess, "continue", f'echo "run 100" > {GUEST}')
    assert res.ok and f"{pc:#x}" in mi.check("p/x $pc")

    g = js(mi.check(f"rkvm walk --guest {pc:#x} --json"))
    assert g["pa"] == gva2gpa(mi, g["cpu"], pc) and g["ipa"] == pc and g["fault"] is None   # identity stage 1
    assert "live EL1 registers" in g["source"] and "live VTTBR_EL2" in g["stage2_regime"]["source"]
    assert [s["level"] for s in g["stage1"]] == [1] and g["stage1"][0]["kind"] == "block"
    for s in g["stage1"]:      # each stage 1 descriptor: read where its stage 2 fetch says it is
        assert s["fetch"]["pa"] == s["entry_pa"] and xp(mi, s["entry_pa"]) == s["raw"]
    steps = g["stage2"]["steps"]
    assert [s["level"] for s in steps] == [1, 2, 3]
    assert all(xp(mi, s["entry_pa"]) == s["raw"] for s in steps)
    assert g["perms"] and g["stage2"]["perms"] == "rwx rwx"

    s2 = js(mi.check(f"rkvm walk --stage 2 {pc:#x} --json"))
    assert s2["pa"] == g["pa"] and [x["raw"] for x in s2["steps"]] == [x["raw"] for x in steps]
    text = mi.check(f"rkvm walk --guest {pc:#x} --explain")
    assert f"PA {g['pa']:#x}  permissions:" in text and "S1PTW" in text and "fetch of IPA" in text

    uart = js(mi.check(f"rkvm walk --guest {UART_VA:#x} --json"))
    assert uart["ipa"] == UART_IPA and uart["pa"] is None and [s["level"] for s in uart["stage1"]] == [1, 2, 3]
    f = uart["fault"]
    assert (f["stage"], f["kind"], f["address"]) == (2, "translation", UART_IPA) and not f["s1ptw"]
    assert "no PA: stage 2 translation fault" in mi.check(f"rkvm walk --guest {UART_VA:#x}")

    m2 = js(mi.check("rkvm vmmap --stage 2 --json"))["stage2_map"]["mappings"]
    covered = sum(min(m["end"], RAM_IPA + RAM_SIZE) - max(m["va"], RAM_IPA) for m in m2
                  if m["va"] < RAM_IPA + RAM_SIZE and m["end"] > RAM_IPA)
    assert covered == RAM_SIZE                      # all of the guest's RAM, maybe in several ranges
    ram = [m for m in m2 if m["va"] <= pc < m["end"]]
    assert ram and ram[0]["pa"] + pc - ram[0]["va"] == g["pa"]
    assert not any(m["va"] <= UART_IPA < m["end"] for m in m2)
    mg = js(mi.check("rkvm vmmap --guest --json"))["ranges"]
    here = [r for r in mg if r["va"] <= pc < r["end"]]
    assert here and here[0]["ipa"] == here[0]["va"] and here[0]["pa"] + pc - here[0]["va"] == g["pa"]
    assert [r["pa"] for r in mg if r["va"] <= UART_VA < r["end"]] == [None]
    assert "stage 2 unmapped" in mi.check("rkvm vmmap --guest")

    for bad, says in ((f"rkvm walk --stage 2 {1 << 32:#x}", "beyond the 32-bit IPA space"),
                      (f"rkvm walk --stage 2 {RAM_IPA:#x} --vttbr 0x1000", "outside RAM"),
                      (f"rkvm walk --ttbr 0x1000 {pc:#x}", "use them with --guest")):
        res = mi.console(bad)
        assert not res.ok and says in res.error and "\n" not in res.error.strip(), bad

    # back in the host: the same walk from the vCPU's saved registers
    mi.check("delete")
    mi.run_for(4)
    saved = []
    for cpu in (0, 1):
        res = mi.console(f"rkvm walk --guest {pc:#x} --cpu {cpu} --json")
        if res.ok:
            saved.append(js(res.output))
    assert saved and all(x["pa"] == g["pa"] and "saved EL1 context" in x["source"] for x in saved)
