"""Triage rules over synthetic snapshots: each finding fires exactly when its condition holds."""

import dataclasses

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


# ---- the guest world (issue 16): findings over the snapshot's guest section and per-CPU world ----

GUEST_RAM_PA, VCPU_PA = 0x40E5C000, 0x40D8E000
HOST_EL1 = {"SCTLR_EL1": 0x34D5D91D, "TTBR1_EL1": 0x41E6F000, "TCR_EL1": 0x34B5503510, "MAIR_EL1": 0xFF,
            "VBAR_EL1": 0xFFFF800080010800, "TTBR0_EL1": 0x41000000}
GUEST_EL1 = {"SCTLR_EL1": 0x30D0180D, "TTBR1_EL1": 0, "TCR_EL1": 0x80803520, "MAIR_EL1": 0xFF00,
             "VBAR_EL1": 0x80000800, "TTBR0_EL1": 0x80001000}
HOLE_ESR, HOLE_FAR, HOLE_HPFAR = 0x92000047, 0x8000FFF0, 0x8000F0   # the s2-hole lab's last exit
VTCR = 0x80023560   # 32-bit IPA, 4K, start level 1


def guest(esr=HOLE_ESR, far=HOLE_FAR, hpfar=HOLE_HPFAR, count=200, vtcr=VTCR, vtcr_tables=None, vttbr=None,
          in_ram=True, origin=None, state="runnable", aborts=146, pc=0x800000E8):
    from gdb_rkvm.arch import exits
    from gdb_rkvm.model.world import GuestExitRecord, GuestModule, GuestState
    vttbr = (1 << 48) | 0x41E40000 if vttbr is None else vttbr
    c = exits.classify(esr)
    module = GuestModule(state, VCPU_PA, GUEST_RAM_PA, 0x80000000, 0x10000, vttbr, vtcr, vtcr_tables or vtcr,
                         0x80080039, 0xFFFF000001E40000, 1, 32, 3, count,
                         {"hvc": 0, "dabt": aborts, "iabt": 0, "wfx": 0, "irq": count - aborts, "other": 0}, 0)
    ipa = ((hpfar >> 4) << 12) | (far & 0xFFF)
    return GuestState(VCPU_PA, pc, 0x3C5, 0x80010000, 0x80080039, vttbr, vtcr,
                      GuestExitRecord("sync", esr, far, hpfar, ipa, count, c.reason.value, c.line()), dict(GUEST_EL1),
                      in_ram, origin, module, [[0x80000000, 0x10000]])


def with_guest(g, worlds=None):
    """A healthy two-CPU snapshot with a guest section and (optionally) per-CPU world records."""
    s = snap([cpu(0), cpu(1)], stub_records=records())
    s["guest"] = to_json(g)
    for c in s["cpus"]:
        if worlds and c["cpu"] in worlds:
            c["world"] = to_json(worlds[c["cpu"]])
    return s


def world(n_runs=1, live=None, in_guest=False):
    from gdb_rkvm.model.world import CpuWorld, HostSaveSummary
    return CpuWorld("guest" if in_guest else "host", 1 if in_guest else None, 0x80080039 if in_guest else 0x80000000,
                    0, VTCR, VCPU_PA, HostSaveSummary(in_guest, VCPU_PA, n_runs, 0xFFFF800080A00000, 0xFFFF800082003E00,
                                                      dict(HOST_EL1)), dict(live or HOST_EL1))


def test_stage2_fault_loop_names_the_ipa_the_level_and_guest_ram():
    f = rules.diagnose(with_guest(guest(), {0: world(200)}), {})
    assert codes(f) == ["stage2-fault-loop"] and f[0].cpus == [0]
    assert "IPA 0x8000fff0" in f[0].summary and "at level 3" in f[0].summary and "(guest RAM)" in f[0].summary
    assert any("is guest RAM (0x80000000-0x8000ffff)" in e for e in f[0].evidence)
    assert "map it at stage 2" in f[0].explanation


