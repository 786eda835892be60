"""What `--explain` says about the guest world: each guest exit reason (what the guest did, what a VMM
typically does about it), each stage 2 fault kind, each VMM action, and the lab's guest-world modes.

The texts are for a learner writing a KVM-like hypervisor. The fixed texts name no values; the
explain_* functions add only the values the record they are given holds (a GuestExit from
arch/exits.classify, a Stage2Fault from arch/stage2_fault.autopsy), so nothing is said that the state
does not show.
"""

from dataclasses import dataclass

from gdb_rkvm.arch import esr
from gdb_rkvm.arch.exits import ExitReason, GuestExit
from gdb_rkvm.arch.stage2_fault import Stage2Fault, VmmAction


@dataclass(frozen=True)
class Explanation:
    """One explanation: what happened, and what a hypervisor is expected to do about it."""

    title: str
    happened: str       # what the guest (or the CPU) did
    vmm: str            # what a VMM typically does next

    def lines(self) -> list[str]:
        return [f"{self.title}: {self.happened}", f"  a VMM: {self.vmm}"]


EXIT_TEXTS: dict[ExitReason, Explanation] = {
    ExitReason.HVC: Explanation(
        "hypercall (HVC)",
        "the guest executed `hvc` at EL1: a deliberate call to its hypervisor, with its arguments in "
        "general-purpose registers (by the SMC Calling Convention, a function ID in x0 and arguments in x1 up)",
        "reads the function ID and arguments from the saved guest registers, does the work (PSCI CPU_ON/OFF, a "
        "paravirtual service, a print as in the lab), writes the result to the guest's x0 and resumes it: ELR_EL2 "
        "already points after the `hvc`"),
    ExitReason.SMC: Explanation(
        "trapped SMC",
        "the guest executed `smc` (a call to secure firmware: PSCI on many boards) and HCR_EL2.TSC trapped it "
        "to EL2 instead",
        "emulates the firmware call (usually PSCI) itself, writes the result to the guest's x0 and skips the "
        "`smc`: a trapped SMC leaves ELR_EL2 at the instruction, not after it"),
    ExitReason.DABT: Explanation(
        "data abort from the guest (stage 2)",
        "a guest load or store reached an IPA that stage 2 does not map, or maps without the permission "
        "needed: HPFAR_EL2 holds the faulting IPA's page, FAR_EL2 the guest's VA",
        "looks the IPA up: guest RAM not mapped yet -> map the page and resume at the same instruction; a "
        "device -> emulate the access (ISV = 1 gives the register and size) and skip the instruction; "
        "neither -> inject an abort into the guest"),
    ExitReason.IABT: Explanation(
        "instruction abort from the guest (stage 2)",
        "the guest fetched an instruction from an IPA that stage 2 does not map, or maps execute-never",
        "maps the page (guest RAM, after cleaning the caches to the point of unification if it wrote code "
        "there) and resumes at the same instruction, or injects a prefetch abort when the IPA is not RAM"),
    ExitReason.WFX: Explanation(
        "trapped WFI/WFE",
        "the guest has nothing to do and waits for an interrupt (WFI) or an event (WFE); HCR_EL2.TWI/TWE "
        "trapped it so the physical CPU is not held",
        "schedules something else (or blocks the vCPU thread) until the guest has an interrupt pending, then "
        "resumes it after the instruction: ELR_EL2 += the instruction length"),
    ExitReason.SYSREG: Explanation(
        "trapped system register access",
        "the guest read or wrote a system register (MRS/MSR) or ran a system instruction that a HCR_EL2 or "
        "CPTR_EL2 trap control sends to EL2 (TVM for the MMU registers, TID for ID registers, ...)",
        "emulates the access on the vCPU's copy of the register (for a read: writes the value to the guest's "
        "Rt), then skips the instruction: ELR_EL2 points at it"),
    ExitReason.FPSIMD: Explanation(
        "trapped FP/SIMD or SVE use",
        "the guest used a floating-point, SIMD or SVE register while CPTR_EL2 traps them: the usual lazy switch, "
        "the host's FP state is still in the registers",
        "saves the host's FP/SIMD state, loads the guest's, stops trapping and resumes at the same instruction"),
    ExitReason.IRQ: Explanation(
        "physical IRQ",
        "nothing the guest did: a physical interrupt arrived while the guest ran, and HCR_EL2.IMO routes "
        "physical IRQs to EL2",
        "returns to the host so it takes the interrupt (it arrives as soon as the host unmasks IRQs), then runs "
        "the guest again; an interrupt meant for the guest is injected as a virtual IRQ (HCR_EL2.VI, or the "
        "GIC's list registers)"),
    ExitReason.FIQ: Explanation(
        "physical FIQ",
        "nothing the guest did: a physical FIQ arrived while the guest ran, and HCR_EL2.FMO routes it to EL2",
        "as for an IRQ: lets the host take it, then resumes the guest"),
    ExitReason.SERROR: Explanation(
        "SError",
        "an asynchronous abort (an external error, often from a bus) arrived while the guest ran, routed to EL2 "
        "by HCR_EL2.AMO",
        "decides whose error it is: the host's (handle or panic) or the guest's (inject a virtual SError, "
        "HCR_EL2.VSE)"),
    ExitReason.DEBUG: Explanation(
        "debug exception",
        "a breakpoint, watchpoint, software step or BRK in the guest, trapped to EL2 (MDCR_EL2.TDE or a "
        "debugger on the host)",
        "hands it to the host-side debugger when it set it, or injects it into the guest when the guest is "
        "debugging itself"),
    ExitReason.OTHER: Explanation(
        "other exit",
        "an exception class a small hypervisor does not expect from its guest (an undefined instruction trapped "
        "to EL2, an illegal execution state, ...)",
        "logs it and injects an undefined instruction exception into the guest, or stops the vCPU"),
}


