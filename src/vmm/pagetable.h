/*
 * pagetable.h - the x86-64 page tables the VMM builds for its guests in
 * the reserved area, and a walk of them that needs no ioctl.
 */
#ifndef LAZYMEM_VMM_PAGETABLE_H
#define LAZYMEM_VMM_PAGETABLE_H

#include <stdint.h>

uint64_t pagetable__size(uint64_t ram_size, uint64_t guest_page_size);
void pagetable__build(uint8_t *reserved, uint64_t ram_size,
		      uint64_t guest_page_size, uint64_t reserved_size);
/* Guest-linear to guest-physical through the tables built above (the
 * guest never changes CR3), without an ioctl. 0 or -EFAULT. */
int pagetable__walk(const uint8_t *reserved, uint64_t reserved_size,
		    uint64_t la, uint64_t *gpa);

#endif
