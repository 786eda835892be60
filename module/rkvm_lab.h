/* SPDX-License-Identifier: GPL-2.0 */
/* What rkvm_main.c (the stub and its hook) and rkvm_guest.c (the guest) share inside rkvm.ko. */
#ifndef RKVM_LAB_H
#define RKVM_LAB_H

#include <linux/types.h>
#include <linux/debugfs.h>

enum rkvm_mode {
	RKVM_MODE_GOOD, RKVM_MODE_VMALLOC, RKVM_MODE_ONE_CPU, RKVM_MODE_NOSTACK, RKVM_MODE_JUMP_TABLE,
	RKVM_MODE_S2_VMALLOC, RKVM_MODE_S2_HOLE, RKVM_MODE_HOST_CLOBBER, RKVM_MODE_VTCR_MISMATCH,
};

void rkvm_debug_event(u32 event, u32 cpu, u64 stub_pa, u64 arg);
u64 rkvm_stub_pa(void);
u64 rkvm_hvc(u64 fn, u64 arg, u64 *x1_out);

int rkvm_guest_init(struct dentry *dir, enum rkvm_mode mode);
void rkvm_guest_free(void);

#endif
