/*
 * fault.c - the fault path: claim the page, read it from the source,
 * install it, wake whoever waits.
 *
 * Every delivery ends here: a handler thread with a message from the
 * userfaultfd, a thread in its SIGBUS handler, a vCPU on its way out of
 * KVM_RUN, the background filler. Nothing on this path takes a lock or
 * allocates memory, since it may run in a signal handler. Each branch bumps
 * a counter in the faulting thread's own statistics shard (lm__count), so
 * lm_region_stats() tells which way faults went without every faulting
 * thread writing the same cache lines; what other threads' faults still
 * write is counted in docs/benchmarks.md ("Shared writes per fault").
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core/region_internal.h"
#include "core/uffd.h"

#define RELAXED memory_order_relaxed

/* Take a buffer to stage the fault's pages in: the thread's shard's own
 * if it is free (no shared write), else a slot of the region's pool. */
static int stage_get(struct lm_region *r, struct lm_fault *f)
{
	struct lm_stats_shard *s = lm__shard(r);
	unsigned i = (unsigned)(s - r->shards);
	uint32_t free_ = 0;

	if (i && atomic_compare_exchange_strong_explicit(
			 &s->stage_busy, &free_, 1, memory_order_acquire,
			 memory_order_relaxed)) {
		void *b = atomic_load_explicit(&s->stage, RELAXED);

		if (!b) {
			/* mmap is a plain system call: signal-safe. */
			b = mmap(NULL, r->staging.size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
				 -1, 0);
			if (b == MAP_FAILED)
				b = NULL;
			else
				atomic_store_explicit(&s->stage, b, RELAXED);
		}
		if (b) {
			f->page = b;
			f->slot = LM_SLOT_SHARD + (int)i;
			return f->slot;
		}
		atomic_store_explicit(&s->stage_busy, 0, memory_order_release);
	}
	f->slot = lm_staging_get(&r->staging, &f->page);
	return f->slot;
}

static void stage_put(struct lm_region *r, struct lm_fault *f)
{
	if (f->slot >= LM_SLOT_SHARD)
		atomic_store_explicit(
			&r->shards[f->slot - LM_SLOT_SHARD].stage_busy, 0,
			memory_order_release);
	else if (f->slot >= 0)
		lm_staging_put(&r->staging, f->slot);
	f->slot = -1;
}

void lm__record_error(struct lm_region *r, uint64_t off, int err)
{
	int none = 0;

	if (atomic_compare_exchange_strong(&r->first_err, &none, err))
		atomic_store(&r->first_err_off, off);
}

/* Pages in chunk c: LM_DONE_CHUNK, less for the region's last chunk. */
static uint64_t chunk_pages(const struct lm_region *r, uint64_t c)
{
	uint64_t first = c << LM_DONE_CHUNK_SHIFT;

	return LM_MIN(LM_DONE_CHUNK, r->nr_pages - first);
}

void lm__pages_note_done(struct lm_region *r, uint64_t first, uint64_t n)
{
	while (n) {
		uint64_t c = first >> LM_DONE_CHUNK_SHIFT;
		uint64_t end = LM_MIN(first + n, (c + 1) << LM_DONE_CHUNK_SHIFT);
		uint64_t k = end - first, full = chunk_pages(r, c);

		if (atomic_fetch_add(&r->done[c].n, k) + k == full) {
			if (atomic_fetch_add(&r->chunks_done, 1) + 1 ==
			    r->nr_chunks) {
				atomic_store(&r->complete, 1);
				lm_futex_wake_all(&r->complete);
			}
			lm__thp_wake(r);
		}
		first = end;
		n -= k;
	}
}

void lm__page_undone(struct lm_region *r, uint64_t idx)
{
	uint64_t c = idx >> LM_DONE_CHUNK_SHIFT;

	if (atomic_fetch_sub(&r->done[c].n, 1) == chunk_pages(r, c))
		atomic_fetch_sub(&r->chunks_done, 1);
	lm__thp_page_gone(r, idx);
}

