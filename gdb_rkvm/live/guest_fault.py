"""A guest's stage-2 abort as `rkvm fault` explains it: the syndrome (live at the exit, or the vCPU's
saved exit record afterwards), the guest's translation registers of that moment, the two-stage walk
of its address, and arch/stage2_fault.autopsy() over all of it."""

from dataclasses import dataclass

from gdb_rkvm.arch import pstate, regfields, stage2_fault, two_stage
from gdb_rkvm.arch.stage2_fault import Stage2Fault
from gdb_rkvm.arch.two_stage import Stage1Regs, Stage2Regs
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import world
from gdb_rkvm.model import stub_abi

LIVE, RECORD = "live", "record"   # where the syndrome came from


@dataclass(frozen=True)
class FaultReport:
    """One stage-2 abort of the guest and where each part of it was read."""

    cpu: int
    source: str                     # LIVE: stopped at the exit (HCR_EL2.VM still 1); RECORD: the vCPU's
    vcpu_pa: int | None
    exit_count: int | None          # the vCPU's exits so far (RECORD)
    guest_pc: int                   # ELR_EL2 at the exit: the faulting instruction
    guest_el: int
    vmid: int
    ram: tuple[tuple[int, int], ...]   # guest RAM (IPA, size) the RAM-vs-MMIO call used
    fault: Stage2Fault

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "source": self.source, "vcpu_pa": self.vcpu_pa, "exit_count": self.exit_count,
                "guest_pc": self.guest_pc, "guest_el": self.guest_el, "vmid": self.vmid,
                "ram": [list(r) for r in self.ram], **self.fault.to_dict()}

    def to_json(self) -> dict:
        return self.to_dict()


@dataclass(frozen=True)
class _Exit:
    esr: int
    far: int
    hpfar: int
    elr: int
    spsr: int
    s1: Stage1Regs
    s2: Stage2Regs


def guest_ram() -> tuple[tuple[int, int], ...]:
    """The lab guest's RAM as (IPA, size): RKVM_GUEST_RAM_IPA/SIZE of the ABI header. Not what stage 2
    maps: a RAM page stage 2 forgot (mode=s2-hole) must still count as RAM."""
    return ((stub_abi.value("RKVM_GUEST_RAM_IPA"), stub_abi.value("RKVM_GUEST_RAM_SIZE")),)


def _live(cpu: int) -> _Exit:
    """At EL2 before the stub's exit path puts the host's HCR_EL2 back, the EL1 registers are the guest's."""
    r = {n: t.read_register(n, cpu) for n in ("ESR_EL2", "FAR_EL2", "HPFAR_EL2", "ELR_EL2", "SPSR_EL2",
                                              "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "SCTLR_EL1", "MAIR_EL1",
                                              "VTTBR_EL2", "VTCR_EL2")}
    return _Exit(r["ESR_EL2"], r["FAR_EL2"], r["HPFAR_EL2"], r["ELR_EL2"], r["SPSR_EL2"],
                 Stage1Regs(r["TTBR0_EL1"], r["TTBR1_EL1"], r["TCR_EL1"], r["SCTLR_EL1"], r["MAIR_EL1"]),
                 Stage2Regs(r["VTTBR_EL2"], r["VTCR_EL2"]))


def _recorded(v: stub_abi.VcpuState) -> _Exit:
    """The stub saved the syndrome, ELR/SPSR (as the vCPU's PC/PSTATE) and the guest's EL1 context."""
    e = v.el1
    return _Exit(v.exit.esr, v.exit.far, v.exit.hpfar, v.pc, v.pstate,
                 Stage1Regs(e["TTBR0_EL1"], e["TTBR1_EL1"], e["TCR_EL1"], e["SCTLR_EL1"], e["MAIR_EL1"]),
                 Stage2Regs(v.vttbr_el2, v.vtcr_el2))


def _access(esr: int) -> str:
    f = stage2_fault.autopsy(esr, 0, 0)
    return "x" if f.instruction else ("w" if f.write else "r")


def _report(cpu: int, source: str, ex: _Exit, vcpu_pa: int | None, count: int | None) -> FaultReport:
    ram = guest_ram()
    el = pstate.exception_level(ex.spsr) or 1   # the guest's EL: EL0 is 0, which `or` keeps as 1 (EL0 walks alike)
    first = stage2_fault.autopsy(ex.esr, ex.far, ex.hpfar, list(ram))
    walk = None
    if first.is_stage2_abort and first.va is not None:
        walk = two_stage.walk_guest(first.va, ex.s1, ex.s2, t.read_physical, _access(ex.esr), el=el)
    fault = stage2_fault.autopsy(ex.esr, ex.far, ex.hpfar, list(ram), walk)
    return FaultReport(cpu, source, vcpu_pa, count, ex.elr, el, ex.s2.vmid, ram, fault)


def _cpus(cpu: int | None) -> list[int]:
    """The CPU asked for, or the selected one first and then the others."""
    if cpu is not None:
        t.thread_for_cpu(cpu)
        return [cpu]
    here = t.cpu_of(t.thread_for_cpu(None))
    return [here] + [n for n, _ in t.cpu_threads() if n != here]


def fault_report(cpu: int | None = None, vcpu_pa: int | None = None) -> FaultReport:
    """The stage-2 abort to explain: live when a CPU is at EL2 with HCR_EL2.VM still set (stopped at
    the exit: `rkvm exit catch`), else the last exit record of the vCPU at `vcpu_pa` or of the vCPU
    that ran last on the CPU (the selected one first). RkvmError when there is nothing to explain."""
    if vcpu_pa is not None:
        v = world.read_vcpu(vcpu_pa)
        return _report(cpu if cpu is not None else t.cpu_of(t.thread_for_cpu(None)), RECORD, _recorded(v),
                       vcpu_pa, v.exit.count)
    tried = []
    for n in _cpus(cpu):
        if t.current_el(n) == 2 and regfields.stage2_enabled(t.read_register("HCR_EL2", n)):
            return _report(n, LIVE, _live(n), world.world(n).vcpu_pa, None)
        w = world.world(n)
        if w.vcpu_pa:
            v = world.read_vcpu(w.vcpu_pa)
            if v.exit.count:
                return _report(n, RECORD, _recorded(v), w.vcpu_pa, v.exit.count)
        tried.append(str(n))
    raise RkvmError(f"no guest exit to explain on CPU {', '.join(tried)}: no CPU is stopped at a guest exit and "
                    "no vCPU has exited yet (run the guest: echo \"run 100\" > /sys/kernel/debug/rkvm/guest, with "
                    "'rkvm exit catch --reason dabt' armed)")
