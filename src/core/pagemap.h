/*
 * pagemap.h - the page-state map: one 32-bit word per page.
 *
 * The word is the only synchronisation on the fault path. A thread claims a
 * missing page with one compare-and-swap (MISSING -> FETCHING); exactly one
 * wins and fetches it. Losers sleep on the word itself with a futex, after
 * setting WAITERS so that the winner knows to issue the wake-up; a page
 * nobody waited for is published with a single atomic and no system call.
 * There is no lock anywhere, so faults on different pages never contend.
 */
#ifndef LAZYMEM_CORE_PAGEMAP_H
#define LAZYMEM_CORE_PAGEMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

enum {
	LM_PS_MISSING = 0,
	LM_PS_FETCHING = 1,
	LM_PS_PRESENT = 2,
	LM_PS_FAILED = 3,
	LM_PS_STATE = 3,	/* mask of the state bits */
	LM_PS_WAITERS = 4,	/* someone sleeps on this word */
	/* Adopted (foreign) regions only: the owner of the memory dropped
	 * this page (a balloon's MADV_DONTNEED, an munmap). From now on its
	 * content is zero, not the source's; claim and publish keep it. */
	LM_PS_REMOVED = 8,
	/*
	 * Write-protect state for a live snapshot (wp.c), independent of the
	 * fill state above: NONE outside a snapshot; PROTECTED from the
	 * instant until the page is saved; SAVING while one thread (a
	 * faulting writer or the snapshot writer) copies it out, others wait
	 * on the word like on FETCHING; SAVED once its content at the
	 * instant is safe, so it is never copied again in this snapshot and
	 * a later write fault only lifts the protection.
	 */
	LM_PS_WP = 0x30,		/* mask of the write-protect bits */
	LM_PS_WP_NONE = 0x00,
	LM_PS_WP_PROTECTED = 0x10,
	LM_PS_WP_SAVING = 0x20,
	LM_PS_WP_SAVED = 0x30,
	/*
	 * Reclaim (evict.c): the page's content is in the region's page
	 * store, not its source. Set with MISSING by the evicting thread,
	 * which owned the page (FETCHING) while it took it out, so a fault
	 * during an eviction waits like during a fetch; cleared by the
	 * thread that refaults it, which owns it (FETCHING) too.
	 */
	LM_PS_STORED = 0x40,
};

struct lm_pagemap {
	_Atomic uint32_t *w;
	uint64_t nr;
};

int lm_pagemap_init(struct lm_pagemap *m, uint64_t nr_pages);
void lm_pagemap_fini(struct lm_pagemap *m);

static inline uint32_t lm_pagemap_state(const struct lm_pagemap *m,
					uint64_t i)
{
	return atomic_load_explicit(&m->w[i], memory_order_acquire) &
	       LM_PS_STATE;
}

/* MISSING -> FETCHING. True if this thread now owns the page. */
static inline bool lm_pagemap_claim(struct lm_pagemap *m, uint64_t i)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed);

	if ((v & LM_PS_STATE) != LM_PS_MISSING)
		return false;
	return atomic_compare_exchange_strong_explicit(
		&m->w[i], &v, (v & ~LM_PS_STATE) | LM_PS_FETCHING,
		memory_order_acquire, memory_order_relaxed);
}

/* PRESENT -> FETCHING for an eviction: a page with write-protect state
 * (a running snapshot's) is never taken. True if this thread owns it. */
static inline bool lm_pagemap_evict_claim(struct lm_pagemap *m, uint64_t i)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed);

	if ((v & LM_PS_STATE) != LM_PS_PRESENT || (v & LM_PS_WP))
		return false;
	return atomic_compare_exchange_strong_explicit(
		&m->w[i], &v, (v & ~LM_PS_STATE) | LM_PS_FETCHING,
		memory_order_acquire, memory_order_relaxed);
}

/* MISSING -> FETCHING of a page whose content is the source's (not in a
 * page store): fault-around claims only these, since a run is read from
 * the source with one call. */
