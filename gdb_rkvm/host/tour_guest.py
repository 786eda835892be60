"""`rkvm tour`'s guest part: into the lab's guest and back. The host runs the guest's vCPU from debugfs;
the steps stop on the way in (rkvm.ko's guest-enter hook event), at the guest's first instruction (a
hardware breakpoint: the guest's addresses are IPAs, nothing to patch), at its first stage 2 exit (the
emulated UART) and on the way out (guest-exit).

One step is one record: a step's commands can be swapped for a dedicated command (`rkvm vcpu`,
`rkvm fault`, `rkvm exit catch`) without touching the others.
"""

from gdb_rkvm.host.tour_step import Step

GUEST_FILE = "/sys/kernel/debug/rkvm/guest"
RUN_GUEST = f'echo "run 1000" > {GUEST_FILE}'   # room for the IRQ exits a debugger's stops add
ENTRY_IPA = 0x80000000         # RKVM_GUEST_RAM_IPA: the guest starts at its first byte, MMU off
# the lower-EL sync slot is shared with the host's own HVCs (the next world switch among them):
# stop only for a data abort from a lower EL (ESR_EL2.EC 0x24)
DABT_EXIT = "thbreak *($VBAR_EL2 + 0x400) if (($ESR_EL2 >> 26) & 0x3f) == 0x24"
PY = "python from gdb_rkvm.live import world_view; world_view."

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
    "0x80000000 is no host address) stops there.",
    (f"thbreak *{ENTRY_IPA:#x}", "continue", "rkvm el", "rkvm sysreg HCR_EL2"),
    "PC 0x80000000 at EL1h, and HCR_EL2: VM = 1 (stage 2 on), IMO/FMO (physical interrupts exit to EL2), TWI "
    "(WFI exits), TSC (SMC exits). Same EL as the host kernel: only HCR_EL2 tells the worlds apart.")

STAGE2 = Step(
    "Whose stage 2: VTTBR_EL2 and VTCR_EL2",
    "Every guest access now goes through stage 2: the IPA is looked up in the tables at VTTBR_EL2's base, "
    "shaped by VTCR_EL2 (IPA size T0SZ, granule TG0, start level SL0). The VMID in VTTBR_EL2 tags the TLB "
    "entries, so this guest's IPA 0x80000000 is never confused with another's.",
    ("rkvm sysreg VTTBR_EL2", "rkvm sysreg VTCR_EL2"),
    "VTTBR_EL2's VMID (1) and its base: the value's low bits, 0x...e0000, are the stage-2 table's PA (from "
    "alloc_pages; the BADDR field shows it shifted right by 1); VTCR_EL2's T0SZ 0x20 (32: a 4 GiB IPA space), "
    "SL0 1 (with 4K pages: start at level 1) and TG0 4KB.")

TWO_WORLDS = Step(
    "Two sets of EL1 registers",
    "The live EL1 registers are the guest's now (MMU off, no vectors yet, its stack at the top of its RAM). The "
    "host kernel's are in the stub's host save area, to be loaded back at the next exit. A debugger that reads "
    "SCTLR_EL1 or TTBR1_EL1 here and thinks 'the kernel' is reading the guest.",
    (PY + "show()",),
    "the two columns: SCTLR_EL1 (the guest's M bit 0), TTBR1_EL1 and VBAR_EL1 (0 for the guest, the kernel's "
    "tables and `vectors` in the save area), SP_EL1; and where the host resumes (ELR_EL2, just after its HVC in "
    "vcpu_run_hvc).")

MMIO_EXIT = Step(
    "A guest exit: the guest writes to its UART",
    "The guest turns its MMU on and prints its greeting through a UART at VA 0x49000000, which its stage 1 "
    "maps to IPA 0x09000000. Stage 2 maps nothing there on purpose: the store is a stage 2 data abort, taken to "
    "EL2 at VBAR_EL2 + 0x400 (Lower EL, AArch64, Synchronous), the slot host HVCs use too. The syndrome "
    "describes the store (ISV = 1: register and size), HPFAR_EL2 gives the IPA's page: all a VMM needs to "
    "emulate the device without decoding the instruction. The breakpoint's condition skips the host's own "
    "HVCs, which enter at the same slot.",
    (DABT_EXIT, "continue", "rkvm esr --explain", "rkvm sysreg HPFAR_EL2", "p/x $FAR_EL2",
     PY + "show_fault()"),
    "ESR_EL2's EC 0x24 (data abort from a lower EL), ISV = 1, SAS byte, SRT 1 with SF 0 (w1 holds the "
    "character), WnR = 1 (a write), DFSC 0x5 (translation fault, level 1: stage 2 has no entry at all there); "
    "FAR_EL2 = the guest's VA 0x49000000, HPFAR_EL2.FIPA = 0x9000 (IPA 0x09000000); the verdict: emulate the "
    "one-byte store, then ELR_EL2 += 4.")

BACK_TO_HOST = Step(
    "Back to the host",
    "The stub saves the guest's registers and the exit syndrome in the vCPU, puts the host's HCR_EL2 (VM = 0) "
    "and EL1 registers back and ERETs to the instruction after the host's HVC with x0 = the exit reason. "
    "rkvm.ko reports guest-exit, prints the character (the UART's emulation) and runs the guest again, until it "
    "says it is done.",
    ("rkvm run-to guest-exit", "rkvm sysreg HCR_EL2", PY + "show_exit()", "@console"),
    "the run-to line's arg (1: a synchronous exit), HCR_EL2.VM = 0 again, the exit record the stub saved in the "
    "vCPU, and the guest's whole greeting on the console: one exit per character.")

GUEST_STEPS = [ENTER, FIRST_INSTRUCTION, STAGE2, TWO_WORLDS, MMIO_EXIT, BACK_TO_HOST]
