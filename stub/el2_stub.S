/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rkvm EL2 stub: a vector table for VBAR_EL2 that answers the HVC ABI in rkvm_abi.h.
 *
 * It is copied to a physical page chosen at run time and runs with the EL2 MMU off, so every
 * reference is PC-relative (adr, b, b.cond): no literal pools, no absolute addresses.
 * tests/unit/test_stub_elf.py checks the object for absolute relocations, and `rkvm lint-el2`
 * checks it as a whole (docs/el2-copy.md). Built with -DRKVM_STUB_JUMP_TABLE it is the
 * jump-table variant that rkvm.ko's mode=jump-table runs: see rkvm_stub_jump_table.
 */
#include "rkvm_abi.h"

#define ESR_ELx_EC_SHIFT	26
#define ESR_ELx_EC_HVC64	0x16
#define HCR_EL2_VM_BIT		0	/* HCR_EL2.VM: stage 2 on, i.e. a guest is what runs below EL2 */

.macro func name
	.globl	\name
	.type	\name, %function
\name:
.endm

/* x2 <- this CPU's index (MPIDR_EL1.Aff0), x3 <- stub base + 8 * index. The mask keeps a stray CPU
 * inside the page; rkvm.ko refuses to load where any CPU's MPIDR is RKVM_MAX_CPUS or more (rkvm_abi.h). */
.macro this_cpu_slot
	mrs	x2, mpidr_el1
	and	x2, x2, #(RKVM_MAX_CPUS - 1)
	adr	x3, rkvm_stub_vectors
	add	x3, x3, x2, lsl #3
.endm

/* An exception the stub does not expect: note the slot, then record and park. */
.macro vec_unexpected name, off
	.org	\off
func \name
	msr	tpidr_el2, x0		/* x0 is kept in the fault record; TPIDR_EL2 is scratch here */
	mov	x0, #\off
	b	rkvm_stub_unexpected
.endm

	.section .text.rkvm_stub, "ax"
	.balign	2048
func rkvm_stub_vectors
	vec_unexpected rkvm_vec_cur_sp0_sync,     0x000
	vec_unexpected rkvm_vec_cur_sp0_irq,      0x080
	vec_unexpected rkvm_vec_cur_sp0_fiq,      0x100
	vec_unexpected rkvm_vec_cur_sp0_serror,   0x180
	vec_unexpected rkvm_vec_cur_spx_sync,     0x200
	vec_unexpected rkvm_vec_cur_spx_irq,      0x280
	vec_unexpected rkvm_vec_cur_spx_fiq,      0x300
	vec_unexpected rkvm_vec_cur_spx_serror,   0x380

	/*
	 * Lower EL, AArch64: the host's HVCs and every exit of a guest arrive here. HCR_EL2.VM tells them
	 * apart (1 only between RKVM_HVC_VCPU_RUN's ERET and the exit); it needs a register to test, so
	 * x0 waits in TPIDR_EL2 (the host's HVC path reads it back, a guest exit saves it in the vCPU).
	 */
	.org	0x400
func rkvm_vec_lower64_sync
	msr	tpidr_el2, x0
	mrs	x0, hcr_el2
	tbnz	x0, #HCR_EL2_VM_BIT, 1f
	mrs	x0, tpidr_el2
	b	rkvm_stub_el1_sync
1:	mov	x0, #RKVM_EXIT_SYNC
	b	rkvm_stub_guest_exit

/* IRQ, FIQ, SError: only a guest's (HCR_EL2.IMO/FMO/AMO route them here); the host's are unexpected. */
.macro vec_guest_exit name, off, reason
	.org	\off
func \name
	msr	tpidr_el2, x0
	mrs	x0, hcr_el2
	tbz	x0, #HCR_EL2_VM_BIT, 1f
	mov	x0, #\reason
	b	rkvm_stub_guest_exit
1:	mov	x0, #\off
	b	rkvm_stub_unexpected
.endm
	vec_guest_exit rkvm_vec_lower64_irq,      0x480, RKVM_EXIT_IRQ
	vec_guest_exit rkvm_vec_lower64_fiq,      0x500, RKVM_EXIT_FIQ
	vec_guest_exit rkvm_vec_lower64_serror,   0x580, RKVM_EXIT_SERROR
	vec_unexpected rkvm_vec_lower32_sync,     0x600
	vec_unexpected rkvm_vec_lower32_irq,      0x680
	vec_unexpected rkvm_vec_lower32_fiq,      0x700
	vec_unexpected rkvm_vec_lower32_serror,   0x780

	/* Data the debugger reads (offsets in rkvm_abi.h). Zero except magic and version. */
	.org	RKVM_OFF_DATA
	.globl	rkvm_stub_data
