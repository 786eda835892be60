"""`rkvm cpus`, `el`, `sysreg`, `esr`, `vectors` and the convenience functions on the live lab."""

import threading

import pytest

from gdb_rkvm.qemu import session

from gdb_rkvm.model import stub_abi
from tests.conftest import js

pytestmark = pytest.mark.lab


def test_cpus_shows_the_stub_on_every_cpu(installed_lab):
    _, mi, event = installed_lab()
    r = js(mi.check("rkvm cpus --json"))
    assert [c["cpu"] for c in r["cpus"]] == [0, 1]
    for c in r["cpus"]:
        assert c["vbar_el2"] == event["stub_pa"]
        assert c["vbar_el2_kind"] == "rkvm-stub"
        assert c["el"] == 1 and c["mode"] == "EL1h"
        # SP_EL2 was set per CPU by RKVM_HVC_SET_STACK: CPU n's stack top
        stacks = event["stub_pa"] + stub_abi.value("RKVM_OFF_STACKS")
        assert c["sp_el2"] == stacks + (c["cpu"] + 1) * stub_abi.value("RKVM_STACK_SIZE")
    assert r["warnings"] == []
    assert r["rkvm_stub_pas"] == [event["stub_pa"]]
    # the hyp-stub's PA is what the module saved to put back
    prev = int(mi.check("p/x rkvm_debug.prev_vectors_pa").split("=")[1], 16)
    assert r["hyp_stub_pa"] == prev
    text = mi.check("rkvm cpus")
    assert "the rkvm EL2 stub" in text and "warning" not in text


def test_cpus_warns_when_cpus_disagree(installed_lab):
    _, mi, event = installed_lab(mode="one-cpu")
    r = js(mi.check("rkvm cpus --json"))
    kinds = sorted(c["vbar_el2_kind"] for c in r["cpus"])
    assert kinds == ["hyp-stub", "rkvm-stub"]
    assert len(r["warnings"]) == 1 and r["warnings"][0].startswith("CPUs disagree on VBAR_EL2")
    assert "warning: CPUs disagree on VBAR_EL2" in mi.check("rkvm cpus")


def test_cpus_flags_vbar_outside_ram_in_vmalloc_mode(start_lab, gdb_on):
    # mode=vmalloc: VBAR_EL2 = virt_to_phys() of the module's copy; the next HVC never returns.
    mi = gdb_on(start_lab(mode="vmalloc"))
    first = js(mi.check("rkvm run-to installed-cpu --json", timeout=90))
    written = int(mi.check("p/x rkvm_debug.vbar_written").split("=")[1], 16)
    assert first["arg"] == written != first["stub_pa"]
    mi.check("rkvm run-to installed-cpu --json", timeout=30)
    # let both CPUs take their next HVC, then look: they are stuck at EL2, inside the bogus table
    res = mi.console("rkvm run-to installed-all --timeout 3", timeout=30)
    assert not res.ok and "no 'installed-all' event within 3 s" in res.error
    r = js(mi.check("rkvm cpus --json"))
    for c in r["cpus"]:
        assert c["vbar_el2"] == written
        assert c["vbar_el2_kind"] == "not-ram", c
        assert c["el"] == 2 and written <= c["pc"] < written + 0x800, c
    assert sum("is not RAM" in w for w in r["warnings"]) == 2


def test_vectors_el2_names_the_stub_slots(installed_lab):
    _, mi, event = installed_lab()
    r = js(mi.check("rkvm vectors el2 --json --count 2"))
    assert r["physical"] and r["vbar"] == event["stub_pa"]
    slots = {s["offset"]: s for s in r["slots"]}
    assert slots[0x400]["symbol"] == "rkvm_vec_lower64_sync"
    # the host's HVCs and the guests' exits share the slot: HCR_EL2.VM tells them apart, x0 parked in TPIDR_EL2
    texts = [i["text"] for i in slots[0x400]["instructions"]]
    assert texts[:2] == ["msr tpidr_el2, x0", "mrs x0, hcr_el2"]
    assert slots[0x200]["symbol"] == "rkvm_vec_cur_spx_sync"
    assert slots[0x200]["instructions"][0]["text"] == "msr tpidr_el2, x0"
    text = mi.check("rkvm vectors el2")
    assert "Lower EL using AArch64, Synchronous" in text and "rkvm_vec_lower64_sync" in text
    el1 = js(mi.check("rkvm vectors el1 --json --count 1"))
    assert el1["slots"][0]["symbol"] == "vectors"


