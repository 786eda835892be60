/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The lab's guest: a few pages of AArch64 that rkvm.ko loads at RKVM_GUEST_RAM_IPA and runs at EL1
 * under its stage 2 (docs/lab.md). Position independent (adr only): it learns where it is from its PC,
 * which is an IPA while its MMU is off.
 *
 * It builds its own stage-1 tables (4K granule, 39-bit VAs, start level 1):
 *   VA = IPA for the 1 GiB around its RAM (a level-1 block, Normal memory): its code keeps running
 *   when the MMU comes on;
 *   VA RKVM_GUEST_UART_VA -> IPA RKVM_GUEST_UART_IPA through a level-2 and a level-3 table (Device):
 *   so a UART access goes VA -> IPA (stage 1) -> no PA (stage 2 leaves it out) -> an exit.
 * Then it prints a greeting through the UART, makes hypercalls, reads the UART, waits with WFI and
 * says done. The stack is the last page of its RAM (mode=s2-hole leaves that page out of stage 2).
 */
#include "rkvm_abi.h"

#define PAGE			0x1000
#define S1_TABLE		0x3			/* valid, table */
#define S1_BLOCK_NORMAL		0x705			/* block, AttrIndx 1, SH inner, AF */
#define S1_PAGE_DEVICE		0x403			/* page, AttrIndx 0, AF; PXN/UXN set below */
#define S1_XN_HI16		0x60			/* PXN (53) and UXN (54), as bits [63:48] */
#define MAIR_VALUE		0xff00			/* Attr0 Device-nGnRnE, Attr1 Normal WB */
#define SCTLR_M_C_I		0x1005

	.section .text.rkvm_guest, "ax"
	.globl	rkvm_guest_start
rkvm_guest_start:
	adr	x19, rkvm_guest_start		/* RAM base (IPA) */
	add	x1, x19, #RKVM_GUEST_RAM_SIZE
	mov	sp, x1
	adr	x1, guest_vectors
	msr	vbar_el1, x1

	adr	x20, s1_l1
	adr	x21, s1_l2_uart
	adr	x22, s1_l3_uart
	/* L1[RAM >> 30]: the identity block */
	and	x3, x19, #0xffffffffc0000000
	mov	x4, #S1_BLOCK_NORMAL
	orr	x3, x3, x4
	lsr	x5, x19, #30
	str	x3, [x20, x5, lsl #3]
	/* L1[UART_VA >> 30] -> L2, L2[UART_VA >> 21] -> L3, L3[UART_VA >> 12] -> the UART's IPA */
	orr	x3, x21, #S1_TABLE
	str	x3, [x20, #((RKVM_GUEST_UART_VA >> 30) & 511) * 8]
	orr	x3, x22, #S1_TABLE
	str	x3, [x21, #((RKVM_GUEST_UART_VA >> 21) & 511) * 8]
	movz	x3, #(RKVM_GUEST_UART_IPA >> 16), lsl #16
	mov	x4, #S1_PAGE_DEVICE
	orr	x3, x3, x4
	movz	x4, #S1_XN_HI16, lsl #48
	orr	x3, x3, x4
	str	x3, [x22, #((RKVM_GUEST_UART_VA >> 12) & 511) * 8]
	dsb	ish

	mov	x3, #MAIR_VALUE
	msr	mair_el1, x3
	/* TCR_EL1: T0SZ 25, IRGN0/ORGN0 WB, SH0 inner, TG0 4K, EPD1 (no TTBR1 walks), IPS 36 bits */
	movz	x3, #(25 | (1 << 8) | (1 << 10) | (3 << 12))
	movk	x3, #(1 << (23 - 16)), lsl #16
	movk	x3, #1, lsl #32
	msr	tcr_el1, x3
	msr	ttbr0_el1, x20
	isb
	tlbi	vmalle1
	dsb	nsh
	isb
	mrs	x3, sctlr_el1
	mov	x4, #SCTLR_M_C_I
	orr	x3, x3, x4
	msr	sctlr_el1, x3
	isb

	movz	x23, #(RKVM_GUEST_UART_VA >> 16), lsl #16
	adr	x0, greeting
	bl	puts
	mov	x0, #RKVM_GUEST_HC_PRINT
	movz	x1, #0x1234
	movk	x1, #0xabcd, lsl #16
	hvc	#0
	ldr	w24, [x23, #RKVM_GUEST_UART_FR]	/* an MMIO read: the host's answer lands in w24 */
	mov	x0, #RKVM_GUEST_HC_PRINT
	mov	x1, x24
	hvc	#0
	wfi
	adr	x0, farewell
	bl	puts
1:	mov	x0, #RKVM_GUEST_HC_DONE
	mov	x1, #0
	hvc	#0
	b	1b

/* x0 = NUL-terminated string; x23 = UART VA. One byte store per character: ESR_EL2.ISS.ISV is set. */
puts:
	stp	x29, x30, [sp, #-16]!
1:	ldrb	w1, [x0], #1
	cbz	w1, 2f
	strb	w1, [x23, #RKVM_GUEST_UART_DR]
	b	1b
2:	ldp	x29, x30, [sp], #16
	ret

greeting:
	.asciz	"hello from the rkvm guest: stage 1 on, UART at VA 0x49000000\n"
farewell:
	.asciz	"guest: bye\n"

/* Any exception at EL1 is a bug in this guest: tell the host (x1 = ESR_EL1) and stay put. */
.macro guest_vec
	.balign	0x80
	mov	x0, #RKVM_GUEST_HC_PANIC
	mrs	x1, esr_el1
	hvc	#0
	b	.
.endm
	.balign	2048
guest_vectors:
	.rept	16
	guest_vec
	.endr

	.balign	PAGE
s1_l1:		.skip	PAGE
s1_l2_uart:	.skip	PAGE
s1_l3_uart:	.skip	PAGE
	.globl	rkvm_guest_end
rkvm_guest_end:
