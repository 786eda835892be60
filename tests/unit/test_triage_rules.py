"""Triage rules over synthetic snapshots: each finding fires exactly when its condition holds."""

from hypothesis import given
from hypothesis import strategies as st

from gdb_rkvm.host.triage import report, rules
from gdb_rkvm.model.records import parse, to_json
from gdb_rkvm.model.snapshot import (CpuState, CpuSummary, ElPicture, Register, Snapshot, StubCpuRecord, StubState,
                                     VbarOrigin)

STUB = 0x40A60000
HYP = 0x4046E000


def cpu(n, el=1, pc=0xFFFF800080010000, vbar=STUB, kind="rkvm-stub", sp_el2=0x40A61400, sym=None, esr=0x5A00004B):
    """One CPU of a snapshot, built as model/snapshot records and returned as its JSON (tests edit it)."""
    summary = CpuSummary(cpu=n, el=el, mode=f"EL{el}h", pc=pc, pc_symbol=sym, vbar_el2=vbar, vbar_el2_kind=kind,
                         vbar_el2_points_at=kind, vbar_el2_symbol=None, sp_el2=sp_el2)
    regs = {"ESR_EL2": Register(esr), "ELR_EL2": Register(pc), "FAR_EL2": Register(0)}
    picture = ElPicture(cpu=n, el=el, mode=f"EL{el}h", cpsr=0x3C5 if el == 1 else 0x3C9, pc=pc, pc_symbol=sym,
                        registers=regs, hcr_el2_set=None, el2_mmu_on=False, vbar_el2_points_at=kind)
    return to_json(CpuState(n, summary, picture, [f"{pc:#x} <somewhere>"]))


def snap(cpus, origins=None, stub_records=None, uses_stack=True, park=None):
    """A snapshot's JSON from the Snapshot record (rules.diagnose() reads it back, type-checked)."""
    vbars = {str(c["cpu"]): c["summary"]["vbar_el2"] for c in cpus}
    stub = None if stub_records is None else StubState(STUB, parse(dict[str, StubCpuRecord | None], stub_records))
    return to_json(Snapshot(
        cpus=[Snapshot.from_json({**EMPTY, "cpus": [c]}).cpus[0] for c in cpus], vbar_el2=vbars,
        vbar_origins={k: VbarOrigin(**v) for k, v in (origins or {}).items()}, hyp_stub_pa=HYP,
        rkvm_stub_pas=[STUB], ram=[[0x40000000, 0xC0000000]], stub=stub,
        el2_code_uses_stack={f"{v:#x}": uses_stack for v in set(vbars.values())}, module=None, rkvm_stub_park=park,
        problems=[], partial=False))


EMPTY = {"cpus": [], "vbar_el2": {}, "vbar_origins": {}, "hyp_stub_pa": None, "rkvm_stub_pas": [], "ram": [],
         "stub": None, "el2_code_uses_stack": {}, "module": None, "rkvm_stub_park": None, "problems": [],
         "partial": False}


def records(stack_top=0x40A61400):
    return {str(n): to_json(StubCpuRecord(hvc_count=2, ping_count=0, stack_top=stack_top, fault=None)) for n in (0, 1)}


def codes(findings):
    return [f.code for f in findings]


def test_healthy_lab_has_no_findings():
    assert rules.diagnose(snap([cpu(0), cpu(1)], stub_records=records()), {}) == []


def test_mismatch_needs_two_nonzero_values():
    s = snap([cpu(0), cpu(1, vbar=HYP, kind="hyp-stub")], stub_records=records())
    f = rules.diagnose(s, {})
    assert codes(f) == ["vbar-el2-mismatch"] and f[0].cpus == [0, 1]
    s = snap([cpu(0), cpu(1, vbar=0, kind="unset")], stub_records=records())
    assert "vbar-el2-mismatch" not in codes(rules.diagnose(s, {}))


