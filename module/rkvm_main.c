// SPDX-License-Identifier: GPL-2.0
/*
 * rkvm.ko: installs the rkvm EL2 stub (stub/el2_stub.S) on every CPU through the kernel's
 * hyp-stub (HVC_SET_VECTORS), publishes a debugger hook, and offers the stub's HVC calls
 * through /sys/kernel/debug/rkvm/.
 *
 * mode= reproduces the classic bugs on purpose:
 *   good     (default) stub copied to alloc_pages() memory, VBAR_EL2 = page_to_phys() on every CPU
 *   vmalloc  VBAR_EL2 = virt_to_phys() of the copy inside the module image (a vmalloc address):
 *            the physical address is wrong and the next HVC on that CPU never comes back
 *   one-cpu  installed on the current CPU only: VBAR_EL2 differs between CPUs
 *   nostack  the stub is installed but SP_EL2 is never set: the ping pushes on a stale SP_EL2
 *   jump-table  the stub variant that dispatches rkvm calls through a table of absolute addresses
 *            (.quad label), assembled into this module: the module loader fills the table with
 *            kernel VAs, the copy keeps them, and the first rkvm call (SET_STACK) branches to one at
 *            EL2 with the MMU off. `rkvm lint-el2` and `rkvm triage` both name it (docs/el2-copy.md).
 * The guest's modes (rkvm_guest.c, docs/lab.md): s2-vmalloc, s2-hole, host-clobber, vtcr-mismatch.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/smp.h>
#include <linux/cpu.h>
#include <linux/debugfs.h>
#include <linux/uaccess.h>
#include <linux/string.h>
#include <asm/cacheflush.h>
#include <asm/memory.h>
#include <asm/virt.h>
#include <asm/cputype.h>
#include <linux/atomic.h>

#include "rkvm_abi.h"
#include "rkvm_lab.h"
#include "stub_blob.h"
/* mode=host-clobber's stub: its world switch does not load the host's EL1 state back. */
#include "stub_hc_blob.h"
/* The jump-table variant of the stub, assembled into this module (rkvm_stub_jt_blob, RKVM_STUB_SIZE). */
#include "stub_jt_asm.h"
extern const unsigned char rkvm_stub_jt_blob[];

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("rkvm lab module: installs an EL2 stub through the hyp-stub");

static char *mode = "good";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "good | vmalloc | one-cpu | nostack | jump-table | s2-vmalloc | s2-hole | host-clobber | vtcr-mismatch");

/* Not exported by the kernel: the lab's init passes it from /proc/kallsyms. */
static unsigned long hyp_stub_vectors;
module_param(hyp_stub_vectors, ulong, 0444);
MODULE_PARM_DESC(hyp_stub_vectors, "VA of __hyp_stub_vectors, to put back on unload");

static const char *const mode_names[] = {
	"good", "vmalloc", "one-cpu", "nostack", "jump-table",
	"s2-vmalloc", "s2-hole", "host-clobber", "vtcr-mismatch",
};

/* Debugger hook events: RKVM_EV_* in rkvm_abi.h (docs/debugger-hook.md). */

/*
 * Everything a debugger needs, at one symbol, like the dynamic linker's r_debug.
 * Field order is ABI for gdb_rkvm: append only.
 */
struct rkvm_debug_state {
	u64 magic;		/* RKVM_STUB_MAGIC */
	u32 version;		/* RKVM_ABI_VERSION */
	u32 mode;		/* enum rkvm_mode */
	u64 stub_pa;		/* PA of the stub page (what VBAR_EL2 should hold) */
	u64 stub_va;		/* its linear-map VA */
	u64 vbar_written;	/* the value handed to HVC_SET_VECTORS */
	u64 prev_vectors_pa;	/* what unload puts back */
	u64 installed_mask;	/* bit n: CPU n has our vectors */
	u64 vmalloc_buf;	/* multi-page vmalloc buffer (not physically contiguous) */
	u64 vmalloc_len;
	u64 pages_buf;		/* alloc_pages(order 2) buffer (physically contiguous) */
	u64 pages_len;
	u64 last_event;
	u64 last_cpu;
	u64 last_arg;
	u64 report_hvc;		/* set by a debugger: also report hvc-issued/hvc-returned (hot path) */
};