def explain_exit(e: GuestExit) -> list[str]:
    """The explanation of one exit, with the values the record has: the instruction, the register, the
    immediate, and where the guest resumes."""
    lines = EXIT_TEXTS[e.reason].lines()
    if e.imm16 is not None and e.reason in (ExitReason.HVC, ExitReason.SMC):
        lines.append(f"  this one: immediate {e.imm16:#x} (ESR_EL2.ISS.imm16)")
    if e.wfx is not None:
        lines.append(f"  this one: {e.wfx}")
    if e.sysreg is not None:
        lines.append(f"  this one: {'a write to' if e.sysreg_write else 'a read of'} {e.sysreg}")
    if e.esr is not None and e.elr_at_instruction:
        lines.append(f"  to skip it after emulating: ELR_EL2 += {esr.instruction_length(e.esr)} (ESR_EL2.IL)")
    return lines


FAULT_KIND_TEXTS: dict[str, Explanation] = {
    "translation": Explanation(
        "stage 2 translation fault",
        "the stage 2 walk found an invalid descriptor (bit 0 clear) for the IPA: stage 2 maps nothing there",
        "if the IPA is guest RAM, map it (the normal way memory is given to a guest on demand); if it is a "
        "device, this is an MMIO access to emulate"),
    "access flag": Explanation(
        "stage 2 access flag fault",
        "the descriptor is valid but its AF bit is clear and the hardware does not set it (VTCR_EL2.HA = 0)",
        "sets AF in the descriptor (how a hypervisor learns which guest pages are in use) and resumes"),
    "permission": Explanation(
        "stage 2 permission fault",
        "the IPA is mapped, but S2AP or XN forbids this read, write or fetch",
        "makes the page writable after dirty-page logging or copy-on-write, or executable after cleaning "
        "the caches; HPFAR_EL2 may not hold the IPA for this kind (outside a table walk)"),
    "address size": Explanation(
        "stage 2 address size fault",
        "an address is wider than the stage 2 allows: the IPA beyond VTCR_EL2.T0SZ, or VTTBR_EL2 or a "
        "descriptor's output beyond VTCR_EL2.PS",
        "fixes VTCR_EL2 or the tables (a hypervisor bug), or injects an abort if the guest really went beyond "
        "its IPA space"),
    "external abort": Explanation(
        "synchronous external abort",
        "the memory system answered the access (or a table walk's read) with an error",
        "injects an external abort into the guest, or treats it as a host memory error"),
    "other": Explanation(
        "other fault",
        "a fault status a stage 2 walk does not produce (alignment, TLB conflict, ...)",
        "reads the fault status in ESR_EL2.ISS.DFSC/IFSC and usually injects an abort into the guest"),
}

S1PTW_TEXT = ("the fault is on the guest's own page table: the CPU translates each stage 1 table address (an IPA) "
              "through stage 2 before reading it, and that table page is not mapped (ESR_EL2.ISS.S1PTW = 1); the "
              "guest's VA itself may be fine")

