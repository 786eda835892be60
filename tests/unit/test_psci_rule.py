"""The PSCI triage rule over synthetic snapshots: PSCI by HVC into code that does not handle it."""

from gdb_rkvm.host.triage import rules
from tests.unit.test_triage_rules import HYP, STUB, codes, cpu, records, snap


def call(cpu_n=0, conduit="hvc", kind="rkvm-stub", vbar=STUB, x0=0x84000008, result=0xBADCA11, psci=True):
    return {"cpu": cpu_n, "conduit": conduit, "site": 0xFFFF80008001A1A4, "site_symbol": "__arm_smccc_hvc+0x4",
            "x0": x0, "x1": 0, "x2": 0, "x3": 0, "call": "PSCI SYSTEM_OFF()", "function": "PSCI SYSTEM_OFF",
            "psci": psci, "vbar_el2": vbar if conduit == "hvc" else None, "vbar_kind": kind if conduit == "hvc" else "",
            "result": result, "result_text": "0xbadca11 (HVC_STUB_ERR: ...)" if result == 0xBADCA11 else "SUCCESS"}


def psci(conduit, calls=(), handles=None):
    return {"conduit": conduit, "how": "psci_conduit", "watching": True, "calls": list(calls), "calls_dropped": 0,
            "cpus": {str(n): {"vbar_el2": STUB, "vbar_kind": "rkvm-stub", "lands": f"VBAR_EL2 {STUB:#x} + 0x400",
                              "handles_psci": handles, "why": "the rkvm stub answers HVC_STUB_ERR"} for n in (0, 1)}}


def with_psci(p):
    s = snap([cpu(0), cpu(1)], stub_records=records())
    s["psci"] = p
    return s


def test_smc_conduit_is_healthy():
    ok = call(conduit="smc", x0=0x84000003, result=0)
    assert rules.diagnose(with_psci(psci("smc", [ok], handles=True)), {}) == []


def test_system_off_by_hvc_into_the_rkvm_stub():
    f = rules.diagnose(with_psci(psci("hvc", [call()], handles=False)), {})
    assert codes(f) == ["psci-call-unhandled"] and f[0].severity == "error" and f[0].cpus == [0]
    assert "PSCI SYSTEM_OFF() by HVC" in f[0].evidence[0] and "(rkvm-stub)" in f[0].evidence[0]
    assert "HVC_STUB_ERR" in f[0].evidence[0]


def test_psci_by_hvc_into_the_hyp_stub_even_without_a_return():
    f = rules.diagnose(with_psci(psci("hvc", [call(kind="hyp-stub", vbar=HYP, result=None)])), {})
    assert codes(f) == ["psci-call-unhandled"] and "no return seen" in f[0].evidence[0]


def test_unknown_vectors_judged_by_what_they_returned():
    fine = call(kind="ram", vbar=0x41000000, result=0)
    assert rules.diagnose(with_psci(psci("hvc", [fine])), {}) == []
    stray = call(kind="ram", vbar=0x41000000, result=0xFFFFFFFF_FFFFFF00)
    assert codes(rules.diagnose(with_psci(psci("hvc", [stray])), {})) == ["psci-call-unhandled"]


def test_non_psci_smccc_calls_are_not_psci_findings():
    other = call(x0=0x80000000, psci=False)
    assert rules.diagnose(with_psci(psci("hvc", [other])), {}) == []


def test_hvc_conduit_with_replaced_vectors_is_a_warning_before_any_call():
    f = rules.diagnose(with_psci(psci("hvc", [], handles=False)), {})
    assert codes(f) == ["psci-conduit-hvc"] and f[0].severity == "warning" and f[0].cpus == [0, 1]


def test_old_snapshots_without_psci():
    assert rules.diagnose(snap([cpu(0), cpu(1)], stub_records=records()), {}) == []
