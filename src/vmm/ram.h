/*
 * ram.h - guest RAM: a plain mapping (limit), a lazymem region in one of
 * its deliveries, or memory handed to a Firecracker-style page-fault
 * handler (fc_socket). One memslot at LM_GPA_RAM.
 */
#ifndef LAZYMEM_VMM_RAM_H
#define LAZYMEM_VMM_RAM_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#include "fcproto/client.h"

/* How guest RAM is filled. */
enum lm_vm_delivery {
	LM_VM_LIMIT,	/* no userfaultfd: the kernel zero-fills */
	LM_VM_HANDLER,	/* blocking MISSING, handler threads, UFFDIO_COPY */
	LM_VM_MINOR,	/* memfd, blocking MINOR, write + UFFDIO_CONTINUE */
	LM_VM_EXIT,	/* SIGBUS mode: the vCPU resolves its own exit */
	LM_VM_HYBRID,	/* EXIT for vCPUs + blocking MINOR VMM view */
	LM_VM_DELIVERY_COUNT
};

struct lm_vm_ram {
	enum lm_vm_delivery delivery;
	uint64_t size;
	uint64_t page_size;		/* region / backing page size */
	void *host;			/* what KVM maps: the registered mapping */
	void *vmm_view;			/* where the VMM itself reads */
	int memfd;			/* limit with memfd/hugetlb backing */
	struct lm_region *region;	/* NULL for limit */
	struct lm_source *source;
	struct lm_source *failing;	/* wraps source when fail_page */
	struct fc_guest fc;		/* fc_socket: the hand-off, or mem NULL */
	uint8_t *at;			/* plain RAM goes here (vm__map_image) */
};

struct lm_vm;

int ram__create(struct lm_vm *vm);
void ram__destroy(struct lm_vm_ram *ram);

#endif
