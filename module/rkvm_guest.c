// SPDX-License-Identifier: GPL-2.0
/*
 * rkvm.ko's guest: guest RAM, a stage 2 for it, a vCPU, and the exits a VMM handles (docs/lab.md).
 *
 *   echo "run N" > /sys/kernel/debug/rkvm/guest   run the vCPU on this CPU, handling up to N exits
 *   echo reset  > /sys/kernel/debug/rkvm/guest    reload the image and the vCPU's initial state
 *   cat /sys/kernel/debug/rkvm/guest              where it is: exits by kind, the last exit, addresses
 *
 * The guest's modes: s2-vmalloc (stage-2 tables in vmalloc memory, their "PA"s from virt_to_phys()),
 * s2-hole (the guest's stack page is left out of stage 2 and every retry faults again), vtcr-mismatch
 * (VTCR_EL2.T0SZ says a smaller IPA space than the tables were built for), host-clobber (the stub
 * variant whose exit does not load the host's EL1 state back: rkvm_main.c picks it).
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <linux/seq_file.h>
#include <linux/ctype.h>
#include <asm/cacheflush.h>
#include <asm/sysreg.h>
#include <asm/kvm_arm.h>

#include "rkvm_abi.h"
#include "rkvm_lab.h"
#include "guest_blob.h"

#define GUEST_RAM_ORDER		4
#define S2_POOL_ORDER		3
#define S2_POOL_PAGES		(1 << S2_POOL_ORDER)
#define GUEST_VMID		1ULL
#define MAX_RUN			1000000UL

/*
 * HCR_EL2 bits the guest runs with (asm/kvm_arm.h's names), on top of the host's own (RW: EL1 is
 * AArch64): VM stage 2 on; IMO/FMO/AMO physical IRQ/FIQ/SError during the guest exit to EL2, not to the
 * guest's vectors; TWI WFI exits; TSC SMC exits.
 */
#define GUEST_HCR_TRAPS		(HCR_VM | HCR_IMO | HCR_FMO | HCR_AMO | HCR_TWI | HCR_TSC)

/* VTCR_EL2 fields (4K granule). */
#define VTCR_T0SZ_MASK		0x3fULL
#define VTCR_SL0_SHIFT		6
#define VTCR_IRGN0_WBWA		(1ULL << 8)
#define VTCR_ORGN0_WBWA		(1ULL << 10)
#define VTCR_SH0_INNER		(3ULL << 12)
#define VTCR_PS_SHIFT		16
#define VTCR_RES1		(1ULL << 31)
#define GUEST_IPA_BITS		32

/* Stage-2 descriptors: table, and a level-3 page of Normal WB memory, read/write, accessed. */
#define S2_VALID_TABLE		0x3ULL
#define S2_PAGE_NORMAL_RW	(0x3ULL | (0xfULL << 2) | (0x3ULL << 6) | (0x3ULL << 8) | (1ULL << 10))
#define S2_ADDR_MASK		GENMASK_ULL(47, 12)

/* ESR_EL2 */
#define EC_WFX			0x01
#define EC_HVC64		0x16
#define EC_SMC64		0x17
#define EC_SYSREG		0x18
#define EC_IABT_LOW		0x20
#define EC_DABT_LOW		0x24
#define ISS_ISV			BIT(24)
#define ISS_SAS(esr)		(((esr) >> 22) & 3)
#define ISS_SRT(esr)		(((esr) >> 16) & 0x1f)
#define ISS_WNR			BIT(6)

#define GUEST_PSTATE		0x3c5		/* EL1h, DAIF masked */
#define GUEST_SCTLR		0x30d00800ULL	/* the RES1 bits (ARMv8.0), MMU and caches off */

enum exit_kind { EXIT_HVC, EXIT_DABT, EXIT_IABT, EXIT_WFX, EXIT_IRQ, EXIT_OTHER, EXIT_KINDS };
static const char *const exit_kind_names[EXIT_KINDS] = { "hvc", "dabt", "iabt", "wfx", "irq", "other" };