struct rkvm_debug_state rkvm_debug;
EXPORT_SYMBOL_GPL(rkvm_debug);

/*
 * Called at every lifecycle event; a debugger breaks here (GDB's JIT interface and
 * _dl_debug_state work the same way). noinline and the asm keep the call and its arguments.
 */
noinline void rkvm_debug_event(u32 event, u32 cpu, u64 stub_pa, u64 arg)
{
	WRITE_ONCE(rkvm_debug.last_event, event);
	WRITE_ONCE(rkvm_debug.last_cpu, cpu);
	WRITE_ONCE(rkvm_debug.last_arg, arg);
	asm volatile("" : : "r"(event), "r"(cpu), "r"(stub_pa), "r"(arg) : "memory");
}
EXPORT_SYMBOL_GPL(rkvm_debug_event);

static enum rkvm_mode rkvm_mode;
static struct page *stub_pages;
static void *vmalloc_buf;
static struct page *buf_pages;
static struct dentry *debug_dir;
static DEFINE_MUTEX(hvc_lock);
static u64 last_result[2];

#define RKVM_VMALLOC_PAGES	8
#define RKVM_BUF_ORDER		2

/* The kernel's hyp-stub calls use `hvc #0`. */
static noinline u64 rkvm_hvc_hyp_stub(u64 fn, u64 arg)
{
	register u64 x0 asm("x0") = fn;
	register u64 x1 asm("x1") = arg;

	asm volatile("hvc #0" : "+r"(x0), "+r"(x1) : : "x2", "x3", "memory");
	return x0;
}

u64 rkvm_stub_pa(void)
{
	return rkvm_debug.stub_pa;
}

/* One rkvm call on this CPU. Returns x0; *x1_out gets x1. */
noinline u64 rkvm_hvc(u64 fn, u64 arg, u64 *x1_out)
{
	register u64 x0 asm("x0");
	register u64 x1 asm("x1");
	u64 ret, ret1;

	if (READ_ONCE(rkvm_debug.report_hvc))
		rkvm_debug_event(RKVM_EV_HVC_ISSUED, raw_smp_processor_id(), rkvm_debug.stub_pa, fn);
	/* Set after the call: register variables only hold their register at the asm itself. */
	x0 = fn;
	x1 = arg;
	asm volatile("hvc %[imm]" : "+r"(x0), "+r"(x1) : [imm] "i"(RKVM_HVC_IMM) : "x2", "x3", "memory");
	ret = x0;
	ret1 = x1;
	if (x1_out)
		*x1_out = ret1;
	if (READ_ONCE(rkvm_debug.report_hvc))
		rkvm_debug_event(RKVM_EV_HVC_RETURNED, raw_smp_processor_id(), rkvm_debug.stub_pa, ret);
	return ret;
}

/*
 * The stub's per-CPU slots (HVC and ping counters, the SP_EL2 record, fault records) are indexed by
 * MPIDR_EL1.Aff0 & (RKVM_MAX_CPUS - 1), and the EL2 stacks (pages 1-3 of the allocation) by CPU
 * number: both hold RKVM_MAX_CPUS CPUs. On more, or on a CPU whose MPIDR does not fit, two CPUs
 * would share a slot (or a stack past the allocation): refuse to load instead.
 */
static atomic_t cpus_misfit = ATOMIC_INIT(0);

static void rkvm_check_this_cpu(void *unused)
{
	u64 mpidr = read_cpuid_mpidr() & MPIDR_HWID_BITMASK;

	if (mpidr >= RKVM_MAX_CPUS || smp_processor_id() >= RKVM_MAX_CPUS)
		atomic_inc(&cpus_misfit);
}