rkvm_stub_data:
	.quad	RKVM_STUB_MAGIC
	.quad	RKVM_ABI_VERSION
	.org	RKVM_OFF_CODE

/* Lower EL, AArch64, synchronous: the only way in that the stub expects. */
func rkvm_stub_el1_sync
	mrs	x2, esr_el2
	lsr	x2, x2, #ESR_ELx_EC_SHIFT
	cmp	x2, #ESR_ELx_EC_HVC64
	b.ne	rkvm_stub_not_hvc
	this_cpu_slot
	ldr	x2, [x3, #RKVM_OFF_HVC_COUNT]
	add	x2, x2, #1
	str	x2, [x3, #RKVM_OFF_HVC_COUNT]

	/* The kernel's hyp-stub calls come first: the kernel may still issue them to us. */
	cmp	x0, #HVC_SET_VECTORS
	b.eq	rkvm_stub_set_vectors
	cmp	x0, #HVC_RESET_VECTORS
	b.eq	rkvm_stub_restore
	cmp	x0, #HVC_STUB_HCALL_NR
	b.lo	rkvm_stub_error		/* HVC_SOFT_RESTART, HVC_FINALISE_EL2: not ours to do */

	movz	x2, #(RKVM_HVC_BASE >> 16), lsl #16
	sub	x2, x0, x2
	cmp	x2, #RKVM_HVC_NR
	b.hs	rkvm_stub_error
#ifdef RKVM_STUB_JUMP_TABLE
	/*
	 * mode=jump-table: the classic mistake, on purpose. rkvm_stub_jump_table holds absolute
	 * addresses (.quad label): built into rkvm.ko, the module loader fills them with kernel virtual
	 * addresses, the copy keeps them, and `br x3` jumps to one at EL2 with the MMU off.
	 * Same length as the default dispatch below, so every other offset in the page is unchanged.
	 */
	adr	x3, rkvm_stub_jump_table
	ldr	x3, [x3, x2, lsl #3]
	br	x3
#else
	adr	x3, rkvm_stub_calls
	add	x3, x3, x2, lsl #2
	br	x3
#endif
rkvm_stub_calls:
	b	rkvm_stub_version
	b	rkvm_stub_ping
	b	rkvm_stub_read_sysreg
	b	rkvm_stub_set_stack
	b	rkvm_stub_set_prev
	b	rkvm_stub_restore
	b	rkvm_stub_fault
	b	rkvm_stub_vcpu_run

func rkvm_stub_version
	mov	x0, #(RKVM_ABI_VERSION & 0xffff)
	movk	x0, #(RKVM_ABI_VERSION >> 16), lsl #16
	eret

/* The one call that uses the EL2 stack: SP_EL2 must have been set by RKVM_HVC_SET_STACK. */
func rkvm_stub_ping
	stp	x4, x5, [sp, #-16]!
	this_cpu_slot
	ldr	x4, [x3, #RKVM_OFF_PING_COUNT]
	add	x4, x4, #1
	str	x4, [x3, #RKVM_OFF_PING_COUNT]
	movz	x5, #(RKVM_PING_XOR >> 16), lsl #16
	movk	x5, #(RKVM_PING_XOR & 0xffff)
	eor	x0, x1, x5
	mov	x1, x4
	ldp	x4, x5, [sp], #16
	eret

/* Each table entry is two instructions: read the register into x0, return. */
func rkvm_stub_read_sysreg
	cmp	x1, #RKVM_SYSREG_NR
	b.hs	rkvm_stub_error
	adr	x3, rkvm_stub_sysregs
	add	x3, x3, x1, lsl #3
	br	x3
rkvm_stub_sysregs:
	mrs	x0, vbar_el2
	eret
	mrs	x0, hcr_el2
	eret
	mrs	x0, sctlr_el2
	eret
	mov	x0, sp			/* at EL2h the stack pointer is SP_EL2 */
	eret
	mrs	x0, tpidr_el2
	eret
	mrs	x0, esr_el2
	eret
	mrs	x0, elr_el2
	eret
	mrs	x0, spsr_el2
	eret
	mrs	x0, mpidr_el1
	eret
	mrs	x0, cnthctl_el2
	eret
	mrs	x0, vtcr_el2
	eret
	mrs	x0, mdcr_el2
	eret
	mrs	x0, cptr_el2
	eret
	mrs	x0, tcr_el2
	eret
	mrs	x0, CurrentEL
	eret
	mrs	x0, vttbr_el2
	eret

func rkvm_stub_set_stack
	mov	sp, x1
	this_cpu_slot
	str	x1, [x3, #RKVM_OFF_STACK_TOP]
	mov	x0, #0
	eret

func rkvm_stub_set_prev
	adr	x3, rkvm_stub_vectors
	str	x1, [x3, #RKVM_OFF_PREV_VBAR]
	mov	x0, #0
	eret

/* HVC_SET_VECTORS as the kernel's hyp-stub does it: x1 = PA of the new table. */
func rkvm_stub_set_vectors
	msr	vbar_el2, x1
	mov	x0, #0
	eret

/* RKVM_HVC_RESTORE and HVC_RESET_VECTORS: put back the table saved by RKVM_HVC_SET_PREV. */
func rkvm_stub_restore
	adr	x3, rkvm_stub_vectors
	ldr	x2, [x3, #RKVM_OFF_PREV_VBAR]
	cbz	x2, rkvm_stub_error
	msr	vbar_el2, x2
	mov	x0, #0
	eret

func rkvm_stub_fault
	brk	#0x52

func rkvm_stub_error
	mov	x0, #(HVC_STUB_ERR & 0xffff)
	movk	x0, #(HVC_STUB_ERR >> 16), lsl #16
	eret

/* A synchronous exception from EL1 that is not an HVC (a trap the stub did not ask for). */
func rkvm_stub_not_hvc
	msr	tpidr_el2, x0
	mov	x0, #0x400
	b	rkvm_stub_unexpected

/*
 * Save what a debugger needs into this CPU's fault record, then park.
 * In: x0 = vector slot offset, TPIDR_EL2 = the interrupted x0. Clobbers x0-x2.
 */
func rkvm_stub_unexpected
	mrs	x1, mpidr_el1
	and	x1, x1, #(RKVM_MAX_CPUS - 1)
	lsl	x1, x1, #RKVM_FAULT_SHIFT
	adr	x2, rkvm_stub_vectors + RKVM_OFF_FAULT
	add	x1, x1, x2
	str	x0, [x1, #RKVM_FAULT_VECTOR]
	mrs	x0, esr_el2
	str	x0, [x1, #RKVM_FAULT_ESR]
	mrs	x0, elr_el2
	str	x0, [x1, #RKVM_FAULT_ELR]
	mrs	x0, far_el2
	str	x0, [x1, #RKVM_FAULT_FAR]
	mrs	x0, spsr_el2
	str	x0, [x1, #RKVM_FAULT_SPSR]
	mrs	x0, tpidr_el2
	str	x0, [x1, #RKVM_FAULT_X0]
	mrs	x0, mpidr_el1
	str	x0, [x1, #RKVM_FAULT_MPIDR]
	ldr	x0, [x1, #RKVM_FAULT_COUNT]
	add	x0, x0, #1
	str	x0, [x1, #RKVM_FAULT_COUNT]
/* A CPU here is stuck at EL2 for good: `rkvm triage` reports it as el2-parked. */
func rkvm_stub_park
	wfe
	b	rkvm_stub_park


#include "el2_world_switch.S"

/* Last in the code, so that every other instruction sits where the default stub has it. */
#ifdef RKVM_STUB_JUMP_TABLE
	.balign	8
rkvm_stub_jump_table:
	.quad	rkvm_stub_version
	.quad	rkvm_stub_ping
	.quad	rkvm_stub_read_sysreg
	.quad	rkvm_stub_set_stack
	.quad	rkvm_stub_set_prev
	.quad	rkvm_stub_restore
	.quad	rkvm_stub_fault
	.quad	rkvm_stub_vcpu_run
#endif

	/* Host save areas (RKVM_HOST_*), zero until a CPU first runs a guest. */
	.org	RKVM_OFF_HOST
	.globl	rkvm_stub_host
rkvm_stub_host:
	.fill	RKVM_STUB_SIZE - RKVM_OFF_HOST, 1, 0	/* data ($d): the stub writes here */