/* The VTCR geometry a stage 2 follows: derived from the VTCR value, never assumed. */
struct s2_geometry {
	int start_level;
	unsigned int ia_bits;
	u64 root_entries;	/* more than 512: concatenated start tables */
	unsigned int root_pages;
};

static struct {
	enum rkvm_mode mode;
	struct page *vcpu_page;
	u64 *vcpu;
	struct page *ram_pages;
	struct page *pool_pages;	/* stage-2 tables, alloc_pages */
	void *pool_vmalloc;		/* ... or vmalloc (mode=s2-vmalloc) */
	unsigned int pool_used;
	struct s2_geometry geo;		/* of the VTCR the tables are built for */
	u64 vtcr_tables, vtcr_run, vttbr;
	u64 hcr;			/* the host's HCR_EL2 (read from the stub) + the guest's traps */
	u64 exits[EXIT_KINDS];
	u64 runs;
	bool done, stopped;
	char why[96];
	char line[128];
	unsigned int line_len;
	u64 uart_chars;
	struct mutex lock;
} g;

/*
 * What `cat /sys/kernel/debug/rkvm/guest` shows, at one symbol a debugger reads while the kernel is
 * stopped (debugfs needs a running kernel), like rkvm_debug for the stub. Written after every exit.
 * Field order is ABI for gdb_rkvm (live/guest_state.py): append only.
 */
struct rkvm_guest_debug_state {
	u64 magic;		/* RKVM_STUB_MAGIC once filled */
	u64 state;		/* 0 runnable, 1 done, 2 stopped */
	u64 vcpu_pa;
	u64 ram_pa;
	u64 ram_ipa;
	u64 ram_size;
	u64 vttbr;		/* what the vCPU runs with */
	u64 vtcr;		/* what the vCPU runs with */
	u64 vtcr_tables;	/* the VTCR the stage-2 tables were built for */
	u64 hcr;
	u64 s2_tables_va;	/* the tables' kernel VA (vmalloc in mode=s2-vmalloc) */
	u64 s2_start_level;	/* (s64) */
	u64 s2_ipa_bits;
	u64 s2_tables;		/* table pages in use */
	u64 runs;
	u64 exits[EXIT_KINDS];	/* hvc, dabt, iabt, wfx, irq, other */
	u64 uart_chars;
	/* the last synchronous exit (an IRQ exit has no syndrome: ESR_EL2 is stale then) */
	u64 sync_esr, sync_far, sync_hpfar, sync_pc, sync_count;
};

struct rkvm_guest_debug_state rkvm_guest_debug;
EXPORT_SYMBOL_GPL(rkvm_guest_debug);

static u64 *pool_va(unsigned int n);

static u64 vreg(unsigned int off);

static void publish(void)
{
	struct rkvm_guest_debug_state *d = &rkvm_guest_debug;

	WRITE_ONCE(d->state, g.done ? 1 : g.stopped ? 2 : 0);
	d->vcpu_pa = page_to_phys(g.vcpu_page);
	d->ram_pa = page_to_phys(g.ram_pages);
	d->ram_ipa = RKVM_GUEST_RAM_IPA;
	d->ram_size = RKVM_GUEST_RAM_SIZE;
	d->vttbr = g.vttbr;
	d->vtcr = g.vtcr_run;
	d->vtcr_tables = g.vtcr_tables;
	d->hcr = g.hcr;
	d->s2_tables_va = (u64)pool_va(0);
	d->s2_start_level = (u64)(s64)g.geo.start_level;
	d->s2_ipa_bits = g.geo.ia_bits;
	d->s2_tables = g.pool_used;
	d->runs = g.runs;
	memcpy(d->exits, g.exits, sizeof(d->exits));
	d->uart_chars = g.uart_chars;
	if (vreg(RKVM_VCPU_EXIT_REASON) == RKVM_EXIT_SYNC && vreg(RKVM_VCPU_EXIT_COUNT) != d->sync_count) {
		d->sync_esr = vreg(RKVM_VCPU_EXIT_ESR);
		d->sync_far = vreg(RKVM_VCPU_EXIT_FAR);
		d->sync_hpfar = vreg(RKVM_VCPU_EXIT_HPFAR);
		d->sync_pc = vreg(RKVM_VCPU_PC);
		d->sync_count = vreg(RKVM_VCPU_EXIT_COUNT);
	}
	WRITE_ONCE(d->magic, RKVM_STUB_MAGIC);
}