static int rkvm_check_cpus(void)
{
	if (nr_cpu_ids > RKVM_MAX_CPUS) {
		pr_err("rkvm: %u possible CPUs, the EL2 stub has slots for %d: not loading\n",
		       nr_cpu_ids, RKVM_MAX_CPUS);
		return -E2BIG;
	}
	atomic_set(&cpus_misfit, 0);
	on_each_cpu(rkvm_check_this_cpu, NULL, 1);
	if (atomic_read(&cpus_misfit)) {
		pr_err("rkvm: %d CPU(s) with an MPIDR_EL1 affinity beyond the stub's %d slots: not loading\n",
		       atomic_read(&cpus_misfit), RKVM_MAX_CPUS);
		return -E2BIG;
	}
	return 0;
}

static u64 stack_top_pa(unsigned int cpu)
{
	return rkvm_debug.stub_pa + RKVM_OFF_STACKS + (u64)(cpu + 1) * RKVM_STACK_SIZE;
}

/* Runs on each CPU with preemption off. */
static void rkvm_install_this_cpu(void *unused)
{
	unsigned int cpu = smp_processor_id();
	u64 ret;

	ret = rkvm_hvc_hyp_stub(HVC_SET_VECTORS, rkvm_debug.vbar_written);
	if (ret) {
		pr_err("rkvm: cpu%u: HVC_SET_VECTORS returned %#llx\n", cpu, ret);
		return;
	}
	set_bit(cpu, (unsigned long *)&rkvm_debug.installed_mask);
	rkvm_debug_event(RKVM_EV_INSTALLED_CPU, cpu, rkvm_debug.stub_pa, rkvm_debug.vbar_written);
	if (rkvm_mode != RKVM_MODE_NOSTACK)
		rkvm_hvc(RKVM_HVC_SET_STACK, stack_top_pa(cpu), NULL);
	rkvm_hvc(RKVM_HVC_SET_PREV, rkvm_debug.prev_vectors_pa, NULL);
}

static void rkvm_restore_this_cpu(void *unused)
{
	unsigned int cpu = smp_processor_id();

	if (!test_bit(cpu, (unsigned long *)&rkvm_debug.installed_mask))
		return;
	if (rkvm_hvc(RKVM_HVC_RESTORE, 0, NULL) == 0)
		clear_bit(cpu, (unsigned long *)&rkvm_debug.installed_mask);
	else
		pr_err("rkvm: cpu%u: restore failed\n", cpu);
}

/* ---- debugfs: echo "ping 5" > /sys/kernel/debug/rkvm/hvc; cat /sys/kernel/debug/rkvm/hvc ---- */

/* Not vcpu_run: that one takes a vCPU, through /sys/kernel/debug/rkvm/guest. */
static const char *const hvc_names[] = {
	"version", "ping", "sysreg", "set_stack", "set_prev", "restore", "fault",
};

static ssize_t hvc_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[64], name[16];
	unsigned long long arg = 0;
	unsigned int i;
	u64 x0 = 0, x1 = 0;
	int n;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	n = sscanf(buf, "%15s %lli", name, &arg);
	if (n < 1)
		return -EINVAL;
	if (!strcmp(name, "burst")) {
		/* N pings back to back from the kernel: a steady HVC load for tracing and benchmarks. */
		unsigned long long n;

		mutex_lock(&hvc_lock);
		for (n = 0; n < arg && n < 1000000; n++) {
			preempt_disable();
			x0 = rkvm_hvc(RKVM_HVC_PING, n, &x1);
			preempt_enable();
		}
		pr_info("rkvm: burst of %llu pings, last x0=%#llx x1=%#llx\n", n, x0, x1);
		last_result[0] = x0;
		last_result[1] = x1;
		mutex_unlock(&hvc_lock);
		return len;
	}
	for (i = 0; i < ARRAY_SIZE(hvc_names); i++)
		if (!strcmp(name, hvc_names[i]))
			break;
	if (i == ARRAY_SIZE(hvc_names))
		return -EINVAL;
	mutex_lock(&hvc_lock);
	preempt_disable();
	x0 = rkvm_hvc(RKVM_HVC_BASE + i, arg, &x1);
	pr_info("rkvm: cpu%u hvc %s(%#llx) -> x0=%#llx x1=%#llx\n",
		smp_processor_id(), name, arg, x0, x1);
	preempt_enable();
	last_result[0] = x0;
	last_result[1] = x1;
	mutex_unlock(&hvc_lock);
	return len;
}

