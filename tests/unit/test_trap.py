"""live/trap.py: the Trap record built from register values, and the filter over it (no GDB)."""

from hypothesis import given
from hypothesis import strategies as st

from tests.unit import fake_gdb

fake_gdb.install()

from gdb_rkvm.arch import esr  # noqa: E402
from gdb_rkvm.live import trap  # noqa: E402
from gdb_rkvm.model import stub_abi  # noqa: E402

VBAR = 0x40A60000
ELR = 0xFFFF800078540060
SPSR_EL1H = 0x3C5


def hvc_esr(imm: int) -> int:
    return (esr.EC_HVC64 << 26) | (1 << 25) | imm


def regs(esr_value: int, x0: int = 0, **more) -> dict:
    values = {"ESR_EL2": esr_value, "ELR_EL2": ELR, "SPSR_EL2": SPSR_EL1H}
    values.update({f"x{n}": 0 for n in range(8)})
    values.update(x0=x0, **more)
    return values


def an_entry(imm=0x4B, cpu=1, x0=0, esr_value=None, **more) -> trap.Trap:
    return trap.entry(cpu, VBAR + 0x400, VBAR, regs(hvc_esr(imm) if esr_value is None else esr_value, x0, **more))


def test_hvc_entry_decodes_esr_caller_and_slot():
    ping = stub_abi.value("RKVM_HVC_PING")
    tr = trap.entry(1, VBAR + 0x400, VBAR, regs(hvc_esr(0x4B), ping, x1=0x77),
                    symbol={ELR - 4: "rkvm_hvc+0x38", ELR: "rkvm_hvc+0x3c"}.get,
                    el2_symbol=lambda pa: "rkvm_vec_lower64_sync")
    assert tr.is_hvc and not tr.is_smc and tr.imm16 == 0x4B and tr.ec == esr.EC_HVC64
    assert tr.caller == ELR - 4 and tr.caller_symbol == "rkvm_hvc+0x38" and tr.elr_symbol == "rkvm_hvc+0x3c"
    assert tr.slot_offset == 0x400 and tr.slot == "Lower EL using AArch64, Synchronous"
    assert tr.from_mode == "EL1h" and tr.from_el == 1
    assert tr.function == "RKVM_HVC_PING" and tr.x(1) == 0x77 and tr.x(8) is None
    assert tr.handler_symbol == "rkvm_vec_lower64_sync"
    assert tr.esr_summary == "EC 0x16 HVC64: HVC #0x4b"


@given(imm=st.integers(0, 0xFFFF), slot=st.sampled_from([0x480, 0x500, 0x280, 0x300]), guest=st.booleans())
def test_an_irq_or_fiq_entry_has_no_syndrome_whatever_esr_el2_still_holds(imm, slot, guest):
    # the last HVC's syndrome, left in ESR_EL2: an IRQ exit is no HVC, whatever it says
    tr = trap.entry(1, VBAR + slot, VBAR, regs(hvc_esr(imm), HCR_EL2=int(guest)))
    assert tr.stale_esr and tr.ec is None and tr.imm16 is None and not tr.is_hvc
    kind = "IRQ" if slot in (0x480, 0x280) else "FIQ"
    assert tr.esr_summary == f"{kind} (no syndrome: ESR_EL2 is not written for it)"
    assert tr.exit is None or tr.exit.reason.value == kind.lower()
    assert not trap.HVC_OR_SMC_FILTER.matches(tr)
    sync = trap.entry(1, VBAR + (slot & ~0x1FF), VBAR, regs(hvc_esr(imm), HCR_EL2=int(guest)))
    assert not sync.stale_esr and sync.imm16 == imm


def test_to_dict_keeps_the_published_keys():
    d = an_entry().to_dict()
    assert set(d) == {"cpu", "pc", "slot", "slot_offset", "esr", "esr_summary", "ec", "is_hvc", "imm16", "elr",
                      "spsr", "from_mode", "from_el", "caller", "caller_symbol", "registers", "function",
                      "handler_symbol", "is_smc", "call"}
    assert d["registers"] == {f"x{n}": 0 for n in range(8)} and d["spsr"] == SPSR_EL1H


def test_data_abort_caller_is_elr_and_has_no_immediate():
    dabt = (esr.EC_DABT_LOW << 26) | (1 << 25) | 0x47
    tr = an_entry(esr_value=dabt)
    assert tr.caller == ELR and tr.imm16 is None and not tr.is_hvc
    assert not trap.TrapFilter().matches(tr)
    assert trap.TrapFilter(classes=frozenset({esr.EC_DABT_LOW})).matches(tr)   # a guest-exit catch
    assert trap.ANY_TRAP.matches(tr)


