"""`rkvm tour`'s guest part: into the lab's guest and back. The host runs the guest's vCPU from debugfs;
the steps stop on the way in (rkvm.ko's guest-enter hook event), at the guest's first instruction (a
hardware breakpoint: the guest's addresses are IPAs, nothing to patch), at its first stage 2 exit (the
emulated UART) and on the way out (guest-exit).

One step is one record; each shows the world through the command made for it: `rkvm cpus` and `rkvm el`
(which world, whose EL1 registers), `rkvm exit catch` (a guest exit, never a host HVC), `rkvm fault`,
`rkvm walk --stage 2`/`--guest` and `rkvm vcpu`.
"""

from gdb_rkvm.host.tour_step import Step
from gdb_rkvm.model import stub_abi

GUEST_FILE = "/sys/kernel/debug/rkvm/guest"
RUN_GUEST = f'echo "run 1000" > {GUEST_FILE}'   # room for the IRQ exits a debugger's stops add
ENTRY_IPA = stub_abi.value("RKVM_GUEST_RAM_IPA")   # the guest starts at its first byte, MMU off
# the lower-EL sync slot is shared with the host's own HVCs (the next world switch among them) and, under
# GDB, timer IRQs exit the guest too: the catch stops only on a guest exit (HCR_EL2.VM = 1) that is a
# data abort
DABT_EXIT = "rkvm exit catch --reason dabt"
UART_VA = stub_abi.value("RKVM_GUEST_UART_VA")   # the guest's stage 1 maps it to RKVM_GUEST_UART_IPA, which
# stage 2 leaves out

ENTER = Step(
    "A guest: the host asks to run it",
    "rkvm.ko also holds a small guest: 64 KiB of RAM at IPA 0x80000000, its own stage-2 tables and a vCPU "
    "structure. Writing `run N` to its debugfs file makes the module call the stub's world switch "
    "(RKVM_HVC_VCPU_RUN, an HVC with x1 = the vCPU's PA) up to N times, handling an exit between runs. Just "
    "before each run the module calls its debugger hook with the guest-enter event: the CPU is still the host.",
    (f"@send {RUN_GUEST}", "rkvm run-to guest-enter", "rkvm sysreg HCR_EL2"),
    "the run-to line's arg (the vCPU's physical address) and HCR_EL2.VM = 0: stage 2 is off, EL1 is the host "
    "kernel.")

FIRST_INSTRUCTION = Step(
    "Through the world switch: the guest's first instruction",
    "The stub saves the host's EL1 registers in its per-CPU host save area, loads the guest's, writes "
    "VTTBR_EL2/VTCR_EL2 and an HCR_EL2 with VM = 1, and ERETs to the vCPU's PC at EL1. The guest begins with its "
    "MMU off, so its PC is an IPA: a hardware breakpoint (`thbreak`: it patches no memory, and the guest's "
    "0x80000000 is no host address) stops there. `rkvm cpus` names each CPU's world.",
    (f"thbreak *{ENTRY_IPA:#x}", "continue", "rkvm cpus", "rkvm sysreg HCR_EL2"),
    "the world column: this CPU in 'guest VMID 1' at PC 0x80000000, the other in the host; HCR_EL2: VM = 1 "
    "(stage 2 on), IMO/FMO (physical interrupts exit to EL2), TWI (WFI exits), TSC (SMC exits). Same EL1h as "
    "the host kernel: only HCR_EL2 tells the worlds apart.")

STAGE2 = Step(
    "Whose stage 2: VTTBR_EL2 and VTCR_EL2",
    "Every guest access now goes through stage 2: the IPA is looked up in the tables at VTTBR_EL2's base, "
    "shaped by VTCR_EL2 (IPA size T0SZ, granule TG0, start level SL0). The VMID in VTTBR_EL2 tags the TLB "
    "entries, so this guest's IPA 0x80000000 is never confused with another's. `rkvm walk --stage 2` walks "
    "those tables for one IPA, as the MMU does.",
    ("rkvm sysreg VTTBR_EL2", "rkvm sysreg VTCR_EL2", f"rkvm walk --stage 2 {ENTRY_IPA:#x}"),
    "VTTBR_EL2's VMID (1) and its BADDR: the stage-2 table's PA (from alloc_pages); VTCR_EL2's T0SZ 0x20 (32: a "
    "4 GiB IPA space), SL0 1 (with 4K pages: start at level 1) and TG0 4KB; the walk starting at level 1 at "
    "that PA, and the guest RAM page IPA 0x80000000 lands on.")