static ssize_t hvc_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[64];
	int n;

	mutex_lock(&hvc_lock);
	n = scnprintf(buf, sizeof(buf), "x0=%#llx x1=%#llx\n", last_result[0], last_result[1]);
	mutex_unlock(&hvc_lock);
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations hvc_fops = {
	.owner = THIS_MODULE,
	.read = hvc_read,
	.write = hvc_write,
};

static int state_show(struct seq_file *m, void *v)
{
	seq_printf(m, "mode %s\nstub_pa %#llx\nstub_va %#llx\nvbar_written %#llx\n",
		   mode_names[rkvm_debug.mode], rkvm_debug.stub_pa, rkvm_debug.stub_va,
		   rkvm_debug.vbar_written);
	seq_printf(m, "prev_vectors_pa %#llx\ninstalled_mask %#llx\n",
		   rkvm_debug.prev_vectors_pa, rkvm_debug.installed_mask);
	seq_printf(m, "vmalloc_buf %#llx %llu\npages_buf %#llx %llu\n",
		   rkvm_debug.vmalloc_buf, rkvm_debug.vmalloc_len,
		   rkvm_debug.pages_buf, rkvm_debug.pages_len);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(state);

static int rkvm_parse_mode(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(mode_names); i++)
		if (!strcmp(mode, mode_names[i]))
			return i;
	return -EINVAL;
}

static int rkvm_alloc_buffers(void)
{
	unsigned int i;

	vmalloc_buf = vmalloc(RKVM_VMALLOC_PAGES * PAGE_SIZE);
	buf_pages = alloc_pages(GFP_KERNEL | __GFP_ZERO, RKVM_BUF_ORDER);
	if (!vmalloc_buf || !buf_pages)
		return -ENOMEM;
	/* Recognisable bytes, so a debugger can check a walk by reading both ways. */
	for (i = 0; i < RKVM_VMALLOC_PAGES * PAGE_SIZE; i += 8)
		*(u64 *)(vmalloc_buf + i) = 0x766d616c6c6f6300ULL | (i / PAGE_SIZE);
	rkvm_debug.vmalloc_buf = (u64)vmalloc_buf;
	rkvm_debug.vmalloc_len = RKVM_VMALLOC_PAGES * PAGE_SIZE;
	rkvm_debug.pages_buf = (u64)page_address(buf_pages);
	rkvm_debug.pages_len = PAGE_SIZE << RKVM_BUF_ORDER;
	return 0;
}

static void rkvm_free_buffers(void)
{
	vfree(vmalloc_buf);
	if (buf_pages)
		__free_pages(buf_pages, RKVM_BUF_ORDER);
	if (stub_pages)
		__free_pages(stub_pages, RKVM_STUB_ORDER);
}

/* No __init/__exit: GDB places a relocatable .ko by one text offset, so code in .init.text or
 * .exit.text would be symbolized as if it sat at the start of .text (docs/debugger-hook.md). */
