/*
 * pagemap.c - allocation of the page-state map and the slow (waiting) path.
 */
#include <errno.h>
#include <sys/mman.h>

#include "core/pagemap.h"

int lm_pagemap_init(struct lm_pagemap *m, uint64_t nr_pages)
{
	/* mmap rather than calloc: the kernel hands out zero pages lazily, so
	 * a 1 TiB region costs nothing until its words are first written. */
	void *p = mmap(NULL, nr_pages * sizeof(*m->w), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	m->w = p;
	m->nr = nr_pages;
	return 0;
}

void lm_pagemap_fini(struct lm_pagemap *m)
{
	if (m->w)
		munmap((void *)m->w, m->nr * sizeof(*m->w));
	m->w = NULL;
}

uint32_t lm_pagemap_wait(struct lm_pagemap *m, uint64_t i)
{
	for (;;) {
		uint32_t v = atomic_load_explicit(&m->w[i],
						  memory_order_acquire);

		if ((v & LM_PS_STATE) != LM_PS_FETCHING)
			return v & LM_PS_STATE;
		if (!(v & LM_PS_WAITERS) &&
		    !atomic_compare_exchange_weak_explicit(
			    &m->w[i], &v, v | LM_PS_WAITERS,
			    memory_order_acq_rel, memory_order_acquire))
			continue;
		lm_futex_wait(&m->w[i], v | LM_PS_WAITERS, NULL);
	}
}

uint32_t lm_pagemap_wp_wait(struct lm_pagemap *m, uint64_t i)
{
	for (;;) {
		uint32_t v = atomic_load_explicit(&m->w[i],
						  memory_order_acquire);

		if ((v & LM_PS_WP) != LM_PS_WP_SAVING)
			return v & LM_PS_WP;
		if (!(v & LM_PS_WAITERS) &&
		    !atomic_compare_exchange_weak_explicit(
			    &m->w[i], &v, v | LM_PS_WAITERS,
			    memory_order_acq_rel, memory_order_acquire))
			continue;
		lm_futex_wait(&m->w[i], v | LM_PS_WAITERS, NULL);
	}
}