static u64 vreg(unsigned int off)
{
	return READ_ONCE(g.vcpu[off / 8]);
}

static void vset(unsigned int off, u64 val)
{
	WRITE_ONCE(g.vcpu[off / 8], val);
}

static int s2_geometry_from_vtcr(u64 vtcr, struct s2_geometry *geo)
{
	unsigned int t0sz = vtcr & VTCR_T0SZ_MASK, sl0 = (vtcr >> VTCR_SL0_SHIFT) & 3;
	int resolved;

	if ((vtcr >> 14) & 3)	/* VTCR_EL2.TG0: only the 4K granule here */
		return -EINVAL;
	if (sl0 == 3 || t0sz < 16 || t0sz > 39)
		return -EINVAL;
	geo->start_level = 2 - sl0;	/* 4K granule: SL0 0, 1, 2 = start at level 2, 1, 0 */
	geo->ia_bits = 64 - t0sz;
	/* Bits the start level resolves: whatever is left above the levels below it and the page offset. */
	resolved = (int)geo->ia_bits - (12 + 9 * (3 - geo->start_level));
	if (resolved < 1 || resolved > 9 + 4)	/* at most 16 concatenated tables */
		return -EINVAL;
	geo->root_entries = 1ULL << resolved;
	geo->root_pages = resolved > 9 ? 1U << (resolved - 9) : 1;
	return 0;
}

static u64 pool_pa(unsigned int n)
{
	if (g.pool_vmalloc)	/* the bug of mode=s2-vmalloc: virt_to_phys() of a vmalloc address */
		return virt_to_phys(g.pool_vmalloc + n * PAGE_SIZE);
	return page_to_phys(g.pool_pages) + n * PAGE_SIZE;
}

static u64 *pool_va(unsigned int n)
{
	if (g.pool_vmalloc)
		return g.pool_vmalloc + n * PAGE_SIZE;
	return page_address(g.pool_pages) + n * PAGE_SIZE;
}

static int pool_index_of(u64 pa)
{
	unsigned int n;

	for (n = 0; n < g.pool_used; n++)
		if (pool_pa(n) == pa)
			return n;
	return -ENOENT;
}

/* Map one 4K page IPA -> PA, allocating the tables on the way from the pool. */
static int s2_map_page(u64 ipa, u64 pa)
{
	u64 *table = pool_va(0);
	int level = g.geo.start_level, n;

	for (;;) {
		unsigned int shift = 12 + 9 * (3 - level);
		u64 mask = level == g.geo.start_level ? g.geo.root_entries - 1 : 511;
		u64 *desc = &table[(ipa >> shift) & mask];

		if (level == 3) {
			*desc = (pa & S2_ADDR_MASK) | S2_PAGE_NORMAL_RW;
			return 0;
		}
		if (!(*desc & 1)) {
			if (g.pool_used >= S2_POOL_PAGES)
				return -ENOMEM;
			*desc = (pool_pa(g.pool_used++) & S2_ADDR_MASK) | S2_VALID_TABLE;
		}
		n = pool_index_of(*desc & S2_ADDR_MASK);
		if (n < 0)
			return n;
		table = pool_va(n);
		level++;
	}
}

static u64 choose_vtcr(void)
{
	u64 parange = read_sysreg(id_aa64mmfr0_el1) & 0xf;
	u64 sl0 = 1;	/* level 1 start: a 32-bit IPA space is 4 entries of 1 GiB there */

	return (64 - GUEST_IPA_BITS) | (sl0 << VTCR_SL0_SHIFT) | VTCR_IRGN0_WBWA | VTCR_ORGN0_WBWA |
	       VTCR_SH0_INNER | (min(parange, 5ULL) << VTCR_PS_SHIFT) | VTCR_RES1;
}

static int build_stage2(void)
{
	unsigned int i, pages = RKVM_GUEST_RAM_SIZE / PAGE_SIZE;
	u64 ram_pa = page_to_phys(g.ram_pages);
	int ret;

	g.vtcr_tables = choose_vtcr();
	ret = s2_geometry_from_vtcr(g.vtcr_tables, &g.geo);
	if (ret)
		return ret;
	if (g.geo.root_pages > S2_POOL_PAGES / 2)
		return -E2BIG;
	g.pool_used = g.geo.root_pages;
	for (i = 0; i < pages; i++) {
		if (g.mode == RKVM_MODE_S2_HOLE && i == pages - 1)
			continue;	/* the bug: the stack page is in guest RAM but not in stage 2 */
		ret = s2_map_page(RKVM_GUEST_RAM_IPA + i * PAGE_SIZE, ram_pa + i * PAGE_SIZE);
		if (ret)
			return ret;
	}
	g.vtcr_run = g.vtcr_tables;
	if (g.mode == RKVM_MODE_VTCR_MISMATCH)	/* the bug: one IPA bit fewer than the tables cover */
		g.vtcr_run = (g.vtcr_tables & ~VTCR_T0SZ_MASK) | ((g.vtcr_tables & VTCR_T0SZ_MASK) + 1);
	g.vttbr = (GUEST_VMID << 48) | (pool_pa(0) & S2_ADDR_MASK);
	/* Stage-2 walks may not snoop the cache on every implementation: push the tables out. */
	dsb(ishst);
	return 0;
}

static void guest_reset(void)
{
	void *ram = page_address(g.ram_pages);

	memset(ram, 0, RKVM_GUEST_RAM_SIZE);
	memcpy(ram, rkvm_guest_image, sizeof(rkvm_guest_image));
	caches_clean_inval_pou((unsigned long)ram, (unsigned long)ram + RKVM_GUEST_RAM_SIZE);
	memset(g.vcpu, 0, RKVM_VCPU_SIZE);
	vset(RKVM_VCPU_PC, RKVM_GUEST_RAM_IPA);
	vset(RKVM_VCPU_PSTATE, GUEST_PSTATE);
	vset(RKVM_VCPU_EL1 + RKVM_EL1_SCTLR, GUEST_SCTLR);
	vset(RKVM_VCPU_HCR_EL2, g.hcr);
	vset(RKVM_VCPU_VTTBR_EL2, g.vttbr);
	vset(RKVM_VCPU_VTCR_EL2, g.vtcr_run);
	memset(g.exits, 0, sizeof(g.exits));
	g.runs = 0;
	g.done = false;
	g.stopped = false;
	g.why[0] = 0;
	g.line_len = 0;
	g.uart_chars = 0;
}

static void uart_putc(u8 c)
{
	g.uart_chars++;
	if (c != '\n' && g.line_len < sizeof(g.line) - 5) {
		/* The guest is untrusted: only printable ASCII reaches the log as is. */
		if (isprint(c))
			g.line[g.line_len++] = c;
		else
			g.line_len += scnprintf(g.line + g.line_len, 5, "\\x%02x", c);
		return;
	}
	g.line[g.line_len] = 0;
	pr_info("rkvm-guest: %s\n", g.line);
	g.line_len = 0;
}

static u64 exit_ipa(void)
{
	return ((vreg(RKVM_VCPU_EXIT_HPFAR) >> 4) << 12) | (vreg(RKVM_VCPU_EXIT_FAR) & 0xfff);
}

static void stop(const char *why)
{
	g.stopped = true;
	strscpy(g.why, why, sizeof(g.why));
}

static bool ipa_in_ram(u64 ipa)
{
	return ipa >= RKVM_GUEST_RAM_IPA && ipa < RKVM_GUEST_RAM_IPA + RKVM_GUEST_RAM_SIZE;
}

/* The emulated UART: a byte written to DR goes to the log, FR reads 0 (never busy). */
static bool handle_dabt(u64 esr)
{
	u64 ipa = exit_ipa(), off = ipa - RKVM_GUEST_UART_IPA;
	unsigned int srt = ISS_SRT(esr);

	if (ipa_in_ram(ipa)) {
		/* A VMM that believes the page is mapped (it is in its memslot) retries: see s2-hole. */
		if (g.exits[EXIT_DABT] + g.exits[EXIT_IABT] < 4)
			pr_info("rkvm: guest stage-2 fault at IPA %#llx (ESR_EL2 %#llx): retrying\n", ipa, esr);
		return true;
	}
	if (ipa >> PAGE_SHIFT != RKVM_GUEST_UART_IPA >> PAGE_SHIFT || !(esr & ISS_ISV)) {
		pr_err("rkvm: guest data abort at IPA %#llx, ESR_EL2 %#llx: not emulated\n", ipa, esr);
		stop("data abort outside the UART");
		return false;
	}
	if (esr & ISS_WNR) {
		if (off == RKVM_GUEST_UART_DR)
			uart_putc(srt == 31 ? 0 : vreg(RKVM_VCPU_X0 + 8 * srt) & 0xff);
	} else if (srt != 31) {
		vset(RKVM_VCPU_X0 + 8 * srt, 0);	/* FR, DR and the rest read as 0 */
	}
	vset(RKVM_VCPU_PC, vreg(RKVM_VCPU_PC) + 4);
	return true;
}

static bool handle_hvc(void)
{
	u64 call = vreg(RKVM_VCPU_X0), arg = vreg(RKVM_VCPU_X0 + 8);

	switch (call) {
	case RKVM_GUEST_HC_PRINT:
		pr_info("rkvm-guest: hypercall print %#llx\n", arg);
		vset(RKVM_VCPU_X0, 0);
		return true;
	case RKVM_GUEST_HC_DONE:
		pr_info("rkvm-guest: done (%#llx) after %llu exits\n", arg, vreg(RKVM_VCPU_EXIT_COUNT));
		g.done = true;
		return false;
	case RKVM_GUEST_HC_PANIC:
		pr_err("rkvm-guest: panic, ESR_EL1 %#llx\n", arg);
		stop("the guest panicked (hypercall 3)");
		return false;
	}
	pr_err("rkvm: guest hypercall %#llx unknown\n", call);
	stop("unknown hypercall");
	return false;
}

/* Returns whether to enter the guest again. The HVC's preferred return is the next instruction. */
static bool handle_exit(u64 reason)
{
	u64 esr = vreg(RKVM_VCPU_EXIT_ESR), ec = esr >> 26;

	if (reason == RKVM_EXIT_IRQ || reason == RKVM_EXIT_FIQ) {
		g.exits[EXIT_IRQ]++;	/* the host took it when it unmasked IRQs: just go back in */
		return true;
	}
	if (reason != RKVM_EXIT_SYNC) {
		g.exits[EXIT_OTHER]++;
		pr_err("rkvm: guest exit reason %llu (ESR_EL2 %#llx): stopping\n", reason, esr);
		stop("SError or unknown exit");
		return false;
	}
	switch (ec) {
	case EC_HVC64:
		g.exits[EXIT_HVC]++;
		return handle_hvc();
	case EC_DABT_LOW:
		g.exits[EXIT_DABT]++;
		return handle_dabt(esr);
	case EC_IABT_LOW:
		g.exits[EXIT_IABT]++;
		return handle_dabt(esr);
	case EC_WFX:
		g.exits[EXIT_WFX]++;
		vset(RKVM_VCPU_PC, vreg(RKVM_VCPU_PC) + 4);
		return true;
	}
	g.exits[EXIT_OTHER]++;
	pr_err("rkvm: guest exit EC %#llx (ESR_EL2 %#llx) at PC %#llx: stopping\n", ec, esr,
	       vreg(RKVM_VCPU_PC));
	stop("an exit this VMM does not handle");
	return false;
}