def test_el_and_sysreg_read_live_registers(installed_lab):
    _, mi, event = installed_lab()
    cpu = event["cpu"]
    r = js(mi.check(f"rkvm el --cpu {cpu} --json"))
    assert r["cpu"] == cpu and r["el"] == 1 and r["el2_mmu_on"] is False
    regs = r["registers"]
    assert regs["VBAR_EL2"]["value"] == event["stub_pa"]
    assert regs["VBAR_EL1"]["symbol"] == "vectors"
    # the last exception to EL2 on this CPU was the module's HVC: ESR_EL2 says HVC64 #RKVM_HVC_IMM
    assert regs["ESR_EL2"]["summary"] == f"EC 0x16 HVC64: HVC #{stub_abi.value('RKVM_HVC_IMM'):#x}"
    assert regs["ELR_EL2"]["symbol"].startswith("rkvm_hvc")
    assert regs["SPSR_EL2"]["summary"].startswith("EL1h")
    s = js(mi.check(f"rkvm sysreg HCR_EL2 SCTLR_EL1 --cpu {cpu} --json"))["registers"]
    assert s[0]["register"] == "HCR_EL2" and any(f["name"] == "RW" for f in s[0]["fields"])
    assert s[1]["register"] == "SCTLR_EL1" and s[1]["value"] & 1  # kernel MMU on
    raw = int(mi.check("p/x $SCTLR").split("=")[1], 16)
    assert s[1]["value"] == raw
    assert int(mi.check('p/x $rkvm_sysreg("SCTLR_EL1")').split("=")[1], 16) == raw
    assert mi.check("p $rkvm_el()").strip().endswith("= 1")


def test_esr_after_a_ping_hvc(installed_lab):
    sess, mi, _ = installed_lab()
    mi.check("detach")          # let the guest boot to its shell
    session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
    mi2 = __import__("gdb_rkvm.host.mi", fromlist=["GdbMi"]).GdbMi()
    try:
        result = {}
        waiter = threading.Thread(target=lambda: result.update(
            out=mi2.console("rkvm run-to hvc-returned --json --timeout 60", timeout=90)))
        waiter.start()
        with session.SerialConsole(sess) as console:
            for _ in range(50):                 # GDB resumes the guest a moment after the thread starts
                if not waiter.is_alive():
                    break
                console.send("echo ping 0x77 > /sys/kernel/debug/rkvm/hvc\n")
                waiter.join(1.0)
        waiter.join(30)
        event = js(result["out"].output)
        assert event["arg"] == 0x77 ^ stub_abi.value("RKVM_PING_XOR")
        d = js(mi2.check(f"rkvm esr --cpu {event['cpu']} --json"))
        assert d["fields"][0]["value"] == 0x16
        assert next(f for f in d["fields"] if f["name"] == "imm16")["value"] == stub_abi.value("RKVM_HVC_IMM")
    finally:
        mi2.close()


def test_bad_input_is_one_line(installed_lab):
    _, mi, _ = installed_lab()
    for cmd, words in [("rkvm sysreg VBAR_EL", "unknown system register 'VBAR_EL' (closest: VBAR_EL3, VBAR_EL2"),
                       ("rkvm esr zz", "'zz' is not a valid ESR value"),
                       ("rkvm esr 0x1ffffffffffffffff", "does not fit in 64 bits"),
                       ("rkvm el --cpu 7", "no CPU 7 (CPUs: 0, 1)"),
                       ("rkvm el --cpu x", "'x' is not a CPU number"),
                       ("rkvm vectors el3", "invalid choice: 'el3'"),
                       ("rkvm sysreg MIDR_EL1", "MIDR_EL1 is not among the registers this QEMU's gdbstub exposes")]:
        res = mi.console(cmd)
        assert not res.ok and words in res.error, (cmd, res.error)
        assert "\n" not in res.error and "Traceback" not in res.output


def test_esr_decodes_a_given_value_without_a_target(gdb_on, start_lab):
    mi = gdb_on(start_lab())
    d = js(mi.check("rkvm esr 0x5a000042 --json"))
    assert d["summary"] == "EC 0x16 HVC64: HVC #0x42"
    assert "IL[25] = 0x1  32-bit instruction" in mi.check("rkvm esr 0x5a000042")