def test_no_loop_for_a_guest_that_finished_mmio_or_few_aborts():
    hvc_done = guest(esr=0x5A000000, far=0, hpfar=0, state="done")
    uart = guest(esr=0x93C08006 | (1 << 24), far=0x49000000, hpfar=0x90000)      # an emulated UART store
    for g in (hvc_done, uart, guest(aborts=3), guest(state="stopped")):
        assert rules.diagnose(with_guest(g), {}) == []


def test_vttbr_from_virt_to_phys_and_not_ram():
    bad = 0x38666000
    origin = VbarOrigin(0xFFFF800081E40000, "vmalloc", None, 0x41E40000)
    s = with_guest(guest(esr=0x82000006, far=0x80000000, hpfar=0x800000, vttbr=(1 << 48) | bad, in_ram=False,
                         origin=origin, aborts=0, pc=0x80000000), {0: world(200)})
    f = {x.code: x for x in rules.diagnose(s, {})}
    assert set(f) == {"vttbr-from-virt-to-phys", "vttbr-not-ram"}     # not also a fault loop: stage 2 is broken
    v = f["vttbr-from-virt-to-phys"]
    assert "0x38666000" in v.summary and "virt_to_phys(0xffff800081e40000) = 0x38666000" in v.evidence[1]
    assert "PA 0x41e40000" in v.evidence[2] and "alloc_pages" in v.explanation
    # the same evidence wording as VBAR_EL2's rule: one helper, not a copy
    assert rules._origin_evidence(origin, bad) == v.evidence[1:]


def test_vtcr_mismatch_from_the_tables_vtcr_and_the_ipa_size():
    run = (VTCR & ~0x3F) | 33
    g = guest(esr=0x82000004, far=0x80000000, hpfar=0x800000, vtcr=run, vtcr_tables=VTCR, aborts=0, pc=0x80000000)
    f = rules.diagnose(with_guest(g), {})
    assert codes(f) == ["vtcr-mismatch"]
    ev = " ".join(f[0].evidence)
    assert "built for VTCR_EL2 0x80023560 (32-bit IPA" in ev and "31-bit IPA space" in ev
    assert "the guest's first instruction" in ev
    # without rkvm.ko's view, the guest RAM beyond the IPA size still says it
    assert codes(rules.diagnose(with_guest(dataclasses.replace(g, module=None)), {})) == ["vtcr-mismatch"]


def test_host_el1_state_clobbered_only_after_a_run_and_not_for_asid_changes():
    clobbered = {**HOST_EL1, **{k: GUEST_EL1[k] for k in ("SCTLR_EL1", "VBAR_EL1", "TTBR1_EL1")}}
    done = guest(esr=0x5A000000, far=0, hpfar=0, state="done")
    f = rules.diagnose(with_guest(done, {1: world(1, clobbered)}), {})
    assert codes(f) == ["host-el1-state-clobbered"] and f[0].cpus == [1]
    assert any(e.startswith("VBAR_EL1: live 0x80000800, the stub saved 0xffff800080010800") and "guest's" in e
               for e in f[0].evidence)
    assert rules.diagnose(with_guest(done, {1: world(0, clobbered)}), {}) == []           # never ran a guest
    assert rules.diagnose(with_guest(done, {1: world(1, clobbered, in_guest=True)}), {}) == []   # in the guest
    asid = {**HOST_EL1, "TTBR1_EL1": HOST_EL1["TTBR1_EL1"] | (0x2A << 48), "TTBR0_EL1": 0x42000000}
    assert rules.diagnose(with_guest(done, {1: world(1, asid)}), {}) == []


@given(st.integers(0, 0xFFFF), st.integers(0, (1 << 48) - 1))
def test_clobber_check_ignores_the_asid_and_sees_any_baddr_change(asid, baddr):
    w = world(1, {**HOST_EL1, "TTBR1_EL1": (asid << 48) | baddr})
    assert bool(w.host_el1_clobbered()) == (baddr != HOST_EL1["TTBR1_EL1"])
