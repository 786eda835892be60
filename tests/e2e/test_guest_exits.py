"""Guest exits on the live lab (under GDB the host's timer IRQs exit the guest between the stops, so
`run N` needs a large N to get through the guest's program): `rkvm exit catch` stops at the guest's
UART MMIO, hypercall and WFI exits (and not at the host's HVCs), `rkvm fault` explains the stage-2
abort there and in mode=s2-hole, and `rkvm step-el2` steps out of the guest into the host and from the
host's RKVM_HVC_VCPU_RUN into the guest."""

import pytest

from gdb_rkvm.model import stub_abi
from tests.conftest import js
from tests.e2e.test_hvc_commands import run_while_typing

pytestmark = pytest.mark.lab
GUEST = "/sys/kernel/debug/rkvm/guest"
UART_IPA = stub_abi.value("RKVM_GUEST_UART_IPA")
RAM_IPA, RAM_SIZE = stub_abi.value("RKVM_GUEST_RAM_IPA"), stub_abi.value("RKVM_GUEST_RAM_SIZE")
IMM = stub_abi.value("RKVM_HVC_IMM")
VCPU_RUN = stub_abi.value("RKVM_HVC_VCPU_RUN")


def go(mi, command="continue"):
    res = mi.console(command, timeout=90)
    assert res.ok, res.error
    return res.output


def test_exit_catch_fault_and_step_el2_across_the_world_switch(installed_lab):
    sess, mi, _ = installed_lab()
    assert "catching guest exits (exit reason dabt)" in mi.check("rkvm exit catch --reason dabt")
    # a host HVC first (ping), then the guest: only the guest's UART store stops the catch
    res, mark = run_while_typing(mi, sess, "continue", f'echo ping 1 > /sys/kernel/debug/rkvm/hvc; '
                                                       f'cat /sys/kernel/debug/rkvm/hvc; echo "run 10000" > {GUEST}')
    assert res.ok, res.error
    assert "x0=0x" in open(sess.serial_log, errors="replace").read()[mark:]   # the ping was answered first
    assert "guest exit dabt" in res.output and f"-> IPA {UART_IPA:#x}" in res.output, res.output
    last = js(mi.check("rkvm exit last --json"))
    assert last["guest"] and last["exit"]["reason"] == "dabt" and last["ipa"] == UART_IPA
    assert "last: CPU" in mi.check("rkvm exit catch status")

    f = js(mi.check("rkvm fault --json"))
    assert f["source"] == "live" and f["is_stage2_abort"] and f["write"]
    assert UART_IPA <= f["ipa"] < UART_IPA + 0x1000 and f["in_guest_ram"] is False
    assert f["access"]["size"] == 1 and f["access"]["register"].startswith("w")
    assert f["action"] == "emulate-mmio" and f["walk"]["fault"]["stage"] == 2 and f["walk"]["ipa"] == f["ipa"]
    text = mi.check("rkvm fault --explain")
    assert f"IPA {f['ipa']:#x}" in text and f"of {f['access']['register']}" in text and "ISS.ISV = 1" in text

    # the guest's hypercall, then its WFI (the host's own HVCs between them do not stop these)
    mi.check("rkvm exit catch --reason hvc")
    out = go(mi)
    assert "guest exit hvc" in out and "guest PC" in out, out
    mi.check("rkvm exit catch --reason wfx")
    out = go(mi)
    assert "guest exit wfx" in out and "WFI" in out, out

    # out of the guest: the exit path ends in the host
    mi.check("rkvm exit catch off")
    step = js(mi.check("rkvm step-el2 --max 400 --json", timeout=120))
    tr = step["transition"]
    assert tr and tr["switched"] and not tr["guest"] and tr["to"] == "EL1h"
    assert tr["x0"] == stub_abi.value("RKVM_EXIT_SYNC")
    assert any(s["symbol"] == "rkvm_stub_guest_exit" for s in step["steps"])

    # into the guest: the host's next HVC on that CPU is rkvm.ko's RKVM_HVC_VCPU_RUN (hvc catch: host only)
    mi.check(f"rkvm hvc catch --imm {IMM:#x}")
    out = go(mi)
    assert "RKVM_HVC_VCPU_RUN" in out, out
    mi.check("rkvm hvc catch off")
    text = mi.check("rkvm step-el2 --max 400 --explain", timeout=120)
    assert "ERET to EL1 in the guest, VMID 1, PC 0x" in text, text[-2000:]
    assert "RKVM_HVC_VCPU_RUN saved the host's" in text and "VTTBR_EL2" in text
    mi.check("detach")


def test_fault_in_s2_hole_mode_names_a_level_3_hole_in_guest_ram(installed_lab):
    sess, mi, _ = installed_lab(mode="s2-hole")
    mi.check("rkvm exit catch --reason dabt,iabt")
    res, _ = run_while_typing(mi, sess, "continue", f'echo "run 1000" > {GUEST}')
    assert res.ok, res.error
    f = js(mi.check("rkvm fault --json"))
    assert f["is_stage2_abort"] and f["kind"] == "translation" and f["level"] == 3
    assert f["in_guest_ram"] is True and RAM_IPA <= f["ipa"] < RAM_IPA + RAM_SIZE
    assert f["action"] == "map-page"
    w = f["walk"]["fault"]
    assert w["stage"] == 2 and w["level"] == 3 and "invalid" in w["reason"]
    text = mi.check("rkvm fault")
    assert "stage 2 translation fault at level 3" in text and "guest RAM" in text and "map-page" in text
    mi.check("rkvm exit catch off")
    mi.check("detach")
