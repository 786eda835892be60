"""Guest exits on Trap records: the filter over every ESR_EL2.EC and vector slot, `rkvm exit catch`'s
line, the labels in `hvc trace` and `trace-el`, step-el2's world line and `rkvm fault`'s screen."""

import argparse

from hypothesis import given
from hypothesis import strategies as st

from tests.unit import fake_gdb

fake_gdb.install()

from gdb_rkvm.arch import exits, stage2_fault  # noqa: E402
from gdb_rkvm.arch.two_stage import Stage1Regs, Stage2Regs, walk_guest  # noqa: E402
from gdb_rkvm.commands import exit_catch, fault, hvc, step_el2, trace_el  # noqa: E402
from gdb_rkvm.live import trap  # noqa: E402
from gdb_rkvm.live.guest_fault import LIVE, RECORD, FaultReport, guest_ram  # noqa: E402
from tests.unit.test_trap import VBAR, regs  # noqa: E402

HCR_GUEST, HCR_HOST = 0x80000001, 0x80000000     # RW | VM, RW
GUEST_PC = 0x800000F4
DABT_UART = 0x93010045   # strb w1 to the UART: ISV, SAS 0 (byte), SRT 1, WnR, stage 2 translation fault level 1
FAR, HPFAR = 0x49000000, 0x90000


def guest_entry(esr: int, slot: int = 0x400, guest: bool = True, **more) -> trap.Trap:
    values = {**regs(esr, 0), "ELR_EL2": GUEST_PC, "HCR_EL2": HCR_GUEST if guest else HCR_HOST, **more}
    return trap.entry(0, VBAR + slot, VBAR, values)


@given(ec=st.integers(0, 0x3F), iss=st.integers(0, (1 << 25) - 1), slot=st.sampled_from([0x400, 0x480, 0x500, 0x580]),
       guest=st.booleans(), reason=st.sampled_from(exits.REASON_NAMES))