def test_smc_site_goes_to_el2_only_when_hcr_tsc_traps_it_from_el1():
    values = {"cpsr": SPSR_EL1H, **{f"x{n}": 0 for n in range(8)}, "x0": 0x84000008}
    tsc = 1 << 19   # HCR_EL2.TSC
    el3 = trap.smc_site(0, 0xFFFF80008001A174, 0, values, hcr_el2=0, symbol=lambda a: "__arm_smccc_smc+0x4")
    el2 = trap.smc_site(0, 0xFFFF80008001A174, 0, values, hcr_el2=tsc)
    unknown = trap.smc_site(0, 0xFFFF80008001A174, 0, values, hcr_el2=None)
    assert el3.smc_goes_to == "EL3" and unknown.smc_goes_to == "EL3"
    assert el2.smc_goes_to == "EL2 (HCR_EL2.TSC traps it)"
    assert el3.is_smc and el3.imm16 == 0 and el3.caller == el3.pc and el3.caller_symbol == "__arm_smccc_smc+0x4"
    assert el3.function == "PSCI SYSTEM_OFF" and el3.call.startswith("PSCI SYSTEM_OFF")
    assert el3.to_dict()["goes_to"] == "EL3" and el3.to_dict()["spsr"] is None
    assert el3.esr_summary == "SMC #0x0" and el3.handler_symbol is None


def test_eret_record_carries_the_returned_x0():
    tr = trap.eret(0, VBAR + 0xB40, {"SPSR_EL2": SPSR_EL1H, "ELR_EL2": ELR, "x0": 0x524B564D})
    assert tr.kind == trap.RETURN and tr.ret == 0x524B564D and tr.from_mode == "EL1h" and tr.esr is None


def test_kernel_hyp_stub_calls_are_named():
    assert trap.function_name(3) == "HVC_FINALISE_EL2"
    assert trap.function_name(0x84000000) == "PSCI PSCI_VERSION"
    assert trap.function_name(0xDEAD) == ""


@given(imm=st.integers(0, 0xFFFF), cpu=st.integers(0, 7), want_imm=st.none() | st.integers(0, 0xFFFF),
       want_cpu=st.none() | st.integers(0, 7))
def test_filter_matches_exactly_the_wanted_immediate_and_cpu(imm, cpu, want_imm, want_cpu):
    tr = an_entry(imm=imm, cpu=cpu)
    expected = (want_imm is None or want_imm == imm) and (want_cpu is None or want_cpu == cpu)
    assert trap.TrapFilter(imm=want_imm, cpu=want_cpu).matches(tr) == expected


@given(x0=st.integers(0, (1 << 64) - 1), want=st.integers(0, (1 << 64) - 1))
def test_filter_on_function_id(x0, want):
    tr = an_entry(x0=x0)
    assert trap.TrapFilter(function_id=want).matches(tr) == (x0 == want)
    assert trap.TrapFilter().matches(tr)


@given(ec=st.integers(0, 0x3F), spsr_mode=st.sampled_from([0x0, 0x4, 0x5, 0x9, 0x10, 0x3]))
def test_filter_by_class_and_from_el_never_raises(ec, spsr_mode):
    tr = an_entry(esr_value=(ec << 26) | (1 << 25), SPSR_EL2=spsr_mode)
    assert trap.TrapFilter().matches(tr) == (ec in trap.HVC_OR_SMC)
    assert trap.TrapFilter(classes=None, from_el=1).matches(tr) == (tr.from_el == 1)
    assert isinstance(tr.esr_summary, str) and isinstance(tr.slot, str)


def test_filter_describes_itself():
    assert trap.TrapFilter().describe() == "every HVC"
    assert trap.TrapFilter(imm=0x4B, cpu=1, from_el=1).describe() == "imm16 == 0x4b, CPU 1, from EL1"


@given(ipa_page=st.integers(0, (1 << 40) - 1), offset=st.integers(0, 0xFFF), far_page=st.integers(0, (1 << 52) - 1),
       ns=st.booleans(), res0=st.integers(0, 0xF))
def test_ipa_is_hpfar_fipa_page_and_far_offset(ipa_page, offset, far_page, ns, res0):
    # HPFAR_EL2.FIPA is bits [43:4] (IPA bits [51:12]); NS and the low bits are no part of the IPA
    hpfar = (ns << 63) | (ipa_page << 4) | res0
    tr = an_entry(FAR_EL2=(far_page << 12) | offset, HPFAR_EL2=hpfar)
    assert tr.ipa == (ipa_page << 12) | offset


def test_no_ipa_without_hpfar():
    assert an_entry(FAR_EL2=0x1234).ipa is None
