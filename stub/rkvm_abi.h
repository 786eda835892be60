/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The rkvm EL2 stub's HVC ABI and page layout, shared by stub/el2_stub.S, module/rkvm.c and
 * gdb_rkvm (which parses the #defines below). docs/hvc-abi.md explains them.
 *
 * Calling convention: `hvc #imm` from EL1 with x0 = function ID and x1 = argument.
 * Results come back in x0 (and x1 where noted). x2 and x3 may be clobbered; every other
 * general-purpose register is preserved.
 */
#ifndef RKVM_ABI_H
#define RKVM_ABI_H

#define RKVM_ABI_VERSION	0x00010000

/* The kernel's own hyp-stub calls (arch/arm64/include/asm/virt.h, Linux 6.12). */
#define HVC_SET_VECTORS		0
#define HVC_SOFT_RESTART	1
#define HVC_RESET_VECTORS	2
#define HVC_FINALISE_EL2	3
#define HVC_STUB_HCALL_NR	4
#define HVC_STUB_ERR		0xbadca11

/* rkvm calls: 0x524b00nn ("RK"). The module issues them with this immediate. */
#define RKVM_HVC_IMM		0x4b
#define RKVM_HVC_BASE		0x524b0000
#define RKVM_HVC_VERSION	0x524b0000	/* -> x0 = RKVM_ABI_VERSION */
#define RKVM_HVC_PING		0x524b0001	/* x1 = arg -> x0 = arg ^ RKVM_PING_XOR, x1 = this CPU's ping count */
#define RKVM_HVC_READ_SYSREG	0x524b0002	/* x1 = RKVM_SYSREG_* -> x0 = value */
#define RKVM_HVC_SET_STACK	0x524b0003	/* x1 = PA of this CPU's EL2 stack top -> SP_EL2 */
#define RKVM_HVC_SET_PREV	0x524b0004	/* x1 = PA of the vectors to put back on unload */
#define RKVM_HVC_RESTORE	0x524b0005	/* VBAR_EL2 = the saved previous vectors */
#define RKVM_HVC_FAULT		0x524b0006	/* take a BRK at EL2 on purpose: the CPU parks */
#define RKVM_HVC_NR		7

#define RKVM_PING_XOR		0x524b564d

/* Selectors for RKVM_HVC_READ_SYSREG. */
#define RKVM_SYSREG_VBAR_EL2	0
#define RKVM_SYSREG_HCR_EL2	1
#define RKVM_SYSREG_SCTLR_EL2	2
#define RKVM_SYSREG_SP_EL2	3
#define RKVM_SYSREG_TPIDR_EL2	4
#define RKVM_SYSREG_ESR_EL2	5
#define RKVM_SYSREG_ELR_EL2	6
#define RKVM_SYSREG_SPSR_EL2	7
#define RKVM_SYSREG_MPIDR_EL1	8
#define RKVM_SYSREG_CNTHCTL_EL2	9
#define RKVM_SYSREG_VTCR_EL2	10
#define RKVM_SYSREG_MDCR_EL2	11
#define RKVM_SYSREG_CPTR_EL2	12
#define RKVM_SYSREG_TCR_EL2	13
#define RKVM_SYSREG_CURRENTEL	14
#define RKVM_SYSREG_VTTBR_EL2	15
#define RKVM_SYSREG_NR		16

/*
 * Stub page layout (offsets from the page, which is also VBAR_EL2). Per-CPU slots are indexed by
 * MPIDR_EL1.Aff0 and there are RKVM_MAX_CPUS of them: rkvm.ko refuses to load on more CPUs (or on a
 * CPU whose MPIDR does not fit), `rkvm up --smp` refuses more, and gdb_rkvm reads no slot past them.
 */
/* rkvm.ko's debugger hook, rkvm_debug_event(event, cpu, stub_pa, arg): the events (x0) and their arg (x3) */
#define RKVM_EV_INSTALLED_CPU	1	/* arg = VBAR_EL2 value written on `cpu` */
#define RKVM_EV_INSTALLED_ALL	2	/* arg = number of CPUs installed */
#define RKVM_EV_HVC_ISSUED	3	/* arg = function ID in x0 */
#define RKVM_EV_REMOVED		4	/* arg = number of CPUs restored */
#define RKVM_EV_HVC_RETURNED	5	/* arg = x0 returned */

#define RKVM_MAX_CPUS		8
#define RKVM_OFF_DATA		0x800
#define RKVM_OFF_MAGIC		0x800	/* "RKVMSTUB" */
#define RKVM_STUB_MAGIC		0x425554534d564b52	/* "RKVMSTUB" read as a little-endian u64 */
#define RKVM_OFF_VERSION	0x808
#define RKVM_OFF_PREV_VBAR	0x810
#define RKVM_OFF_HVC_COUNT	0x840	/* u64 per CPU: every HVC taken */
#define RKVM_OFF_PING_COUNT	0x880	/* u64 per CPU */
#define RKVM_OFF_STACK_TOP	0x8c0	/* u64 per CPU: SP_EL2 as set by RKVM_HVC_SET_STACK, 0 if never */
#define RKVM_OFF_FAULT		0x900	/* one fault record per CPU, RKVM_FAULT_SIZE bytes each */
#define RKVM_FAULT_SHIFT	6
#define RKVM_FAULT_SIZE		(1 << RKVM_FAULT_SHIFT)
#define RKVM_FAULT_COUNT	0x00
#define RKVM_FAULT_ESR		0x08
#define RKVM_FAULT_ELR		0x10
#define RKVM_FAULT_FAR		0x18
#define RKVM_FAULT_SPSR		0x20
#define RKVM_FAULT_VECTOR	0x28	/* offset of the vector slot taken */
#define RKVM_FAULT_X0		0x30
#define RKVM_FAULT_MPIDR	0x38
#define RKVM_OFF_CODE		0xb00
#define RKVM_STUB_SIZE		0x1000

/* Module allocation: page 0 holds the stub, pages 1-3 the per-CPU EL2 stacks (room for 12; 8 used). */
#define RKVM_STUB_ORDER		2
#define RKVM_STACK_SIZE		0x400
#define RKVM_OFF_STACKS		0x1000

#endif