static noinline u64 vcpu_run_hvc(u64 vcpu_pa)
{
	register u64 x0 asm("x0") = RKVM_HVC_VCPU_RUN;
	register u64 x1 asm("x1") = vcpu_pa;

	asm volatile("hvc %[imm]" : "+r"(x0), "+r"(x1) : [imm] "i"(RKVM_HVC_IMM)
		     : "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
		       "x14", "x15", "x16", "x17", "cc", "memory");
	return x0;
}

static void guest_run(unsigned long n)
{
	u64 vcpu_pa = page_to_phys(g.vcpu_page), reason;
	unsigned long i;
	unsigned int cpu;

	for (i = 0; i < n && !g.done && !g.stopped; i++) {
		if (fatal_signal_pending(current))
			break;
		/* IRQs off across the world switch: one that arrives in the guest exits, and is taken below. */
		local_irq_disable();
		cpu = smp_processor_id();
		rkvm_debug_event(RKVM_EV_GUEST_ENTER, cpu, rkvm_stub_pa(), vcpu_pa);
		reason = vcpu_run_hvc(vcpu_pa);
		rkvm_debug_event(RKVM_EV_GUEST_EXIT, cpu, rkvm_stub_pa(), reason);
		local_irq_enable();
		g.runs++;
		if (!handle_exit(reason)) {
			publish();
			break;
		}
		publish();
		cond_resched();
	}
	if (i == n && !g.done && !g.stopped)
		pr_info("rkvm: guest ran %lu exits (the bound), last ESR_EL2 %#llx IPA %#llx\n",
			n, vreg(RKVM_VCPU_EXIT_ESR), exit_ipa());
}

static ssize_t guest_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[32], cmd[8];
	unsigned long n = 0;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	if (sscanf(buf, "%7s %lu", cmd, &n) < 1)
		return -EINVAL;
	mutex_lock(&g.lock);
	if (!g.hcr) {
		/* Asked of the stub at first use, not at load: mode=vmalloc's stub never answers. */
		g.hcr = rkvm_hvc(RKVM_HVC_READ_SYSREG, RKVM_SYSREG_HCR_EL2, NULL) | GUEST_HCR_TRAPS;
		vset(RKVM_VCPU_HCR_EL2, g.hcr);
	}
	if (!strcmp(cmd, "reset")) {
		guest_reset();
	} else if (!strcmp(cmd, "run") && n > 0) {
		guest_run(min(n, MAX_RUN));
	} else {
		mutex_unlock(&g.lock);
		return -EINVAL;
	}
	publish();
	mutex_unlock(&g.lock);
	return len;
}

