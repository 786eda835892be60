"""Guest exits told apart from host HVCs on the live lab, in both traces: `rkvm trace-el` (QEMU's
exception log: no HCR_EL2, the guest is told by its address range) and `rkvm hvc trace --args`
(breakpoints: HCR_EL2.VM at the entry) and `rkvm hvc trace` (the log again). The guest runs from
debugfs; under GDB the host's timer IRQs exit the guest too, hence `run 10000`. One boot: the traces
start where `rkvm exit catch` stopped in the guest's program, so each sees both worlds."""

import re

import pytest

from gdb_rkvm.model import stub_abi
from tests.e2e.test_hvc_commands import run_while_typing

pytestmark = pytest.mark.lab
GUEST = "/sys/kernel/debug/rkvm/guest"
IMM = stub_abi.value("RKVM_HVC_IMM")
VCPU_RUN = stub_abi.value("RKVM_HVC_VCPU_RUN")
RAM_IPA, RAM_SIZE = stub_abi.value("RKVM_GUEST_RAM_IPA"), stub_abi.value("RKVM_GUEST_RAM_SIZE")
# rkvm.ko's RKVM_HVC_VCPU_RUN: `hvc` in vcpu_run_hvc (trace-el names the return address, hvc trace the caller)
HOST_RUN = re.compile(rf"HVC #{IMM:#x} +(at|ELR) 0xffff[0-9a-f]+ <vcpu_run_hvc\+0x[0-9a-f]+>")
FIRST_PRINT = 0xABCD1234   # x1 of the guest's first hypercall (stub/guest.S): a second or later one follows it
HOST_RUN_ELR = re.compile(rf"HVC #{IMM:#x}  ELR 0xffff[0-9a-f]+ <vcpu_run_hvc\+0x[0-9a-f]+>")


def in_guest_ram(pc: int) -> bool:
    return RAM_IPA <= pc < RAM_IPA + RAM_SIZE    # the guest's stage 1 maps its RAM at VA = IPA


def check(mi, cmd, timeout=120):
    res = mi.console(cmd, timeout=timeout)
    assert res.ok, f"{cmd}: {res.error}"
    return res.output


def test_trace_el_and_hvc_trace_label_guest_exits_and_the_hosts_vcpu_run(installed_lab):
    sess, mi, _ = installed_lab()
    # into the guest's program: its first UART store (the greeting has ~60 more, each one exit)
    mi.check("rkvm exit catch --reason dabt")
    res, _ = run_while_typing(mi, sess, "continue", f'echo "run 10000" > {GUEST}')
    assert res.ok and "guest exit dabt" in res.output, res.output + str(res.error)
    mi.check("rkvm exit catch off")

    # the breakpoint timeline: HCR_EL2.VM at each entry; an IRQ exit has no syndrome (ESR_EL2 is stale)
    out = check(mi, "rkvm trace-el --args --count 6 --seconds 60")
    entries = [x for x in out.splitlines() if " -> EL2h  " in x]
    assert [x for x in entries if "guest exit dabt: EC 0x24" in x and "guest PC 0x8000" in x], out
    assert [x for x in entries if "guest exit" not in x and HOST_RUN_ELR.search(x)], out
    assert all("IRQ (no syndrome" in x for x in entries if "guest exit irq" in x), out
    assert re.search(r"ERET at 0x[0-9a-f]+ <rkvm_stub_vcpu_run\+0x[0-9a-f]+> into the guest to 0x8000", out), out

    # the exception log: the host's RKVM_HVC_VCPU_RUN, the ERET into the guest, the guest's exits (the
    # guest runs on until the log's reader stops it: it may reach the end of its program meanwhile)
    out = check(mi, "rkvm trace-el --el2-only --count 10 --seconds 60")
    lines = out.splitlines()
    host_hvcs = [x for x in lines if "EL1 -> EL2" in x and HOST_RUN.search(x)]
    exits = [x for x in lines if "EL1 -> EL2  guest exit: " in x]
    assert host_hvcs and not [x for x in host_hvcs if "guest exit" in x], out
    assert [x for x in exits if "EC 0x24 DABT_LOW" in x and "FAR 0x49000000" in x], out
    assert all(" <" not in x.split("ELR ", 1)[1].split(" -> ")[0] for x in exits), out   # no host symbol
    assert re.search(r"EL2 -> EL1  ERET into the guest at 0x8000[0-9a-f]{4}\n", out), out
    assert re.search(r"EL2 -> EL1  ERET to 0xffff[0-9a-f]+ <vcpu_run_hvc\+", out), out   # back to the host

    # breakpoints from the guest's first hypercall on: its HVC #0 exits among the host's VCPU_RUNs, each
    # paired with the ERET back into its own world (the VCPU_RUN's with the exit reason)
    mi.check("rkvm exit catch --reason hvc")
    res, _ = run_while_typing(mi, sess, "continue", f'echo reset > {GUEST}; echo "run 10000" > {GUEST}')
    assert res.ok and "guest exit hvc" in res.output, res.output + str(res.error)
    for _ in range(4):   # the first run may still be going: on to the second run's first hypercall
        if int(mi.check("p/x $x1").split("=")[1], 16) == FIRST_PRINT:
            break
        assert "guest exit hvc" in check(mi, "continue")
    assert int(mi.check("p/x $x1").split("=")[1], 16) == FIRST_PRINT
    mi.check("rkvm exit catch off")
    out = check(mi, "rkvm hvc trace --args --count 16 --seconds 30")
    host_runs = [x for x in out.splitlines() if f"x0={VCPU_RUN:#x} RKVM_HVC_VCPU_RUN" in x]
    guest_hvcs = [x for x in out.splitlines() if re.match(r"#\d+ +CPU \d  guest exit: HVC #0x0 at guest PC", x)]
    assert host_runs and guest_hvcs, out
    assert all(HOST_RUN.search(x) and "guest exit" not in x for x in host_runs), out
    exit_reasons = {stub_abi.value(f"RKVM_EXIT_{r}") for r in ("SYNC", "IRQ")}
    assert all(int(x.rsplit("-> x0=", 1)[1], 16) in exit_reasons for x in host_runs if "-> x0=" in x), out
    assert all(in_guest_ram(int(re.search(r"guest PC (0x[0-9a-f]+)", x).group(1), 16)) for x in guest_hvcs)
    assert all(re.search(r"-> back in the guest x0=0x[0-9a-f]+$", x) for x in guest_hvcs), out
    summary = out[out.index("CPU  imm16  function"):]
    assert re.search(r"\n\d +0x0 +guest exit +\d+", summary) and "RKVM_HVC_VCPU_RUN" in summary, summary

    # the exception log over the rest of this run and a whole second one (the guest's hypercalls among them)
    res, _ = run_while_typing(mi, sess, "rkvm hvc trace --count 40 --seconds 8",
                              f'echo reset > {GUEST}; echo "run 10000" > {GUEST}')
    assert res.ok, res.error
    out = res.output
    assert re.search(r"guest exit: HVC #0x0 at 0x8000[0-9a-f]{4}  -> EL2 ", out), out
    assert HOST_RUN.search(out) and not [x for x in out.splitlines() if "guest exit" in x and "vcpu_run" in x]
    summary = out[out.index("CPU  class imm16"):]
    assert re.search(r"\n\d +hvc +0x0 +guest exit +\d+", summary), summary
    assert re.search(rf"\n\d +hvc +{IMM:#x} +vcpu_run_hvc\+0x[0-9a-f]+ +\d+", summary), summary
    mi.check("detach")