static void demand_end(struct lm_region *r, const struct lm_fault *f)
{
	if (f->origin != LM_ORIGIN_BACKGROUND)
		atomic_fetch_sub_explicit(&lm__shard(r)->demand_active, 1,
					  RELAXED);
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

/* Make already present pages visible in view v and wake its sleepers. */
static int map_present(struct lm_region *r, struct lm_view *v, uint64_t off,
		       uint64_t len)
{
	int err = 0;

	if (r->install == LM_INSTALL_CONTINUE)
		err = lm_uffd_continue(v->uffd, v->addr + off, len, !v->sigbus);
	if ((err == 0 || err == -EEXIST) && !v->sigbus)
		err = lm_uffd_wake(v->uffd, v->addr + off, len);
	return err == -EEXIST ? 0 : err;
}

/* Poison the page in every view, so that a sleeper wakes into a failure
 * and a retried access faults with SIGBUS instead of looping. */
static void poison_all(struct lm_region *r, uint64_t off)
{
	for (unsigned i = 0; i < r->nr_views; i++) {
		struct lm_view *v = &r->view[i];

		lm_uffd_poison(v->uffd, v->addr + off, r->page_size,
			       !v->sigbus);
	}
}

/*
 * Foreign regions: a fault on a page we think present whose owner removed
 * it. Either the message is stale (the page is there: EEXIST, wake the
 * sleeper) or an install of ours raced with the kernel's zap after the
 * REMOVE was read (the page is gone: its content is zero now).
 */
static int reinstall_zero(struct lm_region *r, struct lm_view *v,
			  uint64_t off)
{
	uint64_t done;
	void *zero = NULL;
	int slot = -1, err;

	if (r->backing == LM_BACKING_HUGETLB) {
		slot = lm_staging_get(&r->staging, &zero);
		if (slot < 0)
			return slot;
		memset(zero, 0, r->page_size);
		err = lm_uffd_copy_try(v->uffd, v->addr + off, zero,
				       r->page_size, true, &done);
		lm_staging_put(&r->staging, slot);
	} else {
		err = lm_uffd_zeropage_try(v->uffd, v->addr + off,
					   r->page_size, true, &done);
	}
	if (err == -EEXIST)
		err = lm_uffd_wake(v->uffd, v->addr + off, r->page_size);
	else if (!err)
		lm__count(r, pages_zero, 1);
	return err;
}

/* The page is someone else's: wait for it, then map it in our view.
 * 1 means the owner gave it back unfetched (fault-around): claim again. */
static int fault_not_owner(struct lm_region *r, struct lm_fault *f,
			   uint64_t idx)
{
	uint32_t st = lm_pagemap_state(&r->map, idx);
	struct lm_view *v = &r->view[f->view];

	if (st == LM_PS_FETCHING) {
		st = lm_pagemap_wait(&r->map, idx);
		if (st == LM_PS_MISSING)
			return 1;
		lm__count(r, faults_waited, 1);
		if (f->origin != LM_ORIGIN_BACKGROUND)
			lm__stats_latency(r, lm_now_ns() - f->t0_ns);
	} else if (st == LM_PS_MISSING) {
		return 1;
	} else {
		lm__count(r, faults_present, 1);
	}
	if (st == LM_PS_FAILED) {
		poison_all(r, f->off);
		return -EIO;
	}
	if (lm__page_removed(r, idx))
		return reinstall_zero(r, v, f->off);
	return map_present(r, v, f->off, r->page_size);
}

/* Claim up to max - 1 missing pages after idx; how many. Stops at the
 * region's end and at the first page another thread holds or has. */
static unsigned claim_around(struct lm_region *r, uint64_t idx, unsigned max)
{
	unsigned n = 0;

	while (n + 1 < max && idx + n + 1 < r->nr_pages &&
	       !lm__page_removed(r, idx + n + 1) &&
	       lm_pagemap_claim_unstored(&r->map, idx + n + 1))
		n++;
	return n;
}

/*
 * Does the faulting thread's own sequence of faults show a stream? A
 * self-resolving thread (SIGBUS) takes only its own accesses' faults; a
 * foreign space's one handler thread (foreign.c) reads every fault of the
 * other process in order, so its sequence is that guest's. Both keep a
 * window. Handler threads of our own regions serve everyone's faults
 * interleaved (no one stream), and a vCPU's accesses are already
 * fault-around's best case: both get the fixed window.
 */
static bool around_adapts(const struct lm_region *r,
			  enum lm_fault_origin origin)
{
	return r->fault_around > 1 &&
	       (origin == LM_ORIGIN_SIGBUS ||
		(origin == LM_ORIGIN_HANDLER && r->foreign));
}

/*
 * Pages to install for a demand fault at idx, itself included, at most
 * r->fault_around. A thread whose faults form a stream (around_adapts)
 * keeps a window of its own in its shard, like the kernel's readahead:
 * doubled when the fault lands where its previous run ended, back to 1
 * when it does not, so random access fetches only what it touches. Why:
 * with a fixed window a random toucher fetched up to 15 pages it might
 * never use per fault, which a memory source hides but a network peer or
 * a disk does not. A thread sharing shard 0 has no window of its own and
 * gets the fixed one.
 */
static unsigned around_window(struct lm_region *r, uint64_t idx,
			      enum lm_fault_origin origin)
{
	struct lm_stats_shard *s;
	unsigned w;

	if (!around_adapts(r, origin))
		return r->fault_around;
	s = lm__shard(r);
	if (s == r->shards)
		return r->fault_around;
	w = atomic_load_explicit(&s->around_window, RELAXED);
	if (atomic_load_explicit(&s->around_next, RELAXED) == idx + 1)
		w = LM_MIN(w < 2 ? 2 : 2 * w, r->fault_around);
	else
		w = 1;
	atomic_store_explicit(&s->around_window, w, RELAXED);
	return w;
}

/* After a demand fault's run [idx, idx+n) is claimed: where a stream of
 * this thread would fault next. */
static void around_note(struct lm_region *r, const struct lm_fault *f)
{
	if (around_adapts(r, f->origin))
		atomic_store_explicit(&lm__shard(r)->around_next,
				      (f->off >> r->page_shift) + f->npages + 1,
				      RELAXED);
}

/* Give the fault-around pages back unfetched; waiters claim them anew. */
static void release_around(struct lm_region *r, struct lm_fault *f)
{
	uint64_t idx = f->off >> r->page_shift;

	for (unsigned i = 1; i < f->npages; i++)
		lm_pagemap_publish(&r->map, idx + i, LM_PS_MISSING);
	f->npages = 1;
}

static bool src_is_zero(struct lm_region *r, uint64_t off, uint64_t len)
{
	struct lm_source *src = r->src;

	return src->ops->is_zero && src->ops->is_zero(src, off, len) == 1;
}

/* An evicted page (reclaim): its content is in the region's page store.
 * Always one page (fault-around never claims a stored page). */
static int fetch_stored(struct lm_region *r, struct lm_fault *f)
{
	struct lm_page_store *s = r->reclaim.store;

	f->zero = false;
	if (stage_get(r, f) < 0)
		return f->slot;
	return s->ops->take(s, f->off, f->page);
}

/* Read the run into f->page: the alias (CONTINUE) or a staging slot. */
static int fetch(struct lm_region *r, struct lm_fault *f, bool want_page)
{
	uint64_t len = (uint64_t)f->npages << r->page_shift;
	/* A page its (foreign) owner removed reads as zero from now on. */
	bool zero = lm__page_removed(r, f->off >> r->page_shift) ||
		    src_is_zero(r, f->off, len);
	int err;

	if (lm_pagemap_stored(&r->map, f->off >> r->page_shift))
		return fetch_stored(r, f);
	f->zero = zero;
	if (r->install == LM_INSTALL_CONTINUE) {
		f->page = r->alias + f->off;
	} else if (r->image && !zero && !want_page) {
		/* Foreign, source mapped: install straight from it. */
		f->page = (void *)(uintptr_t)(r->image + f->off);
		lm__count(r, bytes_read, len);
		return 0;
	} else if (zero && !want_page && r->backing != LM_BACKING_HUGETLB) {
		/* f->page stays NULL: commit installs UFFDIO_ZEROPAGE,
		 * which hugetlbfs does not support. */
		lm__count(r, pages_zero, f->npages);
		return 0;
	} else {
		if (stage_get(r, f) < 0)
			return f->slot;
	}
	if (zero) {
		memset(f->page, 0, len);
		lm__count(r, pages_zero, f->npages);
		return 0;
	}
	err = lm_source_read(r->src, f->off, f->page, len);
	if (err && f->npages > 1) {
		/* Do not fail pages nobody asked for: retry ours alone. */
		release_around(r, f);
		len = r->page_size;
		err = lm_source_read(r->src, f->off, f->page, len);
	}
	if (!err)
		lm__count(r, bytes_read, len);
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
	f->npages = 1;
	f->t0_ns = lm_now_ns();
	lm__count(r, faults[origin], 1);

	idx = f->off >> r->page_shift;
	while (!lm_pagemap_claim(&r->map, idx)) {
		err = fault_not_owner(r, f, idx);
		if (err != 1)
			return err;
	}
	if (origin != LM_ORIGIN_BACKGROUND) {
		atomic_fetch_add_explicit(&lm__shard(r)->demand_active, 1,
					  RELAXED);
		/* A removed page is installed as zeroes: no neighbours
		 * (which still hold the source's content) in its run. */
		if (!lm__page_removed(r, idx) &&
		    !lm_pagemap_stored(&r->map, idx))
			f->npages += claim_around(r, idx,
						  around_window(r, idx, origin));
		around_note(r, f);
	}
	err = fetch(r, f, want_page);
	if (err) {
		lm_fault_fail(r, f, err);
		return err;
	}
	return 1;
}

/* The mapped image could not be read (the file shrank under it): read
 * through the source, whose error says why, and install from staging. */
static int install_read(struct lm_region *r, struct lm_view *v, uint64_t off,
			uint64_t len)
{
	uint64_t done;
	void *buf;
	int slot = lm_staging_get(&r->staging, &buf), err;

	if (slot < 0)
		return slot;
	err = lm_source_read(r->src, off, buf, len);
	if (!err)
		err = lm_uffd_copy_try(v->uffd, v->addr + off, buf, len, true,
				       &done);
	lm_staging_put(&r->staging, slot);
	return err;
}

/* UFFDIO_COPY with `mode`; zero pages (buf NULL) from the region's zero
 * buffer: UFFDIO_ZEROPAGE cannot install a page protected, and a range
 * holding a zero page cannot become a huge page (MADV_COLLAPSE: EBUSY). */
static int install_copied(struct lm_region *r, struct lm_view *v,
			  uint8_t *dst, const uint8_t *buf, uint64_t len,
			  uint64_t mode)
{
	mode |= v->sigbus ? UFFDIO_COPY_MODE_DONTWAKE : 0;
	for (uint64_t at = 0; at < len;) {
		uint64_t n = buf ? len - at : LM_MIN(len - at, r->zero_size);
		int err = lm_uffd_copy_mode(v->uffd, dst + at,
					    buf ? buf + at : r->zero, n,
					    mode);

		if (err)
			return err;
		at += n;
	}
	return 0;
}

int lm__install_range(struct lm_region *r, unsigned view, bool all_views,
		      uint64_t off, const uint8_t *buf, uint64_t len)
{
	struct lm_view *v = &r->view[view];
	uint8_t *dst = v->addr + off;
	int err;

	if (r->install == LM_INSTALL_CONTINUE)
		return all_views ? lm__continue_all(r, off, len)
				 : map_present(r, v, off, len);
	if (r->foreign) {
		uint64_t done;

		/* No retry here: -EAGAIN goes up to the reader of events. */
		err = buf ? lm_uffd_copy_try(v->uffd, dst, buf, len, true, &done)
			  : lm_uffd_zeropage_try(v->uffd, dst, len, true, &done);
		if (err == -EFAULT && r->image && buf == r->image + off)
			err = install_read(r, v, off, len);
		return err == -EEXIST ? lm_uffd_wake(v->uffd, dst, len) : err;
	}
	if (atomic_load_explicit(&r->wp.active, memory_order_acquire))
		/* A live snapshot runs: a page filled now must still fault
		 * on its first write, so it is installed protected. */
		err = install_copied(r, v, dst, buf, len, UFFDIO_COPY_MODE_WP);
	else if (buf)
		err = lm_uffd_copy(v->uffd, dst, buf, len, !v->sigbus);
	else if (r->thp.mode != LM_THP_OFF)
		err = install_copied(r, v, dst, NULL, len, 0);
	else
		err = lm_uffd_zeropage(v->uffd, dst, len, !v->sigbus);
	/* EEXIST: the page was populated behind our back (a write through
	 * the alias of a memfd region). It is there; wake any sleeper. */
	if (err == -EEXIST)
		err = v->sigbus ? 0 : lm_uffd_wake(v->uffd, dst, len);
	return err;
}

/* Install [off, off+len) from buf (NULL: zero pages) in the fault's view;
 * the background filler, which resolves no one's fault, maps every view. */
static int install_run(struct lm_region *r, const struct lm_fault *f,
		       uint64_t off, const uint8_t *buf, uint64_t len)
{
	return lm__install_range(r, f->view, f->origin == LM_ORIGIN_BACKGROUND,
				 off, buf, len);
}

/* A refault (the page came from the store): no longer stored. Only the
 * owner (FETCHING) changes the bit, so a plain and-not suffices. */
static void unstore(struct lm_region *r, const struct lm_fault *f,
		    uint64_t idx)
{
	if (!lm_pagemap_stored(&r->map, idx))
		return;
	atomic_fetch_and(&r->map.w[idx], ~(uint32_t)LM_PS_STORED);
	lm__count(r, pages_refaulted, 1);
	if (f->origin != LM_ORIGIN_BACKGROUND)
		lm__stats_refault(r, lm_now_ns() - f->t0_ns);
}

/* Mark pages [idx, idx+n) present and count them. */
static void publish_present(struct lm_region *r, const struct lm_fault *f,
			    uint64_t idx, unsigned n)
{
	if (n == 1)
		unstore(r, f, idx);
	for (unsigned i = 0; i < n; i++)
		lm_pagemap_publish(&r->map, idx + i, LM_PS_PRESENT);
	if (f->origin == LM_ORIGIN_BACKGROUND) {
		lm__count(r, pages_background, n);
	} else if (idx == f->off >> r->page_shift) {
		lm__count(r, pages_demand, 1);
		if (n > 1)
			lm__count(r, pages_around, n - 1);
	} else {
		lm__count(r, pages_around, n);
	}
	lm__pages_note_done(r, idx, n);
}

/* A run's install failed (EEXIST part-way, say): install page by page so
 * each page gets its own outcome. Returns the faulting page's. */
static int commit_page_by_page(struct lm_region *r, struct lm_fault *f)
{
	uint64_t idx = f->off >> r->page_shift;
	int first_err = 0;

	for (unsigned i = 0; i < f->npages; i++) {
		uint64_t off = f->off + ((uint64_t)i << r->page_shift);
		const uint8_t *buf = f->page ? (const uint8_t *)f->page +
						       (off - f->off) : NULL;
		int err = install_run(r, f, off, buf, r->page_size);
		struct lm_fault one = *f;

		if (!err) {
			publish_present(r, f, idx + i, 1);
			continue;
		}
		one.off = off;
		one.npages = 1;
		one.slot = -1;
		one.origin = LM_ORIGIN_BACKGROUND;	/* no demand_end */
		lm_fault_fail(r, &one, err);
		if (i == 0)
			first_err = err;
	}
	return first_err;
}

/* Foreign regions: the other process is changing its memory map and the
 * kernel refuses installs until its event is read. Give the pages back
 * unfetched (waiters claim them anew) and let the caller read events. */
static int commit_later(struct lm_region *r, struct lm_fault *f)
{
	uint64_t idx = f->off >> r->page_shift;

	stage_put(r, f);
	for (unsigned i = 0; i < f->npages; i++)
		lm_pagemap_publish(&r->map, idx + i, LM_PS_MISSING);
	/* Not installed after all: the retry counts it again. */
	if (f->zero)
		atomic_fetch_sub_explicit(&lm__shard(r)->pages_zero,
					  f->npages, RELAXED);
	else
		atomic_fetch_sub_explicit(&lm__shard(r)->bytes_read,
					  (uint64_t)f->npages << r->page_shift,
					  RELAXED);
	lm__count(r, faults_retried, 1);
	demand_end(r, f);
	return -EAGAIN;
}

int lm_fault_commit(struct lm_region *r, struct lm_fault *f)
{
	uint64_t idx = f->off >> r->page_shift;
	int err = install_run(r, f, f->off, f->page,
			      (uint64_t)f->npages << r->page_shift);

	if (err == -EAGAIN && r->foreign)
		return commit_later(r, f);
	/* Latency is recorded before the pages are published: whoever waits
	 * for the region to complete then sees every fault's latency too. */
	if (f->origin != LM_ORIGIN_BACKGROUND && !(err && f->npages == 1))
		lm__stats_latency(r, lm_now_ns() - f->t0_ns);
	if (err && f->npages > 1) {
		err = commit_page_by_page(r, f);
	} else if (err) {
		stage_put(r, f);
		lm_fault_fail(r, f, err);
		return err;
	} else {
		publish_present(r, f, idx, f->npages);
	}
	stage_put(r, f);
	demand_end(r, f);
	return err;
}

void lm_fault_fail(struct lm_region *r, struct lm_fault *f, int err)
{
	uint64_t idx = f->off >> r->page_shift;

	stage_put(r, f);
	release_around(r, f);
	/* Record before poisoning: the poison wakes the faulting thread,
	 * which may ask lm_region_error() at once. */
	lm__record_error(r, f->off, err);
	lm__count(r, pages_failed, 1);
	atomic_fetch_and(&r->map.w[idx], ~(uint32_t)LM_PS_STORED);
	lm_pagemap_publish(&r->map, idx, LM_PS_FAILED);
	poison_all(r, f->off);
	demand_end(r, f);
	lm__pages_note_done(r, idx, 1);
}

void lm__pages_done(struct lm_region *r, uint64_t first, uint64_t n,
		    uint32_t state, enum lm_fault_origin origin, bool zero)
{
	for (uint64_t i = first; i < first + n; i++)
		lm_pagemap_publish(&r->map, i, state);
	if (origin == LM_ORIGIN_BACKGROUND)
		lm__count(r, pages_background, n);
	else
		lm__count(r, pages_demand, n);
	if (zero)
		lm__count(r, pages_zero, n);
	lm__pages_note_done(r, first, n);
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
