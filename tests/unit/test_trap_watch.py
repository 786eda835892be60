"""live/trap_watch.py's decisions at a hit (filter, deadline, pairing entries with their ERET,
stopping when the callback says so), on registers from a fake reader: no GDB, no QEMU."""

import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit import fake_gdb

fake_gdb.install()

from gdb_rkvm.errors import RkvmError  # noqa: E402
from gdb_rkvm.live import trap, trap_watch  # noqa: E402
from gdb_rkvm.live.trap import ENTRY, RETURN, SMC_SITE, TrapFilter  # noqa: E402
from tests.unit.test_trap import ELR, SPSR_EL1H, VBAR, hvc_esr  # noqa: E402


class FakeTarget:
    """Registers of the CPU that hit the breakpoint, and kernel symbols; counts what was read."""

    def __init__(self, monkeypatch, cpu=0, **registers):
        self.cpu, self.reads, self.symbol_lookups = cpu, 0, 0
        self.regs = {"ESR_EL2": hvc_esr(0x4B), "ELR_EL2": ELR, "SPSR_EL2": SPSR_EL1H, "cpsr": SPSR_EL1H,
                     "HCR_EL2": 0, **{f"x{n}": n for n in range(8)}, **registers}
        monkeypatch.setattr(trap_watch.el2_traps, "current_cpu", lambda: self.cpu)
        monkeypatch.setattr(trap_watch.t, "read_current", self.read_current)
        monkeypatch.setattr(trap_watch.t, "read_register", lambda name, cpu=None: self.regs[name])
        monkeypatch.setattr(trap_watch.t, "symbol_at", self.symbol_at)
        monkeypatch.setattr(trap_watch.kernel_facts, "landmarks", lambda vbars: None)
        monkeypatch.setattr(trap_watch.kernel_facts, "el2_symbol", lambda pa, marks: f"el2+{pa - VBAR:#x}")

    def read_current(self, names):
        self.reads += 1
        return {n: self.regs[n] for n in names}

    def symbol_at(self, addr):
        self.symbol_lookups += 1
        return f"k+{addr & 0xFFF:#x}"


class FakeDeadline:
    def __init__(self, passed=False):
        self.is_passed = passed

    def passed(self):
        return self.is_passed


def point(role, pa=None, vbar=VBAR, va=None, imm=None):
    return types.SimpleNamespace(role=role, pa=pa, vbar=vbar, va=va, imm=imm)


ENTRY_BP = point(ENTRY, pa=VBAR + 0x400)
ERET_BP = point(RETURN, pa=VBAR + 0xB40)


def test_an_entry_the_filter_takes_goes_to_the_callback_named(monkeypatch):
    FakeTarget(monkeypatch, cpu=1)
    got = []
    watch = trap_watch.TrapWatch(lambda tr: got.append(tr) or True)
    assert watch.hit(ENTRY_BP) is True
    (tr,) = got
    assert tr.cpu == 1 and tr.imm16 == 0x4B and tr.caller == ELR - 4 and tr.slot_offset == 0x400
    assert tr.caller_symbol == f"k+{(ELR - 4) & 0xFFF:#x}" and tr.handler_symbol == "el2+0x400"
    assert tr.registers == tuple(range(8))


def test_a_filtered_out_entry_is_not_named_and_does_not_stop(monkeypatch):
    target = FakeTarget(monkeypatch)
    watch = trap_watch.TrapWatch(lambda tr: pytest.fail("callback called"), trap_filter=TrapFilter(imm=0x1))
    assert watch.hit(ENTRY_BP) is False
    assert target.symbol_lookups == 0 and target.reads == 1   # the hot path: one batch of registers


def test_the_deadline_stops_before_reading_anything(monkeypatch):
    target = FakeTarget(monkeypatch)
    watch = trap_watch.TrapWatch(lambda tr: pytest.fail("callback called"), deadline=FakeDeadline(passed=True))
    assert watch.hit(ENTRY_BP) is True and watch.done and target.reads == 0


def test_paired_returns_hand_on_the_entry_with_the_returned_x0(monkeypatch):
    target = FakeTarget(monkeypatch, cpu=0)
    got = []
    watch = trap_watch.TrapWatch(lambda tr: got.append(tr) or False, returns=trap_watch.PAIRED)
    assert watch.hit(ERET_BP) is False and got == []          # an ERET with no entry seen: nothing
    assert watch.hit(ENTRY_BP) is False and got == []         # the entry waits for its ERET
    target.regs["x0"] = 0x524B564D
    assert watch.hit(ERET_BP) is False
    assert [(t.kind, t.ret, t.imm16) for t in got] == [(ENTRY, 0x524B564D, 0x4B)]


