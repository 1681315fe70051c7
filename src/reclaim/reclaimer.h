/*
 * reclaim/reclaimer.h - the policy: which pages to evict, and when.
 *
 * It needs no guest cooperation. Writes are seen through async
 * write-protect and PAGEMAP_SCAN (lm_wp_collect; anon regions created with
 * write_protect LM_WP_ASYNC), reads only through the refaults they cause
 * (the reclaimer wraps the page store, so each take marks its page). Each
 * round (period_ms) every page's age grows by one, or falls to zero when
 * it was written or refaulted; then the coldest present pages, those of
 * age >= the threshold, are evicted in runs of up to 64 until target_bytes
 * are out of memory. A refault-rate bound (pages/s per GiB of the region)
 * raises the threshold by one each round the guest pulls pages back faster
 * than that, and lowers it again when it stays under half, which is the
 * control loop of Google's far-memory zswap deployment.
 */
#ifndef LAZYMEM_RECLAIM_RECLAIMER_H
#define LAZYMEM_RECLAIM_RECLAIMER_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/reclaim.h>

struct lm_reclaim_config {
	uint64_t target_bytes;		/* how much to keep out of memory */
	double max_refault_rate;	/* pages/s per GiB; 0: no bound */
	unsigned period_ms;		/* a round; 0: 100 */
	unsigned min_age;		/* threshold to start with; 0: 2 */
	/* Write tracking: a group of pages that stays hot is sampled at
	 * most every this many passes (1: every pass; 0: the default, 4).
	 * reclaimer.c says what it saves and what it delays. */
	unsigned max_sample_every;
};

/* What the reclaimer has done, for statistics. */
struct lm_reclaimer_stats {
	uint64_t rounds, evicted, refaulted;
	uint64_t written;		/* pages seen written: each one a
					 * write-protect fault of the guest's */
	uint64_t out_pages;		/* pages it holds out now */
	unsigned threshold;		/* age a page needs to be evicted */
	uint64_t evict_errors;		/* lm_region_evict calls refused */
};

struct lm_reclaimer;

/*
 * A reclaimer for a region of region_size bytes in page_size pages over
 * the store inner (borrowed). Give lm_reclaimer_store() to the region's
 * configuration, create the region, then lm_reclaimer_start().
 */
int lm_reclaimer_create(struct lm_page_store *inner, uint64_t region_size,
			uint64_t page_size, const struct lm_reclaim_config *c,
			struct lm_reclaimer **out);
struct lm_page_store *lm_reclaimer_store(struct lm_reclaimer *rc);
/* Start the policy's thread on r (async write tracking if r has it). */
int lm_reclaimer_start(struct lm_reclaimer *rc, struct lm_region *r);
/* Stop the thread (the region's pages stay where they are). */
void lm_reclaimer_stop(struct lm_reclaimer *rc);
/* Hold eviction off (a paused VM being saved) or let it run again; a
 * round in progress finishes first. */
void lm_reclaimer_hold(struct lm_reclaimer *rc, bool hold);
void lm_reclaimer_stats(struct lm_reclaimer *rc, struct lm_reclaimer_stats *s);
/* After the region is destroyed. */
void lm_reclaimer_destroy(struct lm_reclaimer *rc);

/*
 * "40%" of mem, or a byte count with an optional K/M/G suffix. A
 * percentage over 100 or a negative value is refused (-EINVAL, with
 * util_error naming the option given as what).
 */
int lm_reclaim_parse_target(const char *what, const char *s, uint64_t mem,
			    uint64_t *bytes);

#endif
