from gdb_rkvm.arch.stage2 import vttbr_baddr
from gdb_rkvm.errors import RkvmError
from gdb_rkvm.live import gdb_target as t
from gdb_rkvm.live import guest_state, world
from gdb_rkvm.model.world import vcpu_view
from gdb_rkvm.commands.base import STOPPED, RkvmCommand, only_when, parse_int
from gdb_rkvm.commands.format import hx, table


@only_when(STOPPED)
class RkvmVcpu(RkvmCommand):
    """A vCPU structure: the guest's registers, the stage 2 it runs with, its last exit decoded.

Usage: rkvm vcpu [PA] [--cpu N] [--json] [--explain]
PA is the vCPU's physical address (RKVM_VCPU_* layout, docs/hvc-abi.md); without it, the vCPU the
selected CPU (or --cpu N) runs or ran last, from the stub's host save area, else rkvm.ko's.
Shows x0-x30, PC, PSTATE decoded, SP_EL0/SP_EL1, the guest's EL1 registers, HCR_EL2/VTTBR_EL2/VTCR_EL2,
and the last exit: ESR_EL2 decoded, the exit classified, and for a stage-2 abort the IPA, level and
what a VMM does about it.
Example:
  (gdb) rkvm vcpu
  vCPU at PA 0x41e5c000 (last ran on CPU 0; saved at its last exit)
  PC 0x80000058  PSTATE 0x3c5 EL1h  SP_EL1 0x8000fff0
  last exit #200: dabt    EC 0x24 DABT_LOW: ... IPA 0x8000fff8"""

    name = "vcpu"
    explains = True

    def add_arguments(self, p):
        p.add_argument("pa", nargs="?", help="physical address of the vCPU structure")
        self.add_cpu_argument(p)

    def run(self, args):
        cpu = t.cpu_of(t.thread_for_cpu(args.cpu))
        pa = parse_int(args.pa, "vCPU address") if args.pa else world.vcpu_pa_of(cpu)
        if not pa:
            raise RkvmError(f"no vCPU has run on CPU {cpu} and rkvm.ko names none: give its physical address")
        v = world.read_vcpu(pa)
        running = [n for n, _ in t.cpu_threads() if _runs(n, pa)]
        return vcpu_view(pa, v, running, guest_state.guest_ram(world.read_guest_module()))

    def format(self, r, args):
        where = (f"running on CPU {', '.join(map(str, r.running_on))}: these are the registers saved at its last "
                 "exit, the live ones are that CPU's ('rkvm el')" if r.running_on else
                 "saved at its last exit" if r.exit.count else "as rkvm.ko prepared it: it has not run yet")
        lines = [f"vCPU at PA {r.pa:#x} ({where})",
                 f"PC {r.pc:#x}  PSTATE {r.pstate:#x} {r.pstate_text}  SP_EL1 {r.sp_el1:#x}  SP_EL0 {r.sp_el0:#x}"]
        lines += ["  ".join(f"x{n + i:<2} {r.x[n + i]:#018x}" for i in range(4) if n + i < 31) for n in range(0, 31, 4)]
        lines += ["", f"HCR_EL2   {r.hcr_el2:#x}  {r.hcr_text}",
                  f"VTTBR_EL2 {r.vttbr_el2:#x}  VMID {r.vmid}, stage-2 tables at PA {vttbr_baddr(r.vttbr_el2):#x}",
                  f"VTCR_EL2  {r.vtcr_el2:#x}  {r.vtcr_text}", "",
                  table([[n, hx(v)] for n, v in r.el1.items()], ["guest EL1 register", "value"]), ""]
        e = r.exit
        if not e.count:
            lines.append("no exit yet: the vCPU has never run "
                         "(echo \"run 100\" > /sys/kernel/debug/rkvm/guest runs it)")
            return "\n".join(lines + (["", *_explain(r)] if args.explain else []))
        lines.append(f"last exit (#{e.count}): {e.text}")
        lines.append(f"  ESR_EL2 {e.esr:#x}: {r.esr_text}")
        lines.append(f"  FAR_EL2 {e.far:#x}  HPFAR_EL2 {e.hpfar:#x}  (IPA {e.ipa:#x})")
        if r.fault:
            f = r.fault
            ram = {True: ", guest RAM", False: ", not guest RAM (a device)", None: ""}[f["in_guest_ram"]]
            lines += [f"  {f['what']}{ram}", f"  {f['fault']}", f"  VMM: {f['action']}: {f['advice']}"]
        if args.explain:
            lines += ["", *_explain(r)]
        return "\n".join(lines)


def _runs(cpu: int, pa: int) -> bool:
    w = world.world(cpu)
    return w.in_guest and w.vcpu_pa == pa


def _explain(r) -> list[str]:
    out = ["A vCPU structure is the VMM's copy of a guest CPU: the stub's world switch loads it into the CPU on "
           "RKVM_HVC_VCPU_RUN (x0-x30, PC into ELR_EL2, PSTATE into SPSR_EL2, the EL1 registers, HCR_EL2 with "
           "VM = 1, VTTBR_EL2, VTCR_EL2) and saves it back on the guest's exit, with the exit's ESR_EL2, FAR_EL2 "
           "and HPFAR_EL2.",
           "VTTBR_EL2 holds the stage-2 table base (a physical address) and the VMID that tags the guest's TLB "
           "entries; VTCR_EL2 the IPA size (T0SZ), the granule and the start level of the walk.",
           *r.esr_explain]
    if r.fault:
        out.append("For a stage-2 abort HPFAR_EL2 gives the faulting IPA's page and FAR_EL2 the guest's VA; the "
                   "VMM either maps guest RAM, emulates a device access and skips the instruction, or injects an "
                   "abort into the guest.")
    return out
