/* SPDX-License-Identifier: GPL-2.0 */
/*
 * othervisor: an EL2 vector table that is not rkvm's, for testing gdb-rkvm on a hypervisor module
 * it knows nothing about (no debugger hook, no magic). Position independent; also linked alone at 0
 * into ov_el2.elf so `rkvm stub --elf` can name its handlers.
 *   x0 = 0x4f560001 (OV_PING): x0 = x1 + 1
 *   x0 = 0 (HVC_SET_VECTORS): VBAR_EL2 = x1 (so the module can put the hyp-stub back)
 *   anything else: x0 = -1
 * Unexpected exceptions spin in ov_hang.
 */
.macro ventry label
	.balign	0x80
\label:
	b	ov_hang
.endm

	.section .text.ov_vectors, "ax"
	.balign	2048
	.globl	ov_vectors
ov_vectors:
	ventry	ov_cur_sp0_sync
	ventry	ov_cur_sp0_irq
	ventry	ov_cur_sp0_fiq
	ventry	ov_cur_sp0_serror
	ventry	ov_cur_spx_sync
	ventry	ov_cur_spx_irq
	ventry	ov_cur_spx_fiq
	ventry	ov_cur_spx_serror
	.balign	0x80
	.globl	ov_lower_sync
ov_lower_sync:
	b	ov_handle_hvc
	ventry	ov_lower_irq
	ventry	ov_lower_fiq
	ventry	ov_lower_serror
	ventry	ov_lower32_sync
	ventry	ov_lower32_irq
	ventry	ov_lower32_fiq
	ventry	ov_lower32_serror

	.balign	0x80
	.globl	ov_handle_hvc
ov_handle_hvc:
	cbz	x0, ov_set_vectors
	movz	x2, #0x4f56, lsl #16
	movk	x2, #0x0001
	cmp	x0, x2
	b.ne	ov_unknown
	.globl	ov_ping
ov_ping:
	add	x0, x1, #1
	eret
ov_set_vectors:
	msr	vbar_el2, x1
	mov	x0, #0
	eret
ov_unknown:
	mov	x0, #-1
	eret
	.globl	ov_hang
ov_hang:
	b	ov_hang
	.globl	ov_vectors_end
ov_vectors_end:
