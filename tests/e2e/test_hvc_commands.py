"""`rkvm stub`, `hvc catch`, `step-el2`, `hvc trace`, `trace-el` on the live lab, driven by real HVCs
that the guest issues through rkvm.ko's debugfs file."""

import re
import threading

import pytest

from gdb_rkvm.qemu import session

from gdb_rkvm.model import stub_abi
from tests.conftest import js

pytestmark = pytest.mark.lab
IMM = stub_abi.value("RKVM_HVC_IMM")
XOR = stub_abi.value("RKVM_PING_XOR")


def run_while_typing(mi, sess, command: str, line: str, timeout: float = 90):
    """Run a GDB command that resumes the guest; once the guest's shell is up, type `line` into it."""
    result = {}
    mark = len(open(sess.serial_log, "rb").read())
    worker = threading.Thread(target=lambda: result.update(res=mi.console(command, timeout=timeout)))
    worker.start()
    log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60, start=0)
    session.serial_wait(sess, "/ # ", timeout=30, start=log.index("RKVM-LAB: shell ready"))  # the prompt
    with session.SerialConsole(sess) as console:
        console.send(line + "\n")
        worker.join(timeout)
    assert not worker.is_alive(), f"{command} did not return"
    return result["res"], mark


def test_stub_symbols_at_the_physical_address(installed_lab):
    _, mi, event = installed_lab()
    r = js(mi.check("rkvm stub --json"))
    assert [c["installed"] for c in r["cpus"]] == [True, True]
    assert r["stub_pa"] == event["stub_pa"]
    assert "rkvm_vec_lower64_sync in section .text" in mi.check("info symbol $VBAR_EL2 + 0x400")
    addr = int(mi.check("p/x &rkvm_stub_ping").split("=")[1].split()[0], 16)
    assert event["stub_pa"] <= addr < event["stub_pa"] + 0x1000
    assert "el2_stub.S" in mi.check("info line *($VBAR_EL2 + 0xb00)")


def test_catch_a_ping_then_step_it_back_to_el1(installed_lab):
    sess, mi, _ = installed_lab()
    armed = mi.check(f"rkvm hvc catch --imm {IMM:#x}")
    assert f"imm16 == {IMM:#x}" in armed
    res, mark = run_while_typing(mi, sess, "continue", "echo ping 0x77 > /sys/kernel/debug/rkvm/hvc; "
                                                       "cat /sys/kernel/debug/rkvm/hvc")
    assert res.ok, res.error
    assert f"HVC #{IMM:#x} from EL1h" in res.output and "<rkvm_hvc+" in res.output
    tr = js(mi.check("rkvm hvc last --json"))
    assert tr["is_hvc"] and tr["imm16"] == IMM and tr["caller_symbol"].startswith("rkvm_hvc")
    assert tr["registers"]["x0"] == stub_abi.value("RKVM_HVC_PING") and tr["registers"]["x1"] == 0x77
    assert tr["function"] == "RKVM_HVC_PING" and tr["handler_symbol"] == "rkvm_vec_lower64_sync"
    mi.check("rkvm hvc catch off")
    step = js(mi.check("rkvm step-el2 --json", timeout=60))
    assert step["entered"] == "already at EL2"
    mnemonics = [s["insn"].split()[0] for s in step["steps"]]
    assert mnemonics[-1] == "eret" and "mrs" in mnemonics
    assert any(s["symbol"] == "rkvm_stub_ping" for s in step["steps"])
    tr2 = step["transition"]
    assert tr2["from"] == "EL2h" and tr2["to"] == "EL1h"
    assert tr2["pc"] == tr["caller"] + 4          # back right after the hvc
    assert tr2["x0"] == 0x77 ^ XOR
    # the guest reads back the same x0
    mi.check("detach")
    log = session.serial_wait(sess, "\nx0=0x", timeout=30, start=mark)
    m = re.search(r"\nx0=(0x[0-9a-f]+) x1=", log)
    assert int(m.group(1), 16) == tr2["x0"]


def test_trace_twenty_pings(installed_lab):
    sess, mi, _ = installed_lab()
    res, _ = run_while_typing(mi, sess, "rkvm hvc trace --args --count 20 --seconds 60",
                              "echo burst 20 > /sys/kernel/debug/rkvm/hvc", timeout=120)
    assert res.ok, res.error
    lines = [x for x in res.output.splitlines() if x.startswith("#")]
    assert len(lines) == 20
    for n, line in enumerate(lines):
        assert f"x1={n:#x} -> x0={n ^ XOR:#x}" in line, line   # burst N pings with x1 = 0..N-1
    assert "total 20 traps" in res.output
    assert re.search(r"RKVM_HVC_PING\s+20", res.output)


def test_trace_el_timeline(installed_lab):
    sess, mi, _ = installed_lab()
    res, _ = run_while_typing(mi, sess, "rkvm trace-el --args --count 2 --json",
                              "echo burst 2 > /sys/kernel/debug/rkvm/hvc")
    events = js(res.output)["events"]
    kinds = [e["kind"] for e in events]
    assert kinds == ["entry", "return", "entry", "return"]
    assert events[0]["from"] == "EL1h" and events[0]["slot_offset"] == 0x400
    assert events[0]["esr_summary"] == f"EC 0x16 HVC64: HVC #{IMM:#x}"
    assert events[1]["to"] == "EL1h" and events[1]["elr"] == events[0]["elr"]
    assert events[1]["eret_symbol"].startswith("rkvm_stub_ping")


def test_stub_in_vmalloc_mode_explains_the_wrong_vbar(start_lab, gdb_on):
    mi = gdb_on(start_lab(mode="vmalloc"))
    mi.check("rkvm run-to installed-cpu", timeout=90)
    r = js(mi.check("rkvm stub --json"))
    written = int(mi.check("p/x rkvm_debug.vbar_written").split("=")[1], 16)
    cpu = next(c for c in r["cpus"] if c["vbar_el2"] == written)
    assert not cpu["installed"]
    assert "virt_to_phys(" in cpu["why_not"] and "a modules address" in cpu["why_not"]
    assert "<rkvm_stub_blob>" in cpu["why_not"]
    assert f"the stub page is at PA {r['stub_pa']:#x}" in cpu["why_not"]


def test_catch_armed_at_reset_follows_the_install(start_lab, gdb_on):
    """Armed before any vectors exist, the catch moves to the stub when rkvm.ko installs it, then
    catches the module's own first rkvm HVC (RKVM_HVC_SET_STACK on that CPU)."""
    mi = gdb_on(start_lab())
    assert "nowhere yet" in mi.check(f"rkvm hvc catch --imm {IMM:#x}")
    moved = mi.console("continue", timeout=90)
    assert moved.ok and "hvc catch moves there" in moved.output, moved.output
    caught = mi.console("continue", timeout=90)
    assert f"HVC #{IMM:#x} from EL1h" in caught.output, caught.output
    tr = js(mi.check("rkvm hvc last --json"))
    assert tr["function"] == "RKVM_HVC_SET_STACK" and tr["caller_symbol"].startswith("rkvm_hvc")
