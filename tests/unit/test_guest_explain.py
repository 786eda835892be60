"""--explain texts for guest exits, stage 2 faults and the guest-world modes (model/guest_explain.py):
every reason, kind, action and mode has a text, and no text names a value its record does not hold."""

import re

from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.arch import exits
from gdb_rkvm.arch.exits import ExitReason
from gdb_rkvm.arch.stage2_fault import FSC_KINDS, VmmAction, autopsy
from gdb_rkvm.model import guest_explain as gx
from gdb_rkvm.qemu.session import MODES

HEX = re.compile(r"0x[0-9a-f]+")
U64 = st.integers(0, (1 << 64) - 1)
KINDS = sorted(set(FSC_KINDS.values()) | {"external abort", "other"})


def test_every_exit_reason_has_a_text():
    assert set(gx.EXIT_TEXTS) == set(ExitReason)
    for reason, text in gx.EXIT_TEXTS.items():
        assert text.title and len(text.happened) > 40 and len(text.vmm) > 30, reason
        assert not HEX.search(text.happened + text.vmm), reason    # fixed texts name no values


def test_every_fault_kind_and_action_has_a_text():
    assert set(gx.FAULT_KIND_TEXTS) == set(KINDS)
    assert set(gx.ACTION_TEXTS) == set(VmmAction)
    for text in [*gx.FAULT_KIND_TEXTS.values()]:
        assert not HEX.search(text.happened + text.vmm)
    assert all(not HEX.search(t) for t in gx.ACTION_TEXTS.values())


def test_every_guest_world_mode_has_a_text():
    guest_modes = {m for m in MODES if m in ("s2-vmalloc", "s2-hole", "host-clobber", "vtcr-mismatch")}
    assert set(gx.MODE_TEXTS) == guest_modes == {"s2-vmalloc", "s2-hole", "host-clobber", "vtcr-mismatch"}
    for text in gx.MODE_TEXTS.values():
        assert text.happened and text.vmm and not HEX.search(text.happened + text.vmm)


def _exit_values(e) -> set[int]:
    return {v for v in (e.esr, e.ec, e.imm16) if v is not None}


@given(U64, st.sampled_from(["sync", "irq", "fiq", "serror"]))
def test_an_exit_explanation_names_only_the_records_values(esr, kind):
    e = exits.classify(esr, kind)
    text = "\n".join(gx.explain_exit(e))
    assert text.startswith(gx.EXIT_TEXTS[e.reason].title)
    for h in HEX.findall(text):
        assert int(h, 16) in _exit_values(e), (h, e)
    if e.sysreg is None:
        assert "a write to" not in text and "a read of" not in text
    if "ELR_EL2 +=" in text:
        assert e.elr_at_instruction and f"+= {4 if (esr >> 25) & 1 else 2} " in text


def test_the_labs_exits_explained():
    # the guest's UART store as the lab shows it: STRB w1, IPA 0x09000000, level 1 translation fault
    uart = gx.explain_exit(exits.classify(0x93010045))
    assert uart[0].startswith("data abort from the guest") and "ELR_EL2 += 4 (ESR_EL2.IL)" in uart[-1]
    hvc = gx.explain_exit(exits.classify(0x5A000000 | 0x4B))
    assert "immediate 0x4b" in hvc[-1] and not any("ELR_EL2 +=" in x for x in hvc)
    wfi = gx.explain_exit(exits.classify(0x06000000))   # EC 0x01, IL 1, WFI
    assert "this one: WFI" in "\n".join(wfi) and "ELR_EL2 += 4" in wfi[-1]
    irq = gx.explain_exit(exits.classify(None, "irq"))
    assert "HCR_EL2.IMO" in irq[0] and not HEX.search("\n".join(irq))


def _fault_values(f) -> set[int]:
    vals = {f.esr, f.far, f.hpfar, f.fsc, f.ipa, f.ipa_page}
    return vals | ({f.va} if f.va is not None else set())


@given(U64, U64, U64, st.booleans())
def test_a_fault_explanation_names_only_the_autopsys_values(iss_bits, far, hpfar, instruction):
    ec = 0x20 if instruction else 0x24
    esr = (ec << 26) | (1 << 25) | (iss_bits & 0x1FFFFFF)
    f = autopsy(esr, far, hpfar, [(0x80000000, 0x10000)])
    text = "\n".join(gx.explain_fault(f))
    for h in HEX.findall(text):
        assert int(h, 16) in _fault_values(f), (h, f)
    if f.va is None:
        assert "(FAR_EL2)" not in text and "FnV = 1" in text
    if not f.ipa_reliable:
        assert "IPA not reliable" in text and f"IPA {f.ipa:#x}" not in text
    if f.access is None:
        assert "ISV = 1" not in text
    else:
        assert f.access.register in text
    assert f"next: {gx.ACTION_TEXTS[f.action]}" in text


def test_the_labs_uart_fault_explained():
    f = autopsy(0x93010045, 0x49000000, (0x09000000 >> 12) << 4, [(0x80000000, 0x10000)])
    text = "\n".join(gx.explain_fault(f))
    assert "stage 2 translation fault" in text and "level 1" in text
    assert "VA 0x49000000 (FAR_EL2), IPA 0x9000000" in text
    assert "a store from w1, 1 byte(s)" in text and f.action is VmmAction.EMULATE_MMIO


def test_a_host_exit_is_not_explained_as_a_fault():
    f = autopsy(0x96000045, 0, 0)    # EC 0x25: a data abort at EL2 itself
    assert gx.explain_fault(f) == [gx.ACTION_TEXTS[VmmAction.NOT_A_STAGE2_ABORT]]
