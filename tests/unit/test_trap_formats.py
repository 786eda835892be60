"""The text of hvc/smc catch, hvc last, hvc trace, step-el2, trace-el and run-to, from hand-made
Trap records and results: format() without GDB or QEMU."""

import argparse
import json
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from tests.unit import fake_gdb

fake_gdb.install()

from gdb_rkvm.arch import vectors  # noqa: E402
from gdb_rkvm.commands import base, hvc, run_to, step_el2, trace_el  # noqa: E402
from gdb_rkvm.live import trap  # noqa: E402
from gdb_rkvm.model import stub_abi  # noqa: E402
from tests.unit.test_trap import ELR, SPSR_EL1H, VBAR, hvc_esr, regs  # noqa: E402

PING = stub_abi.value("RKVM_HVC_PING")
ENTRY = trap.entry(1, VBAR + 0x400, VBAR, regs(hvc_esr(0x4B), PING, x1=0x77),
                   symbol={ELR - 4: "rkvm_hvc+0x38", ELR: "rkvm_hvc+0x3c"}.get,
                   el2_symbol=lambda pa: "rkvm_vec_lower64_sync")
SMC = trap.smc_site(0, 0xFFFF80008001A174, 0, {"cpsr": SPSR_EL1H, **{f"x{n}": 0 for n in range(8)},
                                                "x0": 0x84000008}, hcr_el2=0, symbol=lambda a: "__arm_smccc_smc+0x4")


def command(cls):
    return object.__new__(cls)   # format() needs no gdb.Command behind it


def args(**kw):
    return argparse.Namespace(**{"json": False, "explain": False, **kw})


def test_caught_hvc_names_caller_call_and_handler():
    text = hvc.format_trap(ENTRY)
    assert text.splitlines()[0] == f"rkvm: CPU 1: HVC #0x4b from EL1h at {ELR - 4:#x} <rkvm_hvc+0x38>"
    assert f"x0={PING:#x} (RKVM_HVC_PING) x1=0x77" in text
    assert text.splitlines()[-1] == (f"  entered EL2 at {VBAR + 0x400:#x} <rkvm_vec_lower64_sync> "
                                     f"(Lower EL using AArch64, Synchronous), ESR_EL2 {hvc_esr(0x4B):#x}")
    assert command(hvc.RkvmHvcLast).format(ENTRY, args()) == text


def test_caught_smc_says_it_has_not_run_and_where_it_goes():
    lines = hvc.format_trap(SMC).splitlines()
    assert lines[0] == "rkvm: CPU 0: SMC #0x0 from EL1h at 0xffff80008001a174 <__arm_smccc_smc+0x4>"
    assert lines[3].startswith("  PSCI SYSTEM_OFF")
    assert "it goes to EL3, which QEMU plays" in lines[-1]


def test_hvc_last_json_is_the_published_dict():
    out = json.loads(json.dumps(ENTRY, default=base._json_default))
    assert out["is_hvc"] and out["imm16"] == 0x4B and out["registers"]["x1"] == 0x77
    assert out["function"] == "RKVM_HVC_PING" and out["handler_symbol"] == "rkvm_vec_lower64_sync"


def test_catch_hint_only_with_a_cpu_at_el1():
    assert hvc.catch_hint(None) == ""
    assert "with 'thread 2'" in hvc.catch_hint(1)


def test_catch_formats():
    catch = command(hvc.RkvmHvcCatch)
    armed = {"armed": True, "filter": "imm16 == 0x4b", "addresses": [VBAR + 0x400], "smc_sites": []}
    assert catch.format(armed, args()) == f"rkvm: catching HVCs (imm16 == 0x4b) at {VBAR + 0x400:#x}"
    nowhere = dict(armed, addresses=[], smc_sites=[1, 2])
    assert catch.format(nowhere, args()).splitlines() == [
        "rkvm: catching HVCs (imm16 == 0x4b) at nowhere yet (VBAR_EL2 not set: re-armed at each stop)",
        "rkvm: catching SMCs (imm16 == 0x4b) at the kernel's 2 SMC instructions"]
    smc = command(hvc.RkvmSmcCatch)
    assert smc.format(dict(armed, smc_sites=[1]), args()) == \
        "rkvm: catching SMCs (imm16 == 0x4b) at the kernel's 1 SMC instructions"
    assert smc.format({"armed": False, "addresses": []}, args()) == "rkvm: smc catch off"


def test_trace_line_row_and_summary():
    done = replace(ENTRY, ret=0x524B564D)
    assert hvc.format_trace_line(1, done) == (f"#1    CPU 1  HVC #0x4b at {ELR - 4:#x} <rkvm_hvc+0x38>  "
                                              f"x0={PING:#x} RKVM_HVC_PING x1=0x77 -> x0=0x524b564d")
    assert hvc.trace_row(1, done) == {"n": 1, "cpu": 1, "caller": ELR - 4, "caller_symbol": "rkvm_hvc+0x38",
                                      "imm16": 0x4B, "x0": PING, "x1": 0x77, "ret": 0x524B564D,
                                      "function": "RKVM_HVC_PING", "guest": False}
    summary = hvc.summarize([done, ENTRY])
    assert summary == [{"cpu": 1, "imm16": 0x4B, "function": "RKVM_HVC_PING", "count": 2}]
    text = command(hvc.RkvmHvcTrace).format({"source": "breakpoints", "summary": summary, "total": 2,
                                             "seconds": 0.4}, args())
    assert text.splitlines()[1].split() == ["1", "0x4b", "RKVM_HVC_PING", "2"]
    assert text.splitlines()[-1] == "total 2 traps in 0.4 s"


