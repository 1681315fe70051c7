/*
 * dirty_log.c - which guest pages were written since we last looked: KVM's
 * dirty log on both memslots, with manual protect, for pre-copy rounds.
 *
 * Manual protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) splits "what was
 * written" from "watch it again": KVM_GET_DIRTY_LOG only reads the bitmap
 * and KVM_CLEAR_DIRTY_LOG write-protects exactly the pages it names. A
 * round reads the bitmap, clears it, and only then copies the pages out,
 * so a write that lands after the copy has started is caught by the next
 * round, never lost. (The dirty ring was not worth it here: the bitmap of
 * a 1 GiB guest is 32 KiB, read in microseconds.)
 *
 * The bitmap handed back covers the migration layout: memslot 0's pages
 * first, then memslot 1's. The reserved area is a multiple of 2 MiB, so
 * RAM's bits start on a 64-bit word and the two logs simply follow each
 * other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/bits.h"
#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/dirty_log.h"

static int dirty_log__slot_flags(struct lm_vm *vm, unsigned slot,
				 uint32_t flags)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = slot ? LM_GPA_RAM : 0,
		.memory_size = slot ? vm->ram.size : vm->reserved_size,
		.userspace_addr = (uint64_t)(uintptr_t)(slot ? vm->ram.host
							     : vm->reserved),
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
		return util_error(-errno, "dirty log: memslot %u flags 0x%x: %s",
				   slot, flags, strerror(errno));
	return 0;
}

int lm_vm_dirty_log_start(struct lm_vm *vm, bool ram)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		/* not INITIALLY_SET: the first round sends everything
		 * anyway, and KVM then write-protects all pages at once */
		.args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE },
	};
	int rc;

	if (vm->ram.page_size != 4096)
		return util_error(-EINVAL, "dirty log: guest RAM has %llu-byte pages; migration logs 4 KiB pages",
				   (unsigned long long)vm->ram.page_size);
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return util_error(-errno, "dirty log: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: %s",
				   strerror(errno));
	rc = dirty_log__slot_flags(vm, 0, KVM_MEM_LOG_DIRTY_PAGES);
	if (!rc && ram)
		rc = dirty_log__slot_flags(vm, 1, KVM_MEM_LOG_DIRTY_PAGES);
	vm->dirty_log_ram = ram;
	return rc;
}

/* Read and re-arm one memslot's log into bitmap (its own pages only). */
static int dirty_log__slot(struct lm_vm *vm, unsigned slot, uint64_t npages,
			   uint64_t *bitmap)
{
	struct kvm_dirty_log get = { .slot = slot, .dirty_bitmap = bitmap };
	struct kvm_clear_dirty_log clr = {
		.slot = slot, .first_page = 0, .num_pages = (uint32_t)npages,
		.dirty_bitmap = bitmap,
	};

	memset(bitmap, 0, (npages + 63) / 64 * 8);
	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &get) < 0)
		return util_error(-errno, "dirty log: KVM_GET_DIRTY_LOG slot %u: %s",
				   slot, strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
		return util_error(-errno, "dirty log: KVM_CLEAR_DIRTY_LOG slot %u: %s",
				   slot, strerror(errno));
	return 0;
}

int lm_vm_dirty_log_fetch(struct lm_vm *vm, uint64_t *bitmap,
			  uint64_t *count)
{
	uint64_t n0 = vm->reserved_size / 4096, n1 = vm->ram.size / 4096;
	int rc = dirty_log__slot(vm, 0, n0, bitmap);

	if (rc)
		return rc;
	if (vm->dirty_log_ram)
		rc = dirty_log__slot(vm, 1, n1, bitmap + n0 / 64);
	else
		memset(bitmap + n0 / 64, 0, (n1 + 63) / 64 * 8);
	if (!rc && count)
		*count = lm_bitmap_weight(bitmap, (n0 + n1 + 63) / 64);
	return rc;
}