def test_vmalloc_bug_findings():
    bad = 0x38746000
    origin = {"va": 0xFFFF800078546000, "region": "modules", "symbol": "rkvm_stub_blob", "real_pa": 0x40CE0000}
    s = snap([cpu(n, el=2, pc=bad + 0x200, vbar=bad, kind="not-ram", esr=0x86000010) for n in (0, 1)],
             origins={f"{bad:#x}": origin})
    f = rules.diagnose(s, {"el2_stuck": {0: bad + 0x200, 1: bad + 0x200}})
    c = codes(f)
    # both CPUs loop the same way: one finding for both, its evidence said once
    assert c.count("el2-parked") == 1 and "vbar-el2-not-ram" in c and "vbar-el2-from-virt-to-phys" in c
    v2p = next(x for x in f if x.code == "vbar-el2-from-virt-to-phys")
    assert v2p.cpus == [0, 1] and "rkvm_stub_blob" in v2p.evidence[0] and "0x40ce0000" in v2p.evidence[1]
    parked = next(x for x in f if x.code == "el2-parked")
    assert any("EC 0x21" in e for e in parked.evidence)   # instruction abort at EL2, decoded
    assert parked.cpus == [0, 1] and parked.summary.startswith("CPU 0, 1 are stuck at EL2, looping")
    assert parked.evidence[-1] == "(the same on CPU 0, 1)" and not any(e.startswith("CPU ") for e in parked.evidence)
    md = report.markdown(report.build("findings", "x", f, s, {}, {"profile": "lab"}))
    assert md.count("`el2-parked`") == 1


def test_parked_in_the_stub_with_its_fault_record():
    park = STUB + 0xD18
    rec = records()
    rec["1"]["fault"] = {"count": 1, "esr": 0xF2000052, "elr": STUB + 0xCA8, "far": 0, "spsr": 0x3C9,
                         "vector": 0x200, "x0": 0, "mpidr": 1}
    s = snap([cpu(0), cpu(1, el=2, pc=park, sym="rkvm_stub_park")], stub_records=rec, park=park)
    f = rules.diagnose(s, {})
    assert codes(f) == ["el2-parked"] and f[0].cpus == [1]
    assert any("BRK #0x52" in e and "vector +0x200" in e for e in f[0].evidence)


def test_stack_unset_from_the_stub_record_or_a_zero_sp():
    s = snap([cpu(0), cpu(1)], stub_records=records(stack_top=0))
    f = rules.diagnose(s, {})
    assert codes(f) == ["el2-stack-unset"] and f[0].cpus == [0, 1]
    assert "HVC" in f[0].explanation and "only be set by code running at EL2" in f[0].explanation
    s = snap([cpu(0, vbar=0x41000000, kind="ram", sp_el2=0)], uses_stack=True)
    assert codes(rules.diagnose(s, {})) == ["el2-stack-unset"]
    s = snap([cpu(0, vbar=0x41000000, kind="ram", sp_el2=0)], uses_stack=False)
    assert rules.diagnose(s, {}) == []


def test_nostack_push_fault_connects_the_dots():
    # mode=nostack on the lab: CPU 1's SP_EL2 is 0, the ping's `stp x4, x5, [sp, #-0x10]!` at EL2 faults
    # (DABT_CUR, FAR = 0 - 16) into the stub's +0x200 vector, which parks it; CPU 0 holds a stale SP_EL2.
    park, elr = STUB + 0xD18, STUB + 0xB88
    rec = records(stack_top=0)
    rec["1"]["fault"] = {"count": 1, "esr": 0x96000040, "elr": elr, "far": 0xFFFFFFFFFFFFFFF0, "spsr": 0x3C9,
                         "vector": 0x200, "x0": 0x524B0001, "mpidr": 0x80000001}
    c1 = cpu(1, el=2, pc=park, sym="rkvm_stub_park", sp_el2=0, esr=0x96000040)
    c1["el"]["registers"].update(ELR_EL2={"value": elr, "symbol": "rkvm_stub_ping",
                                          "insn": "stp x4, x5, [sp, #-0x10]!"},
                                 FAR_EL2={"value": 0xFFFFFFFFFFFFFFF0})
    s = snap([cpu(0, sp_el2=0x40739000), c1], stub_records=rec, park=park)
    f = {x.code: x for x in rules.diagnose(s, {})}
    assert sorted(f) == ["el2-parked", "el2-stack-unset"]
    ev = "\n".join(f["el2-parked"].evidence)
    assert "ELR_EL2 0x40a60b88 <rkvm_stub_ping>: `stp x4, x5, [sp, #-0x10]!`, a store through sp" in ev
    assert "FAR_EL2 0xfffffffffffffff0 = SP_EL2 (0x0) - 0x10: the address the push wrote, wrapped below 0" in ev
    assert "vector +0x200 (Current EL with SPx, Synchronous): the fault was taken at EL2 itself" in ev
    assert "RKVM_HVC_SET_STACK" in f["el2-parked"].explanation
    unset = f["el2-stack-unset"]
    assert unset.cpus == [0, 1]
    assert any(e.startswith("CPU 0: SP_EL2 = 0x40739000: left over from early boot") for e in unset.evidence)
    assert any(e.startswith("CPU 1: SP_EL2 = 0x0: a push wraps below 0") for e in unset.evidence)
    # the same fault without a store through sp is not blamed on the stack
    s["cpus"][1]["el"]["registers"]["ELR_EL2"]["insn"] = "ldr x0, [x1]"
    assert "store through sp" not in "\n".join(rules.el2_parked(Snapshot.from_json(s), {})[0].evidence)