@given(count=st.integers(1, 5), traps=st.integers(0, 8))
def test_trace_collector_keeps_at_most_count_and_stops_at_it(count, traps):
    log = []
    on_trap = hvc.trace_collector(log, count, live=False)
    stops = [on_trap(ENTRY) for _ in range(traps)]
    assert len(log) == min(count, traps)
    assert stops == [n + 1 >= count for n in range(traps)]


def test_step_el2_format_with_entry_and_transition():
    r = {"cpu": 1, "entered": "already at EL2", "waited": 0.0, "start_pc": VBAR + 0x400,
         "start_symbol": "rkvm_vec_lower64_sync", "entry": ENTRY, "steps_repeated": 0,
         "steps": [{"pc": VBAR + 0x400, "symbol": "rkvm_vec_lower64_sync", "insn": "b #0x40a60b00",
                    "changed": {}, "note": "branch taken"}],
         "transition": {"from": "EL2h", "to": "EL1h", "via": "ERET", "pc": ELR, "symbol": "rkvm_hvc+0x3c",
                        "spsr": SPSR_EL1H, "spsr_summary": "EL1h", "x0": 0x5}}
    lines = command(step_el2.RkvmStepEl2).format(r, args()).splitlines()
    assert lines[0].startswith("rkvm: CPU 1 was already at EL2, at 0x40a60400 <rkvm_vec_lower64_sync>")
    assert lines[1] == (f"  entry: EC 0x16 HVC64: HVC #0x4b from EL1h at {ELR - 4:#x} <rkvm_hvc+0x38>, "
                        f"x0 = {PING:#x} (RKVM_HVC_PING), x1 = 0x77")
    assert lines[-1].startswith(f"EL2h -> EL1h via ERET to {ELR:#x} <rkvm_hvc+0x3c>")
    assert json.loads(json.dumps(r, default=base._json_default))["entry"]["caller"] == ELR - 4


def test_trace_el_breakpoint_timeline():
    events = []
    on_trap = trace_el.timeline_collector(events, 1)
    ret = trap.eret(1, VBAR + 0xB40, {"SPSR_EL2": SPSR_EL1H, "ELR_EL2": ELR, "x0": 0x5},
                    symbol=lambda a: "rkvm_hvc+0x3c", el2_symbol=lambda pa: "rkvm_stub_ping+0x20")
    assert on_trap(ENTRY) is False and on_trap(ret) is True
    assert events[0]["slot_offset"] == 0x400 and events[0]["esr_summary"] == "EC 0x16 HVC64: HVC #0x4b"
    assert events[1]["to"] == "EL1h" and events[1]["eret_symbol"] == "rkvm_stub_ping+0x20"
    lines = command(trace_el.RkvmTraceEl).format({"source": "breakpoints", "events": events},
                                                 args(explain=False)).splitlines()
    assert lines[0] == (f"CPU 1  EL1h -> EL2h  Lower EL using AArch64, Synchronous  EC 0x16 HVC64: HVC #0x4b  "
                        f"ELR {ELR:#x} <rkvm_hvc+0x3c>")
    assert lines[1] == (f"CPU 1  EL2h -> EL1h  ERET at {VBAR + 0xB40:#x} <rkvm_stub_ping+0x20> to "
                        f"{ELR:#x} <rkvm_hvc+0x3c>  x0=0x5")


@given(offset=st.integers(-0x1000, 0x2000))
def test_short_slot_names_the_16_slots_and_nothing_else(offset):
    name = trace_el.short_slot(offset)
    if 0 <= offset < vectors.TABLE_SIZE:
        group, kind = name.split()
        assert group == ("cur-sp0", "cur-spx", "lower64", "lower32")[offset // 0x200]
        assert kind == ("sync", "irq", "fiq", "serror")[offset % 0x200 // 0x80]
    else:
        assert name == "not a vector slot"
    assert trace_el.short_slot(None) == "?"


def test_run_to_formats_a_debug_event():
    ev = stub_abi.DebugEvent.from_registers(stub_abi.EVENTS["installed-all"], 0, 0x40A60000, 2)
    text = command(run_to.RkvmRunTo).format(ev.to_dict(), args())
    assert text == "rkvm: installed-all on cpu 0: stub at PA 0x40a60000, arg 0x2"


def test_run_to_formats_a_boot_event():
    d = {"event": "boot-eret", "cpu": 0, "pc": 0x4046D42C, "symbol": "init_kernel_el+0x9c", "mode": "EL2h",
         "insn": "eret", "elr": 0xFFFF800080016D24, "elr_symbol": "finalise_el2+0x24", "to_mode": "EL1h",
         "spsr": SPSR_EL1H, "vbar_el2": 0x4046E000}
    text = command(run_to.RkvmRunTo).format(d, args())
    assert text.startswith("rkvm: boot-eret on cpu 0: at 0x4046d42c <init_kernel_el+0x9c> (EL2h): `eret`")
