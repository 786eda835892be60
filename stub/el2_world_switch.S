/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The world switch: RKVM_HVC_VCPU_RUN enters a guest at EL1, rkvm_stub_guest_exit comes back to the host.
 * Included by el2_stub.S (same section, same PC-relative rules). Layouts: RKVM_VCPU_*, RKVM_HOST_*
 * and RKVM_EL1_* in rkvm_abi.h; docs/hvc-abi.md tells the story.
 *
 * Built with -DRKVM_STUB_HOST_CLOBBER it is the variant rkvm.ko's mode=host-clobber runs: the exit
 * forgets to load the host's EL1 system registers back, so the host resumes on the guest's
 * VBAR_EL1, TTBRs and SCTLR_EL1.
 */

/* \reg <- this CPU's host save area. Clobbers \tmp. */
.macro this_cpu_host reg, tmp
	mrs	\tmp, mpidr_el1
	and	\tmp, \tmp, #(RKVM_MAX_CPUS - 1)
	adr	\reg, rkvm_stub_vectors + RKVM_OFF_HOST
	add	\reg, \reg, \tmp, lsl #RKVM_HOST_SHIFT
.endm

.macro el1_reg op, sysreg, off, base, tmp
	.ifc	\op, save
	mrs	\tmp, \sysreg
	str	\tmp, [\base, #\off]
	.else
	ldr	\tmp, [\base, #\off]
	msr	\sysreg, \tmp
	.endif
.endm

/* Save (op = save) or load (op = load) an EL1 context at \base. Clobbers \tmp. */
.macro el1_context op, base, tmp
	el1_reg	\op, sctlr_el1,      RKVM_EL1_SCTLR,       \base, \tmp
	el1_reg	\op, ttbr0_el1,      RKVM_EL1_TTBR0,       \base, \tmp
	el1_reg	\op, ttbr1_el1,      RKVM_EL1_TTBR1,       \base, \tmp
	el1_reg	\op, tcr_el1,        RKVM_EL1_TCR,         \base, \tmp
	el1_reg	\op, mair_el1,       RKVM_EL1_MAIR,        \base, \tmp
	el1_reg	\op, amair_el1,      RKVM_EL1_AMAIR,       \base, \tmp
	el1_reg	\op, vbar_el1,       RKVM_EL1_VBAR,        \base, \tmp
	el1_reg	\op, elr_el1,        RKVM_EL1_ELR,         \base, \tmp
	el1_reg	\op, spsr_el1,       RKVM_EL1_SPSR,        \base, \tmp
	el1_reg	\op, esr_el1,        RKVM_EL1_ESR,         \base, \tmp
	el1_reg	\op, far_el1,        RKVM_EL1_FAR,         \base, \tmp
	el1_reg	\op, tpidr_el1,      RKVM_EL1_TPIDR,       \base, \tmp
	el1_reg	\op, contextidr_el1, RKVM_EL1_CONTEXTIDR,  \base, \tmp
	el1_reg	\op, cpacr_el1,      RKVM_EL1_CPACR,       \base, \tmp
	el1_reg	\op, afsr0_el1,      RKVM_EL1_AFSR0,       \base, \tmp
	el1_reg	\op, afsr1_el1,      RKVM_EL1_AFSR1,       \base, \tmp
	el1_reg	\op, par_el1,        RKVM_EL1_PAR,         \base, \tmp
	el1_reg	\op, cntkctl_el1,    RKVM_EL1_CNTKCTL,     \base, \tmp
	el1_reg	\op, tpidr_el0,      RKVM_EL1_TPIDR_EL0,   \base, \tmp
	el1_reg	\op, tpidrro_el0,    RKVM_EL1_TPIDRRO_EL0, \base, \tmp
	el1_reg	\op, csselr_el1,     RKVM_EL1_CSSELR,      \base, \tmp
.endm

/*
 * RKVM_HVC_VCPU_RUN, from the dispatch: x1 = vCPU PA; x2, x3 free; the rest is the host's.
 * The host's x0-x17 are caller-saved (AAPCS64) and the ABI says they are clobbered.
 */
func rkvm_stub_vcpu_run
	this_cpu_host x2, x3
	stp	x18, x19, [x2, #RKVM_HOST_X18 + 0 * 8]
	stp	x20, x21, [x2, #RKVM_HOST_X18 + 2 * 8]
	stp	x22, x23, [x2, #RKVM_HOST_X18 + 4 * 8]
	stp	x24, x25, [x2, #RKVM_HOST_X18 + 6 * 8]
	stp	x26, x27, [x2, #RKVM_HOST_X18 + 8 * 8]
	stp	x28, x29, [x2, #RKVM_HOST_X18 + 10 * 8]
	str	x30, [x2, #RKVM_HOST_X18 + 12 * 8]
	mrs	x3, elr_el2
	str	x3, [x2, #RKVM_HOST_ELR_EL2]
	mrs	x3, spsr_el2
	str	x3, [x2, #RKVM_HOST_SPSR_EL2]
	mrs	x3, hcr_el2
	str	x3, [x2, #RKVM_HOST_HCR_EL2]
	mrs	x3, sp_el0
	str	x3, [x2, #RKVM_HOST_SP_EL0]
	mrs	x3, sp_el1
	str	x3, [x2, #RKVM_HOST_SP_EL1]
	str	x1, [x2, #RKVM_HOST_VCPU]
	ldr	x3, [x2, #RKVM_HOST_RUNS]
	add	x3, x3, #1
	str	x3, [x2, #RKVM_HOST_RUNS]
	add	x4, x2, #RKVM_HOST_EL1
	el1_context save, x4, x3

	add	x4, x1, #RKVM_VCPU_EL1
	el1_context load, x4, x3
	ldr	x3, [x1, #RKVM_VCPU_SP_EL1]
	msr	sp_el1, x3
	ldr	x3, [x1, #RKVM_VCPU_SP_EL0]
	msr	sp_el0, x3
	ldr	x3, [x1, #RKVM_VCPU_PC]
	msr	elr_el2, x3
	ldr	x3, [x1, #RKVM_VCPU_PSTATE]
	msr	spsr_el2, x3
	ldr	x3, [x1, #RKVM_VCPU_VTCR_EL2]
	msr	vtcr_el2, x3
	ldr	x3, [x1, #RKVM_VCPU_VTTBR_EL2]
	msr	vttbr_el2, x3
	isb
	/*
	 * TLB entries of this VMID may come from another run: older tables, another guest RAM (a module
	 * reload), another CPU's vCPU with the same VMID. Drop them on every entry, on this CPU.
	 */
	tlbi	vmalls12e1
	dsb	nsh
	ldr	x3, [x1, #RKVM_VCPU_HCR_EL2]
	msr	hcr_el2, x3
	mov	x3, #1
	str	x3, [x2, #RKVM_HOST_IN_GUEST]
	isb
	ldp	x2, x3, [x1, #RKVM_VCPU_X0 + 2 * 8]
	ldp	x4, x5, [x1, #RKVM_VCPU_X0 + 4 * 8]
	ldp	x6, x7, [x1, #RKVM_VCPU_X0 + 6 * 8]
	ldp	x8, x9, [x1, #RKVM_VCPU_X0 + 8 * 8]
	ldp	x10, x11, [x1, #RKVM_VCPU_X0 + 10 * 8]
	ldp	x12, x13, [x1, #RKVM_VCPU_X0 + 12 * 8]
	ldp	x14, x15, [x1, #RKVM_VCPU_X0 + 14 * 8]
	ldp	x16, x17, [x1, #RKVM_VCPU_X0 + 16 * 8]
	ldp	x18, x19, [x1, #RKVM_VCPU_X0 + 18 * 8]
	ldp	x20, x21, [x1, #RKVM_VCPU_X0 + 20 * 8]
	ldp	x22, x23, [x1, #RKVM_VCPU_X0 + 22 * 8]
	ldp	x24, x25, [x1, #RKVM_VCPU_X0 + 24 * 8]
	ldp	x26, x27, [x1, #RKVM_VCPU_X0 + 26 * 8]
	ldp	x28, x29, [x1, #RKVM_VCPU_X0 + 28 * 8]
	ldr	x30, [x1, #RKVM_VCPU_X0 + 30 * 8]
	ldp	x0, x1, [x1, #RKVM_VCPU_X0]
	eret

/*
 * A guest left through a lower-EL vector. In: x0 = RKVM_EXIT_*, TPIDR_EL2 = the guest's x0, every
 * other register the guest's. Uses 16 bytes of SP_EL2 (set by RKVM_HVC_SET_STACK) for x1 and x2.
 * Out (to the host, after its HVC): x0 = RKVM_EXIT_*, x1 = vCPU PA.
 */
func rkvm_stub_guest_exit
	stp	x1, x2, [sp, #-16]!
	this_cpu_host x1, x2
	ldr	x1, [x1, #RKVM_HOST_VCPU]
	stp	x3, x4, [x1, #RKVM_VCPU_X0 + 3 * 8]
	stp	x5, x6, [x1, #RKVM_VCPU_X0 + 5 * 8]
	stp	x7, x8, [x1, #RKVM_VCPU_X0 + 7 * 8]
	stp	x9, x10, [x1, #RKVM_VCPU_X0 + 9 * 8]
	stp	x11, x12, [x1, #RKVM_VCPU_X0 + 11 * 8]
	stp	x13, x14, [x1, #RKVM_VCPU_X0 + 13 * 8]
	stp	x15, x16, [x1, #RKVM_VCPU_X0 + 15 * 8]
	stp	x17, x18, [x1, #RKVM_VCPU_X0 + 17 * 8]
	stp	x19, x20, [x1, #RKVM_VCPU_X0 + 19 * 8]
	stp	x21, x22, [x1, #RKVM_VCPU_X0 + 21 * 8]
	stp	x23, x24, [x1, #RKVM_VCPU_X0 + 23 * 8]
	stp	x25, x26, [x1, #RKVM_VCPU_X0 + 25 * 8]
	stp	x27, x28, [x1, #RKVM_VCPU_X0 + 27 * 8]
	stp	x29, x30, [x1, #RKVM_VCPU_X0 + 29 * 8]
	ldp	x3, x4, [sp], #16
	stp	x3, x4, [x1, #RKVM_VCPU_X0 + 1 * 8]
	mrs	x3, tpidr_el2
	str	x3, [x1, #RKVM_VCPU_X0]
	str	x0, [x1, #RKVM_VCPU_EXIT_REASON]
	mrs	x3, esr_el2
	str	x3, [x1, #RKVM_VCPU_EXIT_ESR]
	mrs	x3, far_el2
	str	x3, [x1, #RKVM_VCPU_EXIT_FAR]
	mrs	x3, hpfar_el2
	str	x3, [x1, #RKVM_VCPU_EXIT_HPFAR]
	mrs	x3, elr_el2
	str	x3, [x1, #RKVM_VCPU_PC]
	mrs	x3, spsr_el2
	str	x3, [x1, #RKVM_VCPU_PSTATE]
	mrs	x3, sp_el1
	str	x3, [x1, #RKVM_VCPU_SP_EL1]
	mrs	x3, sp_el0
	str	x3, [x1, #RKVM_VCPU_SP_EL0]
	ldr	x3, [x1, #RKVM_VCPU_EXIT_COUNT]
	add	x3, x3, #1
	str	x3, [x1, #RKVM_VCPU_EXIT_COUNT]
	add	x4, x1, #RKVM_VCPU_EL1
	el1_context save, x4, x3

	this_cpu_host x2, x3
	ldr	x3, [x2, #RKVM_HOST_HCR_EL2]
	msr	hcr_el2, x3
	/* VMID 0 for the host: its stage-1 TLB entries must not be tagged with the guest's VMID. */
	msr	vttbr_el2, xzr
	isb				/* the host's HCR_EL2 before its EL1 registers go back */
#ifndef RKVM_STUB_HOST_CLOBBER
	add	x4, x2, #RKVM_HOST_EL1
	el1_context load, x4, x3
#endif
	ldr	x3, [x2, #RKVM_HOST_SP_EL1]
	msr	sp_el1, x3
	ldr	x3, [x2, #RKVM_HOST_SP_EL0]
	msr	sp_el0, x3
	ldr	x3, [x2, #RKVM_HOST_ELR_EL2]
	msr	elr_el2, x3
	ldr	x3, [x2, #RKVM_HOST_SPSR_EL2]
	msr	spsr_el2, x3
	str	xzr, [x2, #RKVM_HOST_IN_GUEST]
	ldp	x18, x19, [x2, #RKVM_HOST_X18 + 0 * 8]
	ldp	x20, x21, [x2, #RKVM_HOST_X18 + 2 * 8]
	ldp	x22, x23, [x2, #RKVM_HOST_X18 + 4 * 8]
	ldp	x24, x25, [x2, #RKVM_HOST_X18 + 6 * 8]
	ldp	x26, x27, [x2, #RKVM_HOST_X18 + 8 * 8]
	ldp	x28, x29, [x2, #RKVM_HOST_X18 + 10 * 8]
	ldr	x30, [x2, #RKVM_HOST_X18 + 12 * 8]
	isb
	eret
