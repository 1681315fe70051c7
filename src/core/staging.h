/*
 * staging.h - page-sized buffers a fault is read into before UFFDIO_COPY.
 *
 * The SIGBUS path may not call malloc, so a region owns a fixed pool of
 * slots, taken and given back with one atomic bit each. A slot's memory is
 * mapped the first time it is used, so a region served by one thread costs
 * one page of staging, not sixty-four.
 */
#ifndef LAZYMEM_CORE_STAGING_H
#define LAZYMEM_CORE_STAGING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LM_STAGING_SLOTS 64

struct lm_staging {
	void *_Atomic buf[LM_STAGING_SLOTS];
	_Atomic uint64_t busy;		/* bit i: slot i is taken */
	size_t size;			/* bytes per slot */
};

void lm_staging_init(struct lm_staging *s, size_t size);
void lm_staging_fini(struct lm_staging *s);
/* Take a free slot (spins if all 64 are in use). -ENOMEM if mmap fails. */
int lm_staging_get(struct lm_staging *s, void **buf);
void lm_staging_put(struct lm_staging *s, int slot);

#endif
