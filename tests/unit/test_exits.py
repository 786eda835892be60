"""Guest exit classification from ESR_EL2.EC and the vector kind."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.arch import esr as esr_mod
from gdb_rkvm.arch import exits
from gdb_rkvm.arch.exits import ExitReason


def test_every_ec_has_exactly_one_reason():
    seen: dict[ExitReason, set] = {}
    for ec in range(64):
        reason = exits.reason_for_ec(ec)
        assert isinstance(reason, ExitReason)
        assert exits.classify(ec << 26).reason is reason
        seen.setdefault(reason, set()).add(ec)
    assert sum(len(v) for v in seen.values()) == 64
    for r, ecs in seen.items():
        assert all(ecs.isdisjoint(other) for o, other in seen.items() if o is not r)
    # the named ones agree with arch/esr.py's classes
    assert seen[ExitReason.HVC] == {0x12, esr_mod.EC_HVC64}
    assert seen[ExitReason.DABT] == {esr_mod.EC_DABT_LOW} and seen[ExitReason.IABT] == {esr_mod.EC_IABT_LOW}
    # the partition above holds for any function; these pin the classes a catch filter depends on
    assert seen[ExitReason.SMC] == {0x13, esr_mod.EC_SMC64} and seen[ExitReason.WFX] == {0x01}
    assert seen[ExitReason.SERROR] == {esr_mod.EC_SERROR} and esr_mod.EC_SYS64 in seen[ExitReason.SYSREG]
    # EL2's own aborts, an SVC and a BRK are no guest exit of those kinds
    assert {esr_mod.EC_DABT_CUR, esr_mod.EC_IABT_CUR, esr_mod.EC_SVC64} <= seen[ExitReason.OTHER]
    assert esr_mod.EC_BRK64 in seen[ExitReason.DEBUG]


def test_reason_names_for_the_catch_command():
    for name in ("hvc", "smc", "dabt", "iabt", "wfx", "sysreg", "irq", "fiq", "serror", "fpsimd", "debug", "other"):
        assert exits.parse_reason(name).value == name
    assert exits.parse_reason(" HVC ") is ExitReason.HVC
    with pytest.raises(ValueError, match="one of hvc, smc"):
        exits.parse_reason("mmio")


def test_wfi_and_wfe():
    assert exits.classify((0x01 << 26) | (1 << 25) | 0).wfx == "WFI"
    e = exits.classify((0x01 << 26) | (1 << 25) | 1)
    assert e.reason is ExitReason.WFX and e.wfx == "WFE" and e.elr_at_instruction
    assert "WFE" in e.line()


def test_trapped_msr_names_the_register():
    # MSR SCTLR_EL1, x0 trapped by HCR_EL2.TVM: op0 3, op1 0, CRn 1, CRm 0, op2 0, Rt 0, direction 0 (write)
    iss = (3 << 20) | (0 << 17) | (0 << 14) | (1 << 10) | (0 << 5) | (0 << 1) | 0
    e = exits.classify((0x18 << 26) | (1 << 25) | iss)
    assert e.reason is ExitReason.SYSREG and e.sysreg == "SCTLR_EL1" and e.sysreg_write is True
    assert e.detail == "trapped MSR SCTLR_EL1, x0" and e.elr_at_instruction


def test_hvc_smc_and_async_kinds():
    h = exits.classify((0x16 << 26) | (1 << 25) | 0x4B)
    assert h.reason is ExitReason.HVC and h.imm16 == 0x4B and not h.elr_at_instruction
    s = exits.classify((0x17 << 26) | (1 << 25))
    assert s.reason is ExitReason.SMC and s.elr_at_instruction      # a trapped SMC: ELR_EL2 at the smc
    assert exits.classify(None, "irq").reason is ExitReason.IRQ
    assert exits.classify(123, "fiq").reason is ExitReason.FIQ
    assert exits.classify(0x2F << 26, "serror").reason is ExitReason.SERROR


@given(st.integers(0, (1 << 64) - 1), st.sampled_from(["sync", "irq", "fiq", "serror"]))
def test_property_classify_never_raises(value, kind):
    e = exits.classify(value, kind)
    assert e.line() and e.to_dict()["reason"] in exits.REASON_NAMES
