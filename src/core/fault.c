/*
 * fault.c - the fault path: claim the page, read it from the source,
 * install it, wake whoever waits.
 *
 * Every delivery ends here: a handler thread with a message from the
 * userfaultfd, a thread in its SIGBUS handler, a vCPU on its way out of
 * KVM_RUN, the background filler. Nothing on this path takes a lock or
 * allocates memory, since it may run in a signal handler; the one shared
 * write per fault is the page's own state word. Each branch bumps a counter
 * in r->stats so lm_region_stats() tells which way faults went.
 */
#include <errno.h>
#include <string.h>

#include "core/region_internal.h"
#include "core/uffd.h"

#define RELAXED memory_order_relaxed

static inline void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, RELAXED);
}

void lm__record_error(struct lm_region *r, uint64_t off, int err)
{
	int none = 0;

	if (atomic_compare_exchange_strong(&r->first_err, &none, err))
		atomic_store(&r->first_err_off, off);
}

static void note_done(struct lm_region *r, uint64_t n)
{
	if (atomic_fetch_add(&r->nr_done, n) + n == r->nr_pages) {
		atomic_store(&r->complete, 1);
		lm_futex_wake_all(&r->complete);
	}
}

static void demand_end(struct lm_region *r, const struct lm_fault *f)
{
	if (f->origin != LM_ORIGIN_BACKGROUND)
		atomic_fetch_sub_explicit(&r->demand_active, 1, RELAXED);
}

int lm__continue_all(struct lm_region *r, uint64_t off, uint64_t len)
{
	for (unsigned i = 0; i < r->nr_views; i++) {
		struct lm_view *v = &r->view[i];
		int err = lm_uffd_continue(v->uffd, v->addr + off, len,
					   !v->sigbus);

		if (err == -EEXIST && !v->sigbus)
			err = lm_uffd_wake(v->uffd, v->addr + off, len);
		if (err && err != -EEXIST)
			return err;
	}
	return 0;
}

/* Make an already present page visible in view v and wake its sleepers. */
static int map_present(struct lm_region *r, struct lm_view *v, uint64_t off)
{
	int err = 0;

	if (r->install == LM_INSTALL_CONTINUE)
		err = lm_uffd_continue(v->uffd, v->addr + off, r->page_size,
				       !v->sigbus);
	if ((err == 0 || err == -EEXIST) && !v->sigbus)
		err = lm_uffd_wake(v->uffd, v->addr + off, r->page_size);
	return err == -EEXIST ? 0 : err;
}

/* Poison the page in every view, so that a sleeper wakes into a failure
 * and a retried access faults with BUS_MCEERR_AR instead of looping. */
static void poison_all(struct lm_region *r, uint64_t off)
{
	for (unsigned i = 0; i < r->nr_views; i++) {
		struct lm_view *v = &r->view[i];

		lm_uffd_poison(v->uffd, v->addr + off, r->page_size,
			       !v->sigbus);
	}
}

/* The page is someone else's: wait for it, then map it in our view. */
static int fault_not_owner(struct lm_region *r, struct lm_fault *f,
			   uint64_t idx)
{
	uint32_t st = lm_pagemap_state(&r->map, idx);
	struct lm_view *v = &r->view[f->view];

	if (st == LM_PS_FETCHING) {
		st = lm_pagemap_wait(&r->map, idx);
		count(&r->stats.faults_waited, 1);
		if (f->origin != LM_ORIGIN_BACKGROUND)
			lm__stats_latency(r, lm_now_ns() - f->t0_ns);
	} else {
		count(&r->stats.faults_present, 1);
	}
	if (st == LM_PS_FAILED) {
		poison_all(r, f->off);
		return -EIO;
	}
	return map_present(r, v, f->off);
}

/* Read the page into f->page: the alias (CONTINUE) or a staging slot. */
static int fetch(struct lm_region *r, struct lm_fault *f, bool want_page)
{
	struct lm_source *src = r->src;
	size_t ps = r->page_size;
	bool zero = src->ops->is_zero &&
		    src->ops->is_zero(src, f->off, ps) == 1;
	int err;

	if (r->install == LM_INSTALL_CONTINUE) {
		f->page = r->alias + f->off;
	} else if (zero && !want_page && r->backing != LM_BACKING_HUGETLB) {
		/* f->page stays NULL: commit installs UFFDIO_ZEROPAGE,
		 * which hugetlbfs does not support. */
		count(&r->stats.pages_zero, 1);
		return 0;
	} else {
		f->slot = lm_staging_get(&r->staging, &f->page);
		if (f->slot < 0)
			return f->slot;
	}
	if (zero) {
		memset(f->page, 0, ps);
		count(&r->stats.pages_zero, 1);
		return 0;
	}
	err = lm_source_read(src, f->off, f->page, ps);
	if (!err)
		count(&r->stats.bytes_read, ps);
	return err;
}

