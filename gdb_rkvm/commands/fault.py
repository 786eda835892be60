from gdb_rkvm.arch.stage2_fault import VmmAction
from gdb_rkvm.live import guest_fault
from gdb_rkvm.live.guest_fault import LIVE, FaultReport
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when, parse_int


def _ram_text(r: FaultReport) -> str:
    ranges = ", ".join(f"{s:#x}-{s + n - 1:#x}" for s, n in r.ram)
    f = r.fault
    if f.in_guest_ram is None:
        return "RAM or device: unknown"
    what = "guest RAM" if f.in_guest_ram else "not guest RAM: a device (MMIO) the VMM emulates"
    return f"{what} (guest RAM is IPA {ranges})"


def _why(r: FaultReport) -> list[str]:
    """The descriptor and the bit the walk of the tables found now, and whether it agrees with the syndrome."""
    w = r.fault.walk
    if w is None:
        return ["  why          no walk: FAR_EL2 is not valid (ISS.FnV) or this is not a stage 2 abort"]
    if w.truncated:
        return [f"  why          walk stopped: {w.truncated}"]
    if w.fault is None:
        return [f"  why          the tables translate it now (VA {w.va:#x} -> IPA {w.ipa:#x} -> PA {w.pa:#x}): "
                "changed since the exit, or a fault the walk cannot see (a TLB, a race)"]
    lines = [f"  why          {w.fault.describe()}"]
    steps = (w.stage2.steps if w.fault.stage == 2 and w.stage2 is not None else w.stage1) or ()
    if steps:
        lines.append(f"  descriptor   {steps[-1].describe()}")
    f = r.fault
    if (w.fault.stage, w.fault.level) != (2, f.level) and f.kind != "permission":
        lines.append(f"  note         the syndrome says stage 2 level {f.level}; the tables now say stage "
                     f"{w.fault.stage} level {w.fault.level} (changed since the exit?)")
    return lines


def format_fault(r: FaultReport, explain: bool = False) -> str:
    """One screen: what the guest did, which stage and level failed and why, what a VMM does."""
    f = r.fault
    where = ("stopped at the exit (live ESR_EL2, FAR_EL2, HPFAR_EL2)" if r.source == LIVE else
             f"the vCPU's last exit record (exit #{r.exit_count})")
    vcpu = f", vCPU at PA {r.vcpu_pa:#x}" if r.vcpu_pa else ""
    lines = [f"rkvm fault: CPU {r.cpu}, guest VMID {r.vmid}{vcpu}: {where}",
             f"  guest PC     {r.guest_pc:#x} at EL{r.guest_el} (ELR_EL2)",
             f"  the guest    {f.what_the_guest_did()}"]
    if not f.is_stage2_abort:
        lines.append(f"  ESR_EL2      {f.esr:#x}: {f.advice}")
        return "\n".join(lines)
    lines.append(f"  failed       {f.fault_text()}")
    lines += _why(r)
    lines.append(f"  IPA {f.ipa:#x}  " + _ram_text(r))
    lines.append(f"  the VMM      {f.action.value}: {f.advice}")
    lines.append(f"  ESR_EL2 {f.esr:#x}  FAR_EL2 {f.far:#x}  HPFAR_EL2 {f.hpfar:#x}")
    if explain:
        lines += _explain(r)
    return "\n".join(lines)


def _explain(r: FaultReport) -> list[str]:
    f = r.fault
    out = ["",
           "A stage 2 abort: the guest's own stage 1 (TTBR0/1_EL1, TCR_EL1) turned its VA into an IPA, and the",
           "hypervisor's stage 2 (VTTBR_EL2, VTCR_EL2) had no usable entry for that IPA, so the access trapped to",
           "EL2 instead of reaching memory. FAR_EL2 holds the guest's VA; HPFAR_EL2.FIPA (bits [43:4]) the IPA's",
           "page, so the IPA is FIPA << 12 | FAR_EL2[11:0]. ESR_EL2.ISS.DFSC names the kind and the level."]
    if f.access is not None:
        out.append(f"ISS.ISV = 1: the syndrome names the register (ISS.SRT = {f.access.srt}, ISS.SF) and the size "
                   f"(ISS.SAS), so a VMM can emulate the access without decoding the instruction.")
    if f.action is VmmAction.EMULATE_MMIO:
        out.append("This IPA is no RAM: it is a device the VMM emulates (here rkvm.ko's tiny UART), then it moves "
                   "ELR_EL2 past the instruction and re-enters the guest.")
    elif f.action is VmmAction.MAP_PAGE:
        out.append("This IPA is guest RAM that stage 2 leaves out: a VMM maps the page (or pages it in) and "
                   "re-enters the guest at the same PC; left unmapped, the guest faults on it forever.")
    return out


@only_when(STOPPED)
class RkvmFault(RkvmCommand):
    """Explain a guest's stage-2 abort: what it did, which stage and level failed and why, what a VMM does.

Usage: rkvm fault [--cpu N] [--vcpu PA] [--json] [--explain]
Stopped at the exit (`rkvm exit catch --reason dabt`, CPU at EL2 with HCR_EL2.VM still 1) it reads
ESR_EL2, FAR_EL2, HPFAR_EL2 and the guest's EL1 registers live; otherwise the last exit record of the
vCPU that ran on the CPU (the stub's save area names it), or of the vCPU at --vcpu PA. It walks the
guest's VA through both stages (the guest's stage 1, then stage 2) to name the descriptor and the
bit, and tells guest RAM (RKVM_GUEST_RAM_IPA/SIZE of the ABI header) from a device.
Example:
  (gdb) rkvm fault
  rkvm fault: CPU 0, guest VMID 1, vCPU at PA 0x41b40000: stopped at the exit (live ESR_EL2, ...)
    guest PC     0x80000058 at EL1 (ELR_EL2)
    the guest    VA 0x49000000 -> IPA 0x9000000: 1-byte write of w1
    failed       stage 2 translation fault at level 1 (FSC 0x05: translation fault, level 1)
    ...
    the VMM      emulate-mmio: MMIO: write the low 1 byte(s) of w1 to the device at IPA 0x9000000, ..."""

    name = "fault"
    explains = True

    def add_arguments(self, p):
        self.add_cpu_argument(p)
        p.add_argument("--vcpu", type=lambda s: parse_int(s, "vCPU physical address"),
                       help="the vCPU structure's PA (default: the one the CPU ran last)")

    def run(self, args):
        return guest_fault.fault_report(args.cpu, args.vcpu)

    def format(self, r, args):
        return format_fault(r, args.explain)