static inline bool lm_pagemap_claim_unstored(struct lm_pagemap *m, uint64_t i)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed);

	if ((v & LM_PS_STATE) != LM_PS_MISSING || (v & LM_PS_STORED))
		return false;
	return atomic_compare_exchange_strong_explicit(
		&m->w[i], &v, (v & ~LM_PS_STATE) | LM_PS_FETCHING,
		memory_order_acquire, memory_order_relaxed);
}

static inline bool lm_pagemap_stored(const struct lm_pagemap *m, uint64_t i)
{
	return atomic_load_explicit(&m->w[i], memory_order_acquire) &
	       LM_PS_STORED;
}

static inline bool lm_pagemap_removed(const struct lm_pagemap *m, uint64_t i)
{
	return atomic_load_explicit(&m->w[i], memory_order_acquire) &
	       LM_PS_REMOVED;
}

/*
 * Mark page i removed. A PRESENT page goes back to MISSING (the kernel is
 * about to zap it, or has); a page being fetched keeps its owner, who sees
 * the bit. True if the page was PRESENT.
 */
static inline bool lm_pagemap_remove(struct lm_pagemap *m, uint64_t i)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed), n;

	do {
		n = v | LM_PS_REMOVED;
		if ((v & LM_PS_STATE) == LM_PS_PRESENT)
			n = (n & ~LM_PS_STATE) | LM_PS_MISSING;
	} while (!atomic_compare_exchange_weak_explicit(
		&m->w[i], &v, n, memory_order_acq_rel, memory_order_relaxed));
	return (v & LM_PS_STATE) == LM_PS_PRESENT;
}

/* Sleep until the page is no longer FETCHING; returns its state. */
uint32_t lm_pagemap_wait(struct lm_pagemap *m, uint64_t i);

/* FETCHING -> state (PRESENT or FAILED), waking any sleepers. */
static inline void lm_pagemap_publish(struct lm_pagemap *m, uint64_t i,
				      uint32_t state)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(
		&m->w[i], &v, (v & ~(LM_PS_STATE | LM_PS_WAITERS)) | state,
		memory_order_release, memory_order_relaxed))
		;
	if (v & LM_PS_WAITERS)
		lm_futex_wake_all(&m->w[i]);
}

/* The page's write-protect bits (LM_PS_WP_*). */
static inline uint32_t lm_pagemap_wp(const struct lm_pagemap *m, uint64_t i)
{
	return atomic_load_explicit(&m->w[i], memory_order_acquire) &
	       LM_PS_WP;
}

/* PROTECTED -> SAVING: true if this thread now copies the page out. */
static inline bool lm_pagemap_wp_claim(struct lm_pagemap *m, uint64_t i)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed);

	while ((v & LM_PS_WP) == LM_PS_WP_PROTECTED)
		if (atomic_compare_exchange_weak_explicit(
			    &m->w[i], &v, (v & ~LM_PS_WP) | LM_PS_WP_SAVING,
			    memory_order_acquire, memory_order_relaxed))
			return true;
	return false;
}

/*
 * Set the write-protect bits to wp, waking any sleeper. A sleeper on the
 * fill state is woken too (the WAITERS bit is shared): it re-checks and
 * sleeps again, which costs a spurious wake-up, never a lost one.
 */
static inline void lm_pagemap_wp_set(struct lm_pagemap *m, uint64_t i,
				     uint32_t wp)
{
	uint32_t v = atomic_load_explicit(&m->w[i], memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(
		&m->w[i], &v, (v & ~(LM_PS_WP | LM_PS_WAITERS)) | wp,
		memory_order_acq_rel, memory_order_relaxed))
		;
	if (v & LM_PS_WAITERS)
		lm_futex_wake_all(&m->w[i]);
}

/* Sleep until the page is no longer SAVING; returns its WP bits. */
uint32_t lm_pagemap_wp_wait(struct lm_pagemap *m, uint64_t i);

#endif
