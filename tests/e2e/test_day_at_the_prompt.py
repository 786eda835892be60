"""Issue 15, "a day at the (gdb) prompt": what a new user tripped over, each as a command, its output
and an assertion, on the live lab. Tests share boots where the steps follow one another anyway."""

import json
import re
import subprocess
import sys
import threading
import time

import pytest

from gdb_rkvm.qemu import session

from gdb_rkvm.model import stub_abi
from gdb_rkvm.paths import REPO
from tests.conftest import js

pytestmark = pytest.mark.lab
XOR = stub_abi.value("RKVM_PING_XOR")
CHATTER = re.compile(r"^\d+\t|\.S:\d+|in \?\? \(\)|^(?:rkvm_|__finalise|elx_sync)\w* \(\) at ", re.M)


def no_chatter(text: str) -> bool:
    """No line of GDB's own stop printing (source lines, 'func () at file:line', '?? ()')."""
    return CHATTER.search(text) is None


def wait_for_shell(sess):
    log = session.serial_wait(sess, "RKVM-LAB: shell ready", timeout=60)
    session.serial_wait(sess, "/ # ", timeout=30, start=log.index("RKVM-LAB: shell ready"))


def type_once_shell_is_up(sess, line: str):
    """Type `line` into the guest's shell from a thread, once the shell is up; returns the console."""
    console = session.SerialConsole(sess)

    def go():
        wait_for_shell(sess)
        time.sleep(0.3)
        console.send(line + "\n")
    threading.Thread(target=go, daemon=True).start()
    return console


def test_boot_at_el2_from_reset(start_lab, gdb_on):
    """The kernel's EL2 story from reset: no exception yet, the hyp-stub, the ERET down to EL1, the
    kernel's own HVC stepped without GDB's chatter, CPU 1 leaving reset."""
    mi = gdb_on(start_lab())
    esr = js(mi.check("rkvm esr --json"))
    assert esr["never_taken"] and esr["summary"].startswith("no exception taken to EL2 yet")
    sctlr = mi.check("rkvm sysreg SCTLR_EL2")
    assert "M=EL2 MMU off (EL2 addresses are physical)" in sctlr and "M[0] = 0x0" in sctlr
    assert "EOS[11] = 0x0" not in sctlr and "EOS[11] = 0x0" in mi.check("rkvm sysreg SCTLR_EL2 --all")

    hyp = js(mi.check("rkvm run-to boot-hyp-stub --json"))
    assert hyp["cpu"] == 0 and hyp["insn"] == "msr vbar_el2, x0" and hyp["vbar_el2"] == 0
    assert hyp["x0_symbol"] == "__hyp_stub_vectors" and hyp["symbol"].startswith("init_kernel_el+")
    mi.check("stepi")
    assert js(mi.check("rkvm cpus --json"))["cpus"][0]["vbar_el2"] == hyp["x0"]

    eret = js(mi.check("rkvm run-to boot-eret --json"))
    assert eret["insn"] == "eret" and eret["to_mode"] == "EL1h" and eret["spsr"] == 0x3C5
    assert eret["elr_symbol"].startswith("primary_entry+")
    mi.check("stepi")
    cpu0 = js(mi.check("rkvm cpus --json"))["cpus"][0]
    assert cpu0["el"] == 1 and cpu0["pc"] == eret["elr"] and cpu0["vbar_el2_kind"] == "hyp-stub"
    again = mi.console("rkvm run-to boot-eret --cpu 0")
    assert not again.ok and "CPU 0 has passed boot-eret already" in again.error

    mi.check("rkvm hvc catch")
    caught = mi.check("continue")
    assert "x0=0x3 (HVC_FINALISE_EL2)" in caught and "<finalise_el2+" in caught
    mi.check("rkvm hvc catch off")
    res = mi.console("rkvm step-el2")
    assert res.ok and no_chatter(res.output), res.output
    assert res.output.startswith("rkvm: CPU 0 was already at EL2, at 0x")
    assert "EL2h -> EL1h via ERET to" in res.output and "x0 = 0xbadca11" in res.output
    addrs = re.findall(r"^(0x[0-9a-f]+) <", res.output, re.M)
    assert len(addrs) == len(set(addrs)) > 5            # each instruction once

    start = js(mi.check("rkvm run-to cpu-start --json"))
    assert start["cpu"] == 1 and start["symbol"] == "secondary_entry" and start["mode"] == "EL2h"
    cpus = js(mi.check("rkvm cpus --json"))
    assert cpus["cpus"][1]["vbar_el2"] == 0 and cpus["warnings"] == []   # 0 is "not set yet", no disagreement