ACTION_TEXTS: dict[VmmAction, str] = {
    VmmAction.EMULATE_MMIO: "emulate the device access with the register and size from the syndrome, then skip "
                            "the instruction",
    VmmAction.DECODE_MMIO: "no syndrome (ISV = 0): decode the guest's instruction to emulate it, or inject an abort",
    VmmAction.MAP_PAGE: "map the guest RAM page at stage 2 and resume at the same instruction",
    VmmAction.MAP_TABLE_PAGE: "map the guest's page table page at stage 2 and resume at the same instruction",
    VmmAction.SET_ACCESS_FLAG: "set the access flag in the stage 2 descriptor and resume",
    VmmAction.FIX_PERMISSION: "change the stage 2 permissions (dirty logging, copy-on-write, execute) and resume",
    VmmAction.FIX_STAGE2: "fix VTCR_EL2 or the stage 2 tables: they disagree with the addresses in use",
    VmmAction.INJECT_ABORT: "inject an abort into the guest: nothing to map or emulate",
    VmmAction.NOT_A_STAGE2_ABORT: "not a stage 2 abort: see the exit reason instead",
}


def explain_fault(f: Stage2Fault) -> list[str]:
    """The explanation of one stage 2 fault, with the values the autopsy has: the level, the VA (unless
    FnV), the IPA (unless HPFAR_EL2 may be UNKNOWN), the access's size and register (when ISV)."""
    if not f.is_stage2_abort:
        return [ACTION_TEXTS[VmmAction.NOT_A_STAGE2_ABORT]]
    lines = FAULT_KIND_TEXTS.get(f.kind, FAULT_KIND_TEXTS["other"]).lines()
    if f.level is not None:
        lines.append(f"  the walk stopped at level {f.level}")
    if f.s1ptw:
        lines.append("  " + S1PTW_TEXT)
    where = []
    if f.va is not None:
        where.append(f"VA {f.va:#x} (FAR_EL2)")
    else:
        where.append("VA not given (ESR_EL2.ISS.FnV = 1)")
    if f.ipa_reliable:
        where.append(f"IPA {f.ipa:#x}" if f.ipa_offset_known else f"IPA page {f.ipa_page:#x} (HPFAR_EL2)")
    else:
        where.append("IPA not reliable here (HPFAR_EL2 may be UNKNOWN for a permission fault)")
    lines.append("  " + ", ".join(where))
    if f.access is not None:
        rw = "a store from" if f.write else "a load into"
        lines.append(f"  ISV = 1: {rw} {f.access.register}, {f.access.size} byte(s) (ISS.SRT, ISS.SAS)")
    lines.append(f"  next: {ACTION_TEXTS[f.action]}")
    return lines


MODE_TEXTS: dict[str, Explanation] = {
    "s2-vmalloc": Explanation(
        "stage 2 tables from vmalloc",
        "the tables were allocated with vmalloc and VTTBR_EL2 (and the table descriptors) made with "
        "virt_to_phys(): arithmetic that is only right for the linear map, so the CPU walks whatever memory "
        "is at the wrong PA; the guest never runs an instruction: an instruction abort at its entry IPA, over "
        "and over",
        "allocate stage 2 tables with alloc_pages() (physically contiguous, in the linear map) and use "
        "page_to_phys(); check that VTTBR_EL2's base is RAM and holds the tables you built"),
    "s2-hole": Explanation(
        "a guest RAM page missing from stage 2",
        "one page of guest RAM is left out of stage 2 while the VMM believes it is mapped: every access there "
        "is a stage 2 translation fault, the VMM resumes the guest unchanged, and the same fault comes back "
        "forever (a fault loop at one IPA)",
        "map the page the fault names (HPFAR_EL2) before resuming, and treat the same fault at the same IPA "
        "twice in a row as a bug, not as a retry"),
    "host-clobber": Explanation(
        "the host's EL1 state not restored after an exit",
        "the world switch loads the guest's EL1 registers but its exit path does not load the host's back: the "
        "host kernel resumes with the guest's page tables, vectors and stack, and dies at the first exit",
        "save and restore every EL1 register the guest can change (SCTLR, TTBRs, TCR, MAIR, VBAR, SP_EL1, "
        "TPIDR, ...) on both sides of the switch, in one place, from one list"),
    "vtcr-mismatch": Explanation(
        "VTCR_EL2 disagrees with the tables",
        "the tables were built for one IPA size and start level and VTCR_EL2 says another (T0SZ or SL0): the "
        "hardware walks them with the wrong geometry, and the first fetch at the entry IPA faults",
        "derive the table geometry from the VTCR_EL2 value you load (or the reverse) in one function, and "
        "check it with the Arm ARM's rules for T0SZ and SL0 before the first run"),
}