int lm__fault_begin(struct lm_region *r, unsigned view, uint64_t off,
		    enum lm_fault_origin origin, struct lm_fault *f,
		    bool want_page)
{
	uint64_t idx;
	int err;

	if (off >= r->size)
		return -EFAULT;
	f->off = off & ~(r->page_size - 1);
	f->origin = origin;
	f->slot = -1;
	f->page = NULL;
	f->view = view;
	f->t0_ns = lm_now_ns();
	count(&r->stats.faults[origin], 1);

	idx = f->off >> r->page_shift;
	if (!lm_pagemap_claim(&r->map, idx))
		return fault_not_owner(r, f, idx);

	if (origin != LM_ORIGIN_BACKGROUND)
		atomic_fetch_add_explicit(&r->demand_active, 1, RELAXED);
	err = fetch(r, f, want_page);
	if (err) {
		lm_fault_fail(r, f, err);
		return err;
	}
	return 1;
}

static int install(struct lm_region *r, struct lm_fault *f)
{
	struct lm_view *v = &r->view[f->view];
	uint8_t *dst = v->addr + f->off;
	int err;

	if (r->install == LM_INSTALL_CONTINUE)
		return f->origin == LM_ORIGIN_BACKGROUND
			       ? lm__continue_all(r, f->off, r->page_size)
			       : map_present(r, v, f->off);
	if (f->page)
		err = lm_uffd_copy(v->uffd, dst, f->page, r->page_size,
				   !v->sigbus);
	else
		err = lm_uffd_zeropage(v->uffd, dst, r->page_size, !v->sigbus);
	/* EEXIST: the page was populated behind our back (a write through
	 * the alias of a memfd region). It is there; wake any sleeper. */
	if (err == -EEXIST)
		err = v->sigbus ? 0 : lm_uffd_wake(v->uffd, dst, r->page_size);
	return err;
}

int lm_fault_commit(struct lm_region *r, struct lm_fault *f)
{
	int err = install(r, f);

	if (f->slot >= 0) {
		lm_staging_put(&r->staging, f->slot);
		f->slot = -1;
	}
	if (err) {
		lm_fault_fail(r, f, err);
		return err;
	}
	lm_pagemap_publish(&r->map, f->off >> r->page_shift, LM_PS_PRESENT);
	if (f->origin == LM_ORIGIN_BACKGROUND) {
		count(&r->stats.pages_background, 1);
	} else {
		count(&r->stats.pages_demand, 1);
		lm__stats_latency(r, lm_now_ns() - f->t0_ns);
	}
	demand_end(r, f);
	note_done(r, 1);
	return 0;
}

void lm_fault_fail(struct lm_region *r, struct lm_fault *f, int err)
{
	if (f->slot >= 0) {
		lm_staging_put(&r->staging, f->slot);
		f->slot = -1;
	}
	/* Record before poisoning: the poison wakes the faulting thread,
	 * which may ask lm_region_error() at once. */
	lm__record_error(r, f->off, err);
	count(&r->stats.pages_failed, 1);
	lm_pagemap_publish(&r->map, f->off >> r->page_shift, LM_PS_FAILED);
	poison_all(r, f->off);
	demand_end(r, f);
	note_done(r, 1);
}

void lm__pages_done(struct lm_region *r, uint64_t first, uint64_t n,
		    uint32_t state, enum lm_fault_origin origin, bool zero)
{
	for (uint64_t i = first; i < first + n; i++)
		lm_pagemap_publish(&r->map, i, state);
	if (origin == LM_ORIGIN_BACKGROUND)
		count(&r->stats.pages_background, n);
	else
		count(&r->stats.pages_demand, n);
	if (zero)
		count(&r->stats.pages_zero, n);
	note_done(r, n);
}

int lm__fault(struct lm_region *r, unsigned view, uint64_t off,
	      enum lm_fault_origin origin)
{
	struct lm_fault f;
	int rc = lm__fault_begin(r, view, off, origin, &f, false);

	return rc <= 0 ? rc : lm_fault_commit(r, &f);
}

int lm_fault_begin(struct lm_region *r, uint64_t off,
		   enum lm_fault_origin origin, struct lm_fault *f)
{
	return lm__fault_begin(r, 0, off, origin, f, true);
}

int lm_region_fault(struct lm_region *r, uint64_t off,
		    enum lm_fault_origin origin)
{
	return lm__fault(r, 0, off, origin);
}