def test_a_day_at_the_prompt(start_lab, gdb_on):
    sess = start_lab()
    mi = gdb_on(sess)
    first = mi.check("rkvm run-to installed-all", timeout=90)
    # the first stop names the hyp-stub stage that came between reset and rkvm.ko
    assert re.search(r"VBAR_EL2 moved on CPU 0, 1: 0x0 -> 0x[0-9a-f]+ \(the kernel's hyp-stub, set at boot\) -> ",
                     first), first

    # decodes a learner reads
    vbar = mi.check("rkvm sysreg VBAR_EL2")
    assert re.fullmatch(r"VBAR_EL2 = (0x[0-9a-f]+)  <rkvm_vec_cur_sp0_sync> the rkvm EL2 stub", vbar.strip()), vbar
    assert mi.check("rkvm esr 0x96000045").startswith("ESR = 0x96000045  EC 0x25 DABT_CUR")
    # the lower-EL sync slot tests HCR_EL2.VM (host HVC or guest exit), then branches to the HVC handler
    assert "b #0x" in (v := mi.check("rkvm vectors el2 --count 5")) and "<rkvm_stub_el1_sync>" in v
    walk = mi.check("rkvm walk start_kernel")
    assert "unmapped: translation fault" in walk and "init sections" in walk and "free_initmem" in walk
    el2 = mi.check("rkvm walk --regime el2 rkvm_debug")
    assert "EL2 MMU off" in el2 and "is no address at EL2" in el2 and "PA 0xffff" not in el2
    assert js(mi.check("rkvm walk --regime el2 rkvm_debug --json"))["pa"] is None

    # arguments that could never work are refused in one line
    for cmd, words in [("rkvm walk 0xffffffffffffffffffff", "0xffffffffffffffffffff is not a 64-bit address"),
                       ("rkvm hvc catch --imm 0x10000", "an HVC's immediate is 16 bits"),
                       ("rkvm hvc catch --cpu 9", "no CPU 9 (CPUs: 0, 1)"),
                       ("rkvm hvc trace --imm 0x10000", "an HVC's immediate is 16 bits"),
                       ("rkvm step-el2 --max 0", "--max 0: at least 1 instruction"),
                       ("rkvm trace-el --count 0", "--count 0: at least 1 entry")]:
        res = mi.console(cmd)
        assert not res.ok and words in res.error and "\n" not in res.error, (cmd, res.error)

    # rkvm kaslr on a kernel without KASLR reports; modules stay loaded once
    assert "not built with KASLR" in mi.check("rkvm kaslr")
    assert mi.check("info symbol rkvm_debug_event").count("rkvm_debug_event") == 1
    mods = js(mi.check("rkvm modules --load --json"))["modules"]
    assert [m["name"] for m in mods if m["symbols"]] == ["rkvm"]
    assert mi.check("info symbol rkvm_debug_event").count("rkvm_debug_event") == 1

    # step-el2 on an idle guest says what it waits for and how to make an HVC; Ctrl-C is not a timeout
    idle = mi.console("rkvm step-el2 --timeout 2", timeout=30)
    assert not idle.ok and "no HVC entered EL2 within 2 s" in idle.error
    assert "Nothing happens until the guest makes one" in idle.output
    assert "echo ping 1 > /sys/kernel/debug/rkvm/hvc" in idle.output
    result = {}
    worker = threading.Thread(target=lambda: result.update(res=mi.console("rkvm step-el2 --timeout 60", timeout=90)))
    t0 = time.monotonic()
    worker.start()
    time.sleep(2.0)
    mi.interrupt()
    worker.join(60)
    assert not worker.is_alive() and time.monotonic() - t0 < 30
    assert not result["res"].ok and result["res"].error.startswith("rkvm step-el2: interrupted after "), result

    # an armed catch composes with commands that resume; kernel expressions work while a CPU is at EL2
    mi.check("rkvm hvc catch --imm 0x4b")
    console = type_once_shell_is_up(sess, "echo burst 12 > /sys/kernel/debug/rkvm/hvc")
    try:
        caught = mi.check("continue", timeout=90)
        assert "HVC #0x4b from EL1h" in caught and "thread " in caught   # and how to print kernel variables
        here = js(mi.check("rkvm cpus --json"))
        assert any(c["el"] == 2 for c in here["cpus"])
        at_el2 = js(mi.check("rkvm contig rkvm_debug.pages_buf 0x4000 --json"))
        assert at_el2["contiguous"] and len(at_el2["pages"]) == 4
        trace = mi.console("rkvm trace-el --count 2 --args", timeout=60)   # breakpoints: they meet the catch
        assert trace.ok, trace.error
        assert trace.output.count("EL1h -> EL2h") >= 2 and "paused while trace-el ran" in trace.output
        assert "it is armed again" in trace.output
        again = mi.check("continue", timeout=60)                 # the catch still stops
        assert "HVC #0x4b from EL1h" in again
        mi.check("rkvm hvc catch off")
        step = js(mi.check("rkvm step-el2 --json", timeout=60))
        assert step["entered"] == "already at EL2" and step["entry"]["function"] == "RKVM_HVC_PING"
        assert step["transition"]["x0"] == step["entry"]["registers"]["x1"] ^ XOR
        pcs = [s["pc"] for s in step["steps"]]
        assert len(pcs) == len(set(pcs))
        text = mi.console("rkvm step-el2", timeout=60)       # from EL1: runs to the next ping of the burst
        assert text.ok and no_chatter(text.output), text.output
        assert "an HVC entered EL2 after" in text.output and "EL2h -> EL1h via ERET" in text.output
    finally:
        console.close()