def test_paired_returns_follow_the_world_each_eret_returns_to(monkeypatch):
    """The host's RKVM_HVC_VCPU_RUN returns at the guest's exit (the ERET with HCR_EL2.VM = 0), not at
    the ERET into the guest between them; a guest's HVC returns at the ERET back into the guest."""
    target = FakeTarget(monkeypatch, cpu=1, FAR_EL2=0, HPFAR_EL2=0)
    got = []
    watch = trap_watch.TrapWatch(lambda tr: got.append(tr) or False, returns=trap_watch.PAIRED)
    watch.hit(ENTRY_BP)                                       # the host's VCPU_RUN (HCR_EL2.VM = 0)
    target.regs.update(HCR_EL2=1, x0=0x1234)                  # the ERET into the guest: VM = 1
    assert watch.hit(ERET_BP) is False and got == []
    target.regs.update(ESR_EL2=hvc_esr(0), ELR_EL2=0x800000BC, x0=1)
    watch.hit(ENTRY_BP)                                       # the guest's HVC #0: a guest exit
    target.regs.update(HCR_EL2=0, x0=1)                       # the exit's ERET to the host: RKVM_EXIT_SYNC
    watch.hit(ERET_BP)
    assert [(t.guest, t.imm16, t.ret) for t in got] == [(False, 0x4B, 1)]
    target.regs.update(ESR_EL2=hvc_esr(0x4B), ELR_EL2=ELR)
    watch.hit(ENTRY_BP)                                       # the next VCPU_RUN
    target.regs.update(HCR_EL2=1, x0=0)                       # into the guest with the hypercall's result
    watch.hit(ERET_BP)
    assert [(t.guest, t.imm16, t.ret) for t in got] == [(False, 0x4B, 1), (True, 0, 0)]


def test_each_return_is_its_own_record(monkeypatch):
    FakeTarget(monkeypatch, cpu=2, x0=7)
    got = []
    watch = trap_watch.TrapWatch(got.append, returns=trap_watch.EACH, trap_filter=trap.ANY_TRAP)
    watch.hit(ENTRY_BP)
    watch.hit(ERET_BP)
    assert [t.kind for t in got] == [ENTRY, RETURN]
    assert got[1].ret == 7 and got[1].handler_symbol == "el2+0xb40" and got[1].elr_symbol


def test_an_smc_site_reads_hcr_and_is_filtered_like_an_hvc(monkeypatch):
    FakeTarget(monkeypatch, cpu=0, HCR_EL2=1 << 19)
    got = []
    watch = trap_watch.TrapWatch(lambda tr: got.append(tr) or True, smc_sites=True)
    site = point(SMC_SITE, vbar=None, va=0xFFFF80008001A174, imm=0)
    assert watch.hit(site) is True
    assert got[0].smc_goes_to == "EL2 (HCR_EL2.TSC traps it)" and got[0].caller == 0xFFFF80008001A174
    other = trap_watch.TrapWatch(lambda tr: pytest.fail("callback"), trap_filter=TrapFilter(imm=1))
    assert other.hit(site) is False


def test_unreadable_hcr_means_el3(monkeypatch):
    FakeTarget(monkeypatch)

    def unreadable(name, cpu=None):
        raise RkvmError("HCR_EL2 is not among the registers")
    monkeypatch.setattr(trap_watch.t, "read_register", unreadable)
    got = []
    trap_watch.TrapWatch(lambda tr: got.append(tr) or True).hit(point(SMC_SITE, vbar=None, va=0x1000, imm=0))
    assert got[0].smc_goes_to == "EL3"


@given(imm=st.integers(0, 0xFFFF), cpu=st.integers(0, 3), want_imm=st.none() | st.integers(0, 0xFFFF),
       want_cpu=st.none() | st.integers(0, 3))
def test_hit_stops_exactly_on_the_filtered_traps(imm, cpu, want_imm, want_cpu):
    with pytest.MonkeyPatch.context() as mp:
        FakeTarget(mp, cpu=cpu, ESR_EL2=hvc_esr(imm))
        watch = trap_watch.TrapWatch(lambda tr: True, trap_filter=TrapFilter(imm=want_imm, cpu=want_cpu))
        expected = (want_imm in (None, imm)) and (want_cpu in (None, cpu))
        assert watch.hit(ENTRY_BP) is expected


def test_counted_stop_stops_on_the_kth_match_or_the_deadline(monkeypatch):
    monkeypatch.setattr(trap_watch, "quietly", lambda factory: None)
    records = iter([None, {"n": 1}, None, {"n": 2}])
    stop = trap_watch.CountedStop("rkvm_debug_event", lambda: next(records), 2, FakeDeadline(), "hook")
    assert [stop.hit(None) for _ in range(4)] == [False, False, False, True]
    assert stop.matched == {"n": 2}
    late = trap_watch.CountedStop("x", lambda: pytest.fail("read"), 1, FakeDeadline(passed=True), "hook")
    assert late.hit(None) is True and late.matched is None