def test_report_header_says_the_count_once():
    s = snap([cpu(0), cpu(1)], stub_records=records(stack_top=0))
    f = rules.diagnose(s, {})
    md = report.markdown(report.build("findings", "1 finding(s): el2-stack-unset", f, s, {}, {"profile": "lab"}))
    header = next(line for line in md.splitlines() if line.startswith("**Result"))
    assert header.count("finding") == 1 and "el2-stack-unset" in header


def test_panic_finding_carries_message_and_backtrace():
    s = snap([cpu(0, sym="panic"), cpu(1)], stub_records=records())
    f = rules.diagnose(s, {"panic": {"message": "sysrq triggered crash", "function": "panic", "cpu": 0}})
    assert codes(f) == ["kernel-panic"] and f[0].summary == "kernel panic: sysrq triggered crash"
    assert f[0].evidence[1].startswith("CPU 0: ")


def test_errors_sort_before_warnings():
    s = snap([cpu(0), cpu(1, vbar=0x38746000, kind="not-ram")], stub_records=records())
    f = rules.diagnose(s, {})
    assert [x.severity for x in f] == sorted((x.severity for x in f), key=lambda v: v != "error")


vbar_values = st.sampled_from([0, STUB, HYP, 0x38746000, 0x41000000])
kinds = {0: "unset", STUB: "rkvm-stub", HYP: "hyp-stub", 0x38746000: "not-ram", 0x41000000: "ram"}


@given(st.lists(st.tuples(vbar_values, st.integers(0, 3), st.integers(0, 2**64 - 1)), min_size=1, max_size=8),
       st.integers(0, 2**32 - 1))
def test_property_rules_never_raise_and_mismatch_is_exact(cpus_spec, esr):
    cpus = [cpu(n, el=el, pc=pc, vbar=v, kind=kinds[v], esr=esr) for n, (v, el, pc) in enumerate(cpus_spec)]
    s = snap(cpus, stub_records={str(n): {"hvc_count": 0, "ping_count": 0, "stack_top": 1, "fault": None}
                                 for n in range(len(cpus))})
    f = rules.diagnose(s, {})
    nonzero = {v for v, _, _ in cpus_spec if v}
    assert ("vbar-el2-mismatch" in codes(f)) == (len(nonzero) > 1)
    not_ram = sorted(n for n, (v, _, _) in enumerate(cpus_spec) if v == 0x38746000)
    assert [x.cpus for x in f if x.code == "vbar-el2-not-ram"] == ([not_ram] if not_ram else [])
    md = report.markdown(report.build("findings" if f else "healthy", "r", f, s, {}, {"profile": "lab"}))
    assert md.startswith("# rkvm triage report")


def test_report_written_atomically(tmp_path):
    rep = report.build("healthy", "no fault found", [], None, {}, {"profile": "lab"})
    report.write(tmp_path, rep)
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]
