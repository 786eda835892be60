// SPDX-License-Identifier: GPL-2.0
/*
 * othervisor.ko: a second, independent hypervisor-style module for gdb-rkvm's tests. It installs
 * its own EL2 vectors (ov_vectors.S) through the hyp-stub on every CPU, with no debugger hook, and
 * offers /sys/kernel/debug/othervisor/ping to issue `hvc #0x4f` from the guest shell.
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/smp.h>
#include <linux/debugfs.h>
#include <linux/uaccess.h>
#include <asm/cacheflush.h>

MODULE_LICENSE("GPL");

extern char ov_vectors[], ov_vectors_end[];
static unsigned long hyp_stub_vectors;
module_param(hyp_stub_vectors, ulong, 0444);

static struct page *page;
static u64 ov_pa;
static struct dentry *dir;
static u64 last;

static u64 ov_hvc(u64 fn, u64 arg)
{
	register u64 x0 asm("x0") = fn;
	register u64 x1 asm("x1") = arg;

	asm volatile("hvc #0x4f" : "+r"(x0), "+r"(x1) : : "x2", "x3", "memory");
	return x0;
}

static void ov_install(void *pa)
{
	ov_hvc(0, *(u64 *)pa);
}

static ssize_t ping_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[32];
	unsigned long long arg;

	if (len >= sizeof(buf) || copy_from_user(buf, ubuf, len))
		return -EINVAL;
	buf[len] = 0;
	if (kstrtoull(strim(buf), 0, &arg))
		return -EINVAL;
	preempt_disable();
	last = ov_hvc(0x4f560001, arg);
	preempt_enable();
	pr_info("othervisor: ping(%#llx) -> %#llx\n", arg, last);
	return len;
}

static const struct file_operations ping_fops = { .owner = THIS_MODULE, .write = ping_write };

static int othervisor_init(void)
{
	size_t size = ov_vectors_end - ov_vectors;

	page = alloc_pages(GFP_KERNEL | __GFP_ZERO, 0);
	if (!page)
		return -ENOMEM;
	memcpy(page_address(page), ov_vectors, size);
	caches_clean_inval_pou((unsigned long)page_address(page), (unsigned long)page_address(page) + size);
	ov_pa = page_to_phys(page);
	on_each_cpu(ov_install, &ov_pa, 1);
	dir = debugfs_create_dir("othervisor", NULL);
	debugfs_create_file("ping", 0200, dir, NULL, &ping_fops);
	pr_info("othervisor: vectors at PA %#llx on every CPU\n", ov_pa);
	return 0;
}

static void othervisor_exit(void)
{
	u64 pa = hyp_stub_vectors ? __pa_symbol(hyp_stub_vectors) : 0;

	debugfs_remove_recursive(dir);
	if (pa)
		on_each_cpu(ov_install, &pa, 1);
	else
		pr_err("othervisor: no hyp_stub_vectors= given: vectors left installed\n");
	if (pa)
		__free_pages(page, 0);
}

module_init(othervisor_init);
module_exit(othervisor_exit);
