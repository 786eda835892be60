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
#define RKVM_HVC_VCPU_RUN	0x524b0007	/* x1 = PA of a vCPU (RKVM_VCPU_*): run it until its next exit
						 * -> x0 = RKVM_EXIT_*, x1 = the vCPU's PA. Needs SP_EL2
						 * (RKVM_HVC_SET_STACK). Clobbers x2-x17; x18-x30, SP_EL0
						 * and SP_EL1 and the EL1 system registers come back. */
#define RKVM_HVC_NR		8

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
#define RKVM_EV_GUEST_ENTER	6	/* arg = PA of the vCPU about to run (before RKVM_HVC_VCPU_RUN) */
#define RKVM_EV_GUEST_EXIT	7	/* arg = RKVM_EXIT_* it returned (ESR etc. in the vCPU's exit record) */

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
#define RKVM_OFF_CODE		0xb00	/* code runs up to RKVM_OFF_HOST */

/*
 * Host save area: one record per CPU (RKVM_HOST_SIZE bytes, indexed like the slots above), written by
 * RKVM_HVC_VCPU_RUN before it enters a guest and read back on the guest's exit. While IN_GUEST is 1
 * the CPU's live EL1 registers are the guest's and the host's are here.
 */
#define RKVM_OFF_HOST		0x2000
#define RKVM_HOST_SHIFT		9
#define RKVM_HOST_SIZE		(1 << RKVM_HOST_SHIFT)
#define RKVM_HOST_IN_GUEST	0x000	/* 1 from the guest's entry to its exit */
#define RKVM_HOST_VCPU		0x008	/* PA of the vCPU running (or that ran last) */
#define RKVM_HOST_ELR_EL2	0x010	/* the host's return address: right after its HVC */
#define RKVM_HOST_SPSR_EL2	0x018	/* the host's PSTATE at the HVC */
#define RKVM_HOST_HCR_EL2	0x020	/* the host's HCR_EL2, put back on exit (VM = 0) */
#define RKVM_HOST_SP_EL0	0x028	/* Linux keeps `current` here */
#define RKVM_HOST_SP_EL1	0x030
#define RKVM_HOST_RUNS		0x038	/* guest entries on this CPU */
#define RKVM_HOST_X18		0x040	/* x18-x30, 8 bytes each (x(18+n) at RKVM_HOST_X18 + 8n) */
#define RKVM_HOST_EL1		0x100	/* an EL1 context (RKVM_EL1_* offsets): the host's */

/* An EL1 context: the system registers a world switch saves and loads (host's and guest's alike). */
#define RKVM_EL1_SCTLR		0x00
#define RKVM_EL1_TTBR0		0x08
#define RKVM_EL1_TTBR1		0x10
#define RKVM_EL1_TCR		0x18
#define RKVM_EL1_MAIR		0x20
#define RKVM_EL1_AMAIR		0x28
#define RKVM_EL1_VBAR		0x30
#define RKVM_EL1_ELR		0x38
#define RKVM_EL1_SPSR		0x40
#define RKVM_EL1_ESR		0x48
#define RKVM_EL1_FAR		0x50
#define RKVM_EL1_TPIDR		0x58	/* TPIDR_EL1 */
#define RKVM_EL1_CONTEXTIDR	0x60
#define RKVM_EL1_CPACR		0x68
#define RKVM_EL1_AFSR0		0x70
#define RKVM_EL1_AFSR1		0x78
#define RKVM_EL1_PAR		0x80
#define RKVM_EL1_CNTKCTL	0x88
#define RKVM_EL1_TPIDR_EL0	0x90
#define RKVM_EL1_TPIDRRO_EL0	0x98
#define RKVM_EL1_CSSELR		0xa0
#define RKVM_EL1_SIZE		0xa8

#define RKVM_STUB_SIZE		0x3000	/* the blob: vectors, data, code, host save areas */

/* Module allocation: pages 0-2 hold the stub, pages 3-7 the per-CPU EL2 stacks (room for 20; 8 used). */
#define RKVM_STUB_ORDER		3
#define RKVM_STACK_SIZE		0x400
#define RKVM_OFF_STACKS		0x3000

/*
 * A vCPU: what RKVM_HVC_VCPU_RUN loads (x1 = its PA, 16-byte aligned, in memory EL2 reaches with its
 * MMU off) and what it saves back on the exit. rkvm.ko allocates it with alloc_pages.
 */
#define RKVM_VCPU_X0		0x000	/* x0-x30, 8 bytes each (xn at RKVM_VCPU_X0 + 8n) */
#define RKVM_VCPU_SP_EL0	0x0f8
#define RKVM_VCPU_PC		0x100	/* ELR_EL2 at entry/exit: where the guest runs next */
#define RKVM_VCPU_PSTATE	0x108	/* SPSR_EL2 at entry/exit (0x3c5 = EL1h, DAIF masked) */
#define RKVM_VCPU_SP_EL1	0x110
#define RKVM_VCPU_HCR_EL2	0x118	/* the HCR_EL2 the guest runs with (VM = 1) */
#define RKVM_VCPU_VTTBR_EL2	0x120	/* VMID in [55:48], stage-2 table PA in BADDR */
#define RKVM_VCPU_VTCR_EL2	0x128
#define RKVM_VCPU_EXIT_REASON	0x130	/* RKVM_EXIT_* of the last exit */
#define RKVM_VCPU_EXIT_ESR	0x138	/* ESR_EL2 at the last exit */
#define RKVM_VCPU_EXIT_FAR	0x140	/* FAR_EL2 */
#define RKVM_VCPU_EXIT_HPFAR	0x148	/* HPFAR_EL2: IPA[47:12] in [43:4], valid on stage-2 aborts */
#define RKVM_VCPU_EXIT_COUNT	0x150	/* exits so far */
#define RKVM_VCPU_EL1		0x180	/* the guest's EL1 context (RKVM_EL1_* offsets) */
#define RKVM_VCPU_SIZE		0x400

/* Exit reasons: which VBAR_EL2 lower-EL vector the guest left through. SYNC exits: see ESR_EL2.EC. */
#define RKVM_EXIT_SYNC		1
#define RKVM_EXIT_IRQ		2
#define RKVM_EXIT_FIQ		3
#define RKVM_EXIT_SERROR	4

/* The hypercalls the lab's guest makes (`hvc #0`, x0 = call, x1 = argument): rkvm.ko handles them. */
#define RKVM_GUEST_HC_PRINT	1	/* x1 = a number to log */
#define RKVM_GUEST_HC_DONE	2	/* x1 = the guest's result: stop running it */
#define RKVM_GUEST_HC_PANIC	3	/* x1 = ESR_EL1: the guest took an exception it did not expect */

/* The lab guest's physical (IPA) layout, chosen by rkvm.ko (docs/lab.md). */
#define RKVM_GUEST_RAM_IPA	0x80000000	/* the image is loaded here; the guest starts at it */
#define RKVM_GUEST_RAM_SIZE	0x10000
#define RKVM_GUEST_UART_IPA	0x09000000	/* left out of stage 2: every access exits (emulated MMIO) */
#define RKVM_GUEST_UART_VA	0x49000000	/* where the guest's own stage 1 maps the UART */
#define RKVM_GUEST_UART_DR	0x00		/* write: a character to the host's log */
#define RKVM_GUEST_UART_FR	0x18		/* read: 0 (never busy) */

#endif