def test_triage_nostack_connects_the_dots(lab_built, tmp_path):
    """mode=nostack, a ping on CPU 1 (SP_EL2 0 there): one finding per state, the faulting push named."""
    out = tmp_path / "tr"
    res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--mode", "nostack", "--out", str(out),
                          "--run", "busybox taskset 2 sh -c 'echo ping 1 > /sys/kernel/debug/rkvm/hvc'"],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert res.returncode == 1, res.stdout + res.stderr
    md = (out / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("**Result"))
    assert header == "**Result: 2 finding(s).** el2-parked, el2-stack-unset", header
    assert md.count("`el2-stack-unset`") == 1 and md.count("`el2-parked`") == 1
    # the evidence as the rules wrote it (report.md shows the same lines Markdown-escaped: guest text)
    evidence = "\n".join(e for f in json.loads((out / "report.json").read_text())["findings"] for e in f["evidence"])
    assert "ELR_EL2 0x" in evidence and "<rkvm_stub_ping>: `stp x4, x5, [sp, #-0x10]!`, a store through sp" in evidence
    assert "\\<rkvm\\_stub\\_ping\\>" in md or "\\<rkvm_stub_ping\\>" in md
    assert "FAR_EL2 0xfffffffffffffff0 = SP_EL2 (0x0) - 0x10" in evidence
    assert "vector +0x200 (Current EL with SPx, Synchronous)" in evidence
    assert "SP_EL2 can only be set by code running at EL2" in md
    assert "CPU 1: SP_EL2 = 0x0" in md and re.search(r"CPU 0: SP_EL2 = 0x[0-9a-f]+: left over from early boot", md)


def test_triage_refuses_quickly(lab_built, tmp_path):
    for args, words in [(["--until", "event:bogus"], "--until event:bogus: no such rkvm.ko event"),
                        (["--attach", "127.0.0.1:1"], "--attach 127.0.0.1:1: cannot connect to QEMU's gdbstub at "
                                                      "127.0.0.1:1 (Connection refused)")]:
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "gdb_rkvm.host.cli", "triage", "--out", str(tmp_path / "t"), *args],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and time.monotonic() - t0 < 5, (args, res.stderr)
        said = res.stdout + res.stderr
        assert said.count(words) == 1, said                # said once, not twice
        assert res.stderr.strip().count("\n") == 0


def test_shell_types_into_the_guest(lab_built, start_lab, tmp_path):
    """`guest TEXT` in rkvm shell types into the guest's shell; the next resume runs it."""
    import io

    from gdb_rkvm.host.shell import Shell, run_lines
    from gdb_rkvm.host.mi import GdbMi

    sess = start_lab()
    printed = []
    lines = ("rkvm run-to installed-all", "guest", "guest echo ping 0x33 > /sys/kernel/debug/rkvm/hvc",
             "rkvm step-el2 --timeout 60", "quit")
    with GdbMi() as mi:
        shell = Shell(mi, sess)
        assert run_lines(shell, io.StringIO("\n".join(lines) + "\n"), printed.append) == 0
    out = "".join(printed)
    assert "usage: guest TEXT" in out
    assert "typed into the guest: echo ping 0x33 > /sys/kernel/debug/rkvm/hvc" in out
    assert "x0 = 0x524b0001 (RKVM_HVC_PING), x1 = 0x33" in out and f"x0 = {0x33 ^ XOR:#x}" in out
    assert shell.toolbar.startswith("CPU0 EL1h")