static int rkvm_init(void)
{
	void *stub_va;
	int ret, m;

	/* is_hyp_mode_available() reads __boot_cpu_mode, which modules cannot link against. */
	if (is_kernel_in_hyp_mode()) {
		pr_err("rkvm: needs the kernel at EL1 (VHE kernels own EL2 themselves)\n");
		return -ENODEV;
	}
	ret = rkvm_check_cpus();
	if (ret)
		return ret;
	m = rkvm_parse_mode();
	if (m < 0) {
		pr_err("rkvm: unknown mode '%s'\n", mode);
		return -EINVAL;
	}
	rkvm_mode = m;
	rkvm_debug.magic = RKVM_STUB_MAGIC;
	rkvm_debug.version = RKVM_ABI_VERSION;
	rkvm_debug.mode = m;
	ret = rkvm_alloc_buffers();
	if (ret)
		goto fail;

	/* Physically contiguous, page aligned (so 2 KiB aligned), reachable with the EL2 MMU off. */
	stub_pages = alloc_pages(GFP_KERNEL | __GFP_ZERO, RKVM_STUB_ORDER);
	if (!stub_pages) {
		ret = -ENOMEM;
		goto fail;
	}
	stub_va = page_address(stub_pages);
	/* mode=jump-table copies the variant built into the module: its table already holds kernel VAs. */
	BUILD_BUG_ON(sizeof(rkvm_stub_blob) != RKVM_STUB_SIZE || sizeof(rkvm_stub_hc_blob) != RKVM_STUB_SIZE);
	BUILD_BUG_ON(RKVM_OFF_STACKS + (RKVM_MAX_CPUS + 1) * RKVM_STACK_SIZE > (PAGE_SIZE << RKVM_STUB_ORDER));
	memcpy(stub_va, rkvm_mode == RKVM_MODE_JUMP_TABLE ? rkvm_stub_jt_blob :
	       rkvm_mode == RKVM_MODE_HOST_CLOBBER ? rkvm_stub_hc_blob : rkvm_stub_blob,
	       sizeof(rkvm_stub_blob));
	/* EL2 fetches these instructions through a different regime: clean D, invalidate I to PoU. */
	caches_clean_inval_pou((unsigned long)stub_va, (unsigned long)stub_va + sizeof(rkvm_stub_blob));
	rkvm_debug.stub_va = (u64)stub_va;
	rkvm_debug.stub_pa = page_to_phys(stub_pages);
	rkvm_debug.prev_vectors_pa = hyp_stub_vectors ? __pa_symbol(hyp_stub_vectors) : 0;

	if (rkvm_mode == RKVM_MODE_VMALLOC)
		/* The seed's bug: the module image lives in vmalloc space; this PA is not the stub. */
		rkvm_debug.vbar_written = virt_to_phys(rkvm_stub_blob);
	else
		rkvm_debug.vbar_written = rkvm_debug.stub_pa;
	pr_info("rkvm: mode %s, stub at PA %#llx, VBAR_EL2 <- %#llx\n",
		mode, rkvm_debug.stub_pa, rkvm_debug.vbar_written);

	debug_dir = debugfs_create_dir("rkvm", NULL);
	debugfs_create_file("hvc", 0600, debug_dir, NULL, &hvc_fops);
	debugfs_create_file("state", 0400, debug_dir, NULL, &state_fops);
	ret = rkvm_guest_init(debug_dir, rkvm_mode);
	if (ret) {
		debugfs_remove_recursive(debug_dir);
		goto fail;
	}

	cpus_read_lock();
	if (rkvm_mode == RKVM_MODE_ONE_CPU) {
		preempt_disable();
		rkvm_install_this_cpu(NULL);
		preempt_enable();
	} else {
		on_each_cpu(rkvm_install_this_cpu, NULL, 1);
	}
	cpus_read_unlock();
	rkvm_debug_event(RKVM_EV_INSTALLED_ALL, raw_smp_processor_id(), rkvm_debug.stub_pa,
			 hweight64(rkvm_debug.installed_mask));
	pr_info("rkvm: installed on %lu CPU(s) (mask %#llx)\n",
		hweight64(rkvm_debug.installed_mask), rkvm_debug.installed_mask);
	return 0;
fail:
	rkvm_free_buffers();
	return ret;
}

static void rkvm_exit(void)
{
	debugfs_remove_recursive(debug_dir);
	cpus_read_lock();
	on_each_cpu(rkvm_restore_this_cpu, NULL, 1);
	cpus_read_unlock();
	rkvm_debug_event(RKVM_EV_REMOVED, raw_smp_processor_id(), rkvm_debug.stub_pa,
			 hweight64(rkvm_debug.installed_mask));
	if (rkvm_debug.installed_mask) {
		/* Some CPU still runs our vectors: freeing the page would leave VBAR_EL2 dangling. */
		pr_err("rkvm: vectors still installed (mask %#llx): stub page leaked\n",
		       rkvm_debug.installed_mask);
		stub_pages = NULL;
	}
	rkvm_guest_free();
	rkvm_free_buffers();
	pr_info("rkvm: removed\n");
}

module_init(rkvm_init);
module_exit(rkvm_exit);