static int guest_show(struct seq_file *m, void *v)
{
	int i;

	mutex_lock(&g.lock);
	seq_printf(m, "state %s\n", g.done ? "done" : g.stopped ? "stopped" : "runnable");
	if (g.stopped)
		seq_printf(m, "why %s\n", g.why);
	seq_printf(m, "vcpu_pa %#llx\nguest_ram_pa %#llx\nguest_ram_ipa %#llx\nguest_ram_size %#x\n",
		   (u64)page_to_phys(g.vcpu_page), (u64)page_to_phys(g.ram_pages),
		   (u64)RKVM_GUEST_RAM_IPA, RKVM_GUEST_RAM_SIZE);
	seq_printf(m, "vttbr %#llx\nvtcr %#llx\nvtcr_tables %#llx\nhcr %#llx\n",
		   g.vttbr, g.vtcr_run, g.vtcr_tables, g.hcr);
	seq_printf(m, "s2_start_level %d\ns2_ipa_bits %u\ns2_tables %u\n",
		   g.geo.start_level, g.geo.ia_bits, g.pool_used);
	seq_printf(m, "pc %#llx\nexits %llu\nruns %llu\n", vreg(RKVM_VCPU_PC),
		   vreg(RKVM_VCPU_EXIT_COUNT), g.runs);
	for (i = 0; i < EXIT_KINDS; i++)
		seq_printf(m, "exits_%s %llu\n", exit_kind_names[i], g.exits[i]);
	seq_printf(m, "last_reason %llu\nlast_esr %#llx\nlast_far %#llx\nlast_hpfar %#llx\nlast_ipa %#llx\n",
		   vreg(RKVM_VCPU_EXIT_REASON), vreg(RKVM_VCPU_EXIT_ESR), vreg(RKVM_VCPU_EXIT_FAR),
		   vreg(RKVM_VCPU_EXIT_HPFAR), exit_ipa());
	seq_printf(m, "uart_chars %llu\n", g.uart_chars);
	mutex_unlock(&g.lock);
	return 0;
}

static int guest_open(struct inode *inode, struct file *file)
{
	return single_open(file, guest_show, NULL);
}

static const struct file_operations guest_fops = {
	.owner = THIS_MODULE,
	.open = guest_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
	.write = guest_write,
};

int rkvm_guest_init(struct dentry *dir, enum rkvm_mode mode)
{
	int ret;

	BUILD_BUG_ON(RKVM_GUEST_RAM_SIZE != PAGE_SIZE << GUEST_RAM_ORDER);
	BUILD_BUG_ON(sizeof(rkvm_guest_image) > RKVM_GUEST_RAM_SIZE - PAGE_SIZE);
	BUILD_BUG_ON(RKVM_VCPU_SIZE > PAGE_SIZE);
	mutex_init(&g.lock);
	g.mode = mode;
	g.vcpu_page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
	g.ram_pages = alloc_pages(GFP_KERNEL | __GFP_ZERO, GUEST_RAM_ORDER);
	if (mode == RKVM_MODE_S2_VMALLOC)
		g.pool_vmalloc = vzalloc(S2_POOL_PAGES * PAGE_SIZE);
	else
		g.pool_pages = alloc_pages(GFP_KERNEL | __GFP_ZERO, S2_POOL_ORDER);
	if (!g.vcpu_page || !g.ram_pages || (!g.pool_vmalloc && !g.pool_pages)) {
		rkvm_guest_free();
		return -ENOMEM;
	}
	g.vcpu = page_address(g.vcpu_page);
	ret = build_stage2();
	if (ret) {
		pr_err("rkvm: stage 2 for the guest: %d\n", ret);
		rkvm_guest_free();
		return ret;
	}
	guest_reset();
	publish();
	debugfs_create_file("guest", 0600, dir, NULL, &guest_fops);
	pr_info("rkvm: guest RAM at PA %#llx (IPA %#x), vCPU at PA %#llx, VTTBR %#llx VTCR %#llx\n",
		(u64)page_to_phys(g.ram_pages), RKVM_GUEST_RAM_IPA, (u64)page_to_phys(g.vcpu_page),
		g.vttbr, g.vtcr_run);
	return 0;
}

void rkvm_guest_free(void)
{
	if (g.vcpu_page)
		__free_page(g.vcpu_page);
	if (g.ram_pages)
		__free_pages(g.ram_pages, GUEST_RAM_ORDER);
	if (g.pool_pages)
		__free_pages(g.pool_pages, S2_POOL_ORDER);
	vfree(g.pool_vmalloc);
	memset(&g, 0, sizeof(g));
	memset(&rkvm_guest_debug, 0, sizeof(rkvm_guest_debug));
}
