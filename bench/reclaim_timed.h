/*
 * reclaim_timed.h - a page store wrapper for "lazymem bench reclaim" that
 * times each take by the page's class (the guest's even pages are about
 * 3x compressible, its odd pages incompressible), so a tiered store's
 * two tiers can be told apart in the refault figures (reclaim_timed.c).
 */
#ifndef LAZYMEM_BENCH_RECLAIM_TIMED_H
#define LAZYMEM_BENCH_RECLAIM_TIMED_H

#include <stdatomic.h>
#include <stdint.h>

#include <lazymem/reclaim.h>
#include <lazymem/stats.h>

enum { TIMED_3X, TIMED_INCOMPRESSIBLE, TIMED_NR };

struct timed_store {
	struct lm_page_store pub;
	struct lm_page_store *inner;	/* borrowed: not destroyed with it */
	uint64_t page_size;
	_Atomic uint64_t hist[TIMED_NR][LM_LAT_BUCKETS];	/* take ns */
};

/* A wrapper over inner; free it with lm_page_store_destroy(). NULL when
 * out of memory. */
struct timed_store *timed_store_create(struct lm_page_store *inner,
				       uint64_t page_size);

#endif