def test_exit_filter_over_every_ec(ec, iss, slot, guest, reason):
    tr = guest_entry((ec << 26) | (1 << 25) | iss, slot, guest)
    flt = trap.TrapFilter(classes=None, guest=True, reasons=frozenset({reason}))
    expected = exits.classify(tr.esr, ("sync", "irq", "fiq", "serror")[(slot - 0x400) // 0x80]).reason.value
    assert flt.matches(tr) == (guest and expected == reason)
    # a host's trap is never a guest exit, and `hvc catch` (guest=False) never takes a guest's
    assert (tr.exit is None) == (not guest)
    assert trap.TrapFilter(classes=None, guest=False).matches(tr) == (not guest)
    line = exit_catch.format_exit(tr)
    assert line.startswith("rkvm: CPU 0: ") and "\n" not in line
    assert ("guest exit " + expected) in line if guest else "not a guest exit" in line


def test_exit_line_for_the_uart_store_names_pc_far_hpfar_and_ipa():
    tr = guest_entry(DABT_UART, FAR_EL2=FAR, HPFAR_EL2=HPFAR)
    assert tr.ipa == 0x09000000 and tr.exit.reason is exits.ExitReason.DABT
    line = exit_catch.format_exit(tr)
    assert line.startswith("rkvm: CPU 0: guest exit dabt: ") and f"(ESR_EL2 {DABT_UART:#x})" in line
    assert line.endswith(f"guest PC {GUEST_PC:#x} (ELR_EL2), FAR_EL2 0x49000000, HPFAR_EL2 0x90000 -> IPA 0x9000000")
    d = tr.to_json()
    assert d["guest"] and d["exit"]["reason"] == "dabt" and d["ipa"] == 0x09000000


def test_guest_hvc_is_labelled_a_guest_exit_and_named_without_host_symbols():
    hv = trap.named(guest_entry(0x5A000000), lambda a: "kernel_symbol", None)
    assert hv.caller_symbol is None and hv.elr_symbol is None
    assert f"guest PC {GUEST_PC - 4:#x} (ELR_EL2 {GUEST_PC:#x})" in exit_catch.format_exit(hv)
    assert "guest exit: HVC #0x0 at guest PC" in hvc.format_trace_line(1, hv)
    assert hvc.summarize([hv])[0]["function"] == hvc.GUEST_EXIT
    assert trace_el.timeline_event(hv)["exit_reason"] == "hvc"
    irq = guest_entry(0, slot=0x480)
    assert "guest exit irq: physical IRQ" in exit_catch.format_exit(irq)


def test_the_exception_log_tells_a_guest_exit_by_its_address():
    entry = {"kind": "entry", "from_el": 1, "to_el": 2, "elr": GUEST_PC}
    assert trace_el.log_world(entry)
    assert not trace_el.log_world({**entry, "elr": 0xFFFF800080016D24})
    assert trace_el.log_world({"kind": "return", "from_el": 2, "to_el": 1, "pc": 0x80000000})
    assert not exits.in_guest_by_address(0, GUEST_PC)   # the host's EL0 is not the guest


def test_status_and_off():
    ec = object.__new__(exit_catch.RkvmExitCatch)
    a = argparse.Namespace(json=False)
    assert ec.format({"armed": False, "addresses": []}, a) == "rkvm: exit catch off"
    on = {"armed": True, "filter": "exit reason dabt", "addresses": [VBAR + 0x400, VBAR + 0x480]}
    assert ec.format(on, a) == f"rkvm: catching guest exits (exit reason dabt) at {VBAR + 0x400:#x}, {VBAR + 0x480:#x}"
    st_ = {**on, "last": guest_entry(0x04000001)}
    assert "guest exit wfx" in ec.format(st_, a)
    assert "no exit catch armed" in exit_catch.format_status({"armed": False, "last": None})
    assert exit_catch.parse_reasons("dabt, WFX") == frozenset({"dabt", "wfx"})


def test_step_el2_world_lines():
    into = {"guest": True, "vmid": 1, "pc": 0x80000000, "spsr": 0x3C5, "symbol": None}
    assert step_el2.world_line(into) == "ERET to EL1 in the guest, VMID 1, PC 0x80000000"
    back = {"guest": False, "vmid": None, "pc": 0xFFFF800078540064, "spsr": 0x3C5, "symbol": "rkvm_vcpu_run+0x24"}
    assert step_el2.world_line(back).startswith("ERET to EL1 in the host, PC 0xffff800078540064 <rkvm_vcpu_run+0x24>")
    assert "host save area" in step_el2.switch_explained(into, ["HCR_EL2", "HCR_EL2"])[0]
    assert step_el2.switch_explained(back, ["HCR_EL2", "VTTBR_EL2"])[1].endswith("HCR_EL2, VTTBR_EL2.")


def _tables():
    """A guest whose MMU is off (VA = IPA) and a stage 2 with one empty level-1 table (4K, 40-bit IPA)."""
    mem = {}

    def read(pa, size):
        return mem.get(pa, 0).to_bytes(8, "little")[:size]
    vtcr = 0x80043560 & ~0x3F | 24   # T0SZ 24: 40-bit IPA, SL0 = 1 (start at level 1)
    return read, Stage2Regs(0x1000040E70000, vtcr), Stage1Regs(0, 0, 0, 0)


def report(esr, far, hpfar, source=LIVE) -> FaultReport:
    read, s2, s1 = _tables()
    walk = walk_guest(far, s1, s2, read, "w")
    f = stage2_fault.autopsy(esr, far, hpfar, list(guest_ram()), walk)
    return FaultReport(0, source, 0x40C54000, None if source == LIVE else 7, GUEST_PC, 1, 1, guest_ram(), f)


def test_fault_screen_for_mmio_names_ipa_register_size_and_action():
    r = report(DABT_UART, 0x09000000, HPFAR)
    text = fault.format_fault(r)
    assert "stopped at the exit" in text and "guest VMID 1" in text
    assert "VA 0x9000000 -> IPA 0x9000000: 1-byte write of w1" in text
    assert "stage 2 translation fault at level 1" in text and "not guest RAM" in text
    assert "emulate-mmio" in text and "descriptor   stage 2 L1" in text
    assert "ISS.ISV = 1" in fault.format_fault(r, explain=True)
    assert r.to_json()["action"] == "emulate-mmio" and r.to_json()["ipa"] == 0x09000000


def test_fault_screen_for_a_hole_in_guest_ram_says_map_the_page():
    esr = 0x93C00047 | (1 << 6)   # ISV, SAS 3, SRT 0, SF, WnR, level 3 translation fault
    r = report(esr, 0x8000FFF0, 0x8000F0, source=RECORD)   # HPFAR_EL2.FIPA = IPA >> 12, at [43:4]
    text = fault.format_fault(r)
    assert "the vCPU's last exit record (exit #7)" in text
    assert "stage 2 translation fault at level 3" in text and "IPA 0x8000fff0  guest RAM" in text
    assert "map-page" in text
    assert "the syndrome says stage 2 level 3; the tables now say stage 2 level 1" in text