TWO_WORLDS = Step(
    "Two sets of EL1 registers",
    "The live EL1 registers are the guest's now (MMU off, no vectors yet, its stack at the top of its RAM). The "
    "host kernel's are in the stub's host save area, to be loaded back at the next exit. A debugger that reads "
    "SCTLR_EL1 or TTBR1_EL1 here and thinks 'the kernel' is reading the guest: `rkvm el` labels them.",
    ("rkvm el",),
    "the world line (in the guest, VMID 1, VTTBR_EL2), the EL1 registers marked 'guest', and the table below: "
    "SCTLR_EL1 (the guest's M bit 0), TTBR1_EL1 and VBAR_EL1 (0 for the guest, the kernel's tables and "
    "`vectors` in the save area), and SP_EL1 (the guest has set no stack yet; the kernel's is in the save "
    "area).")

MMIO_EXIT = Step(
    "A guest exit: the guest writes to its UART",
    "The guest turns its MMU on and prints its greeting through a UART at VA 0x49000000, which its stage 1 "
    "maps to IPA 0x09000000. Stage 2 maps nothing there on purpose: the store is a stage 2 data abort, taken to "
    "EL2 at VBAR_EL2 + 0x400 (Lower EL, AArch64, Synchronous), the slot host HVCs use too. `rkvm exit catch` "
    "stops only on guest exits (HCR_EL2.VM = 1 at the entry), here only data aborts; `rkvm fault` reads the "
    "syndrome as a VMM does: ISV = 1 names the register and size, HPFAR_EL2 the IPA's page, all it needs to "
    "emulate the device without decoding the instruction.",
    (DABT_EXIT, "continue", "rkvm exit catch --off", "rkvm esr", "rkvm fault --explain"),
    "the catch's line (guest exit dabt, the guest's PC, FAR_EL2 0x49000000, HPFAR_EL2 -> IPA 0x9000000); "
    "ESR_EL2's EC 0x24, ISV = 1, SAS byte, SRT 1 with SF 0 (w1 holds the character), WnR = 1, DFSC 0x5 "
    "(translation fault, level 1: stage 2 has no entry at all there); the fault screen: a 1-byte write of w1, "
    "not guest RAM, and the verdict: emulate the store, then ELR_EL2 += 4.")

TWO_STAGES = Step(
    "Two stages: guest VA -> IPA -> PA",
    "While the CPU stops at the exit its EL1 registers are still the guest's, so the guest's own stage 1 "
    "(TTBR0_EL1, TCR_EL1) can be walked. `rkvm walk --guest` does both stages as the MMU did: each stage 1 "
    "table fetch is itself an IPA, translated through stage 2; the IPA the guest wanted then goes through stage "
    "2. The guest's PC (ELR_EL2) is in its RAM: both stages map it. Its UART is mapped by stage 1 only.",
    ("rkvm walk --guest $ELR_EL2", f"rkvm walk --guest {UART_VA:#x}"),
    "for the PC: the stage 1 levels (tables at IPAs in guest RAM), then the stage 2 levels, ending at a PA; for "
    "0x49000000: stage 1 gives IPA 0x9000000, and stage 2 stops with a translation fault, the same level the "
    "syndrome named.")

BACK_TO_HOST = Step(
    "Back to the host",
    "The stub saves the guest's registers and the exit syndrome in the vCPU, puts the host's HCR_EL2 (VM = 0) "
    "and EL1 registers back and ERETs to the instruction after the host's HVC with x0 = the exit reason. "
    "rkvm.ko reports guest-exit, prints the character (the UART's emulation) and runs the guest again, until it "
    "says it is done. `rkvm vcpu` reads the vCPU structure the stub filled in.",
    ("rkvm run-to guest-exit", "rkvm sysreg HCR_EL2", "rkvm vcpu", "@console"),
    "the run-to line's arg (1: a synchronous exit), HCR_EL2.VM = 0 again, the vCPU's saved registers and its "
    "last exit (the same ESR_EL2, FAR_EL2 and HPFAR_EL2), and the guest's whole greeting on the console: one "
    "exit per character.")

GUEST_STEPS = [ENTER, FIRST_INSTRUCTION, STAGE2, TWO_WORLDS, MMIO_EXIT, TWO_STAGES, BACK_TO_HOST]
