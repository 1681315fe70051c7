/*
 * guest.h - what every guest workload shares: the mailbox, calls to the
 * VMM by port I/O, barriers, and the verify pass.
 *
 * Guest code is freestanding 64-bit C running with paging on, virtual ==
 * physical, no interrupts and no floating point. Each workload file defines
 * workload_main(); lib.c provides the entry point around it.
 */
#ifndef LAZYMEM_GUEST_H
#define LAZYMEM_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_abi.h"

int workload_main(struct lm_mailbox *mb);

static inline void lm_call(uint32_t nr)
{
	__asm__ volatile("outl %0, %1" : : "a"(nr), "Nd"((uint16_t)LM_PORT_CALL)
			 : "memory");
}

static inline volatile uint64_t *ram_word(const struct lm_mailbox *mb,
					   uint64_t off)
{
	return (volatile uint64_t *)(uintptr_t)(mb->ram_base + off);
}

/* Wait until every vCPU has arrived at barrier number phase (1, 2, ...). */
void barrier_wait(struct lm_mailbox *mb, uint64_t phase);

/* What verify_range expects beyond the source pattern of generation gen. */
struct expect {
	uint64_t first_gen;	/* nonzero: word 0 of each page is this gen */
	uint64_t lockinc_add;	/* added to each page's lockinc word */
	uint64_t stos_len;	/* bytes from slice start filled with stos_byte */
	uint8_t stos_byte;
	int code;		/* pages start with fetch code: skip it */
};

/* Check every word of [off, off + size) of RAM; counts into the mailbox. */
void verify_range(struct lm_mailbox *mb, uint64_t off, uint64_t size,
		  const struct expect *e);

/* Touch the vCPU's slice once per page, in order (the touch workload). */
void touch_slice(struct lm_mailbox *mb);

#endif
