/*
 * prefetch.c - batched installs into foreign regions: runs of claimed
 * pages read with one source read and installed with UFFDIO_COPY without
 * waking anyone, then one UFFDIO_WAKE for the whole batch, as published
 * working-set prefetchers (REAP) do. Used by background fill of foreign
 * regions and by lm_foreign_prefetch for a recorded working set.
 *
 * Not on the signal path (foreign regions have no SIGBUS delivery), so
 * buffers may be allocated here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/foreign_internal.h"
#include "core/uffd.h"

#define BATCH_BYTES (4u << 20)

static void release(struct lm_region *r, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		lm_pagemap_publish(&r->map, i, LM_PS_MISSING);
}

static void fail_page(struct lm_region *r, uint64_t idx, int err)
{
	struct lm_fault f = {
		.off = idx << r->page_shift,
		.origin = LM_ORIGIN_BACKGROUND,
		.slot = -1,
		.npages = 1,
	};

	lm_fault_fail(r, &f, err);
}

static bool is_zero(struct lm_region *r, uint64_t off, uint64_t len)
{
	struct lm_source *s = r->src;

	return s->ops->is_zero && s->ops->is_zero(s, off, len) == 1;
}

/*
 * Where a run's content comes from: the region's source (background fill,
 * prefetch), or the caller of lm_region_install_run, whose pages are in
 * data (NULL: zero pages). out, when set, gets each page's outcome.
 */
struct run_src {
	bool given;
	const uint8_t *data;
	enum lm_fault_origin origin;
	struct lm__run_outcome *out;	/* bit j: page first + j */
};

static void note(uint64_t *mask, uint64_t j)
{
	if (mask)
		*mask |= 1ull << j;
}

/* Pages [first, first+n) installed: counted, and noted from bit j on. */
static void installed(struct lm_region *r, uint64_t first, uint64_t n,
		      const struct run_src *rs, uint64_t j, bool zero)
{
	lm__pages_done(r, first, n, LM_PS_PRESENT, rs->origin, zero);
	for (uint64_t k = 0; rs->out && k < n; k++)
		note(&rs->out->installed, j + k);
}

/* Copy (or zero) [first, first+n) from buf; *done_pages installed. */
static int install(struct lm_region *r, uint64_t first, uint64_t n,
		   const void *buf, bool zero_page, uint64_t *done_pages)
{
	struct lm_view *v = &r->view[0];
	uint64_t off = first << r->page_shift, len = n << r->page_shift;
	uint64_t done = 0;
	int err;

	err = zero_page ? lm_uffd_zeropage_try(v->uffd, v->addr + off, len,
					       false, &done)
			: lm_uffd_copy_try(v->uffd, v->addr + off, buf, len,
					   false, &done);
	*done_pages = done >> r->page_shift;
	return err;
}

/* Page i's content: into buf (one page), or from the caller's data, or
 * *zp: install the zero page. Whether it was read from the source. */
static int page_content(struct lm_region *r, uint64_t i, uint64_t first,
			const struct run_src *rs, uint8_t *buf,
			const void **from, bool *zero, bool *read)
{
	uint64_t off = i << r->page_shift;

	*zero = lm_pagemap_removed(&r->map, i) ||
		(rs->given ? rs->data == NULL : is_zero(r, off, r->page_size));
	*read = false;
	*from = NULL;
	if (*zero && r->backing != LM_BACKING_HUGETLB)
		return 0;		/* UFFDIO_ZEROPAGE */
	*from = buf;
	if (*zero) {
		memset(buf, 0, r->page_size);
		return 0;
	}
	if (rs->given) {
		*from = rs->data + ((i - first) << r->page_shift);
		return 0;
	}
	*read = true;
	return lm_source_read(r->src, off, buf, r->page_size);
}

/* One page at a time, to give each page its own outcome; pages before
 * first0 in the run were dealt with already (bit offsets count from it). */
static int one_by_one(struct lm_region *r, uint64_t first0, uint64_t first,
		      uint64_t n, uint8_t *buf, const struct run_src *rs)
{
	int first_err = 0;

	for (uint64_t i = first; i < first + n; i++) {
		const void *from;
		uint64_t done;
		bool zero, read;
		int err = page_content(r, i, first0, rs, buf, &from, &zero,
				       &read);

		if (!err)
			err = install(r, i, 1, from, from == NULL, &done);
		if (err == -EAGAIN) {
			release(r, i, first + n - i);
			lm__count(r, faults_retried, 1);
			return -EAGAIN;
		}
		if (!err || err == -EEXIST) {
			/* EEXIST: there already (a zap raced us back). */
			if (read && !err)
				lm__count(r, bytes_read, r->page_size);
			installed(r, i, 1, rs, i - first0, zero);
			continue;
		}
		fail_page(r, i, err);
		if (rs->out)
			note(&rs->out->failed, i - first0);
		if (!first_err)
			first_err = err;
	}
	return first_err;
}

/*
 * From the removed check to the end of the copy no REMOVE/UNMAP event may
 * complete: an event is completed by the read that returns it, and the
 * kernel zaps the range right after, so a copy issued after that read but
 * landing after the zap would leave the file's content in a page the
 * balloon removed. The handler thread reads and applies events under the
 * write side of this lock (foreign.c); a copy that meets a pending event
 * gets EAGAIN rather than waiting, so neither side waits on the other for
 * long. Demand faults need no lock: the thread that reads events serves
 * them.
 */
static void events_rdlock(struct lm_region *r)
{
	if (r->events_lock)
		pthread_rwlock_rdlock(r->events_lock);
}

static void events_unlock(struct lm_region *r)
{
	if (r->events_lock)
		pthread_rwlock_unlock(r->events_lock);
}

/* The run's data, read or given, before the lock the handler waits on.
 * 1: install it page by page (a given hugetlb zero run, for which the
 * caller gave room for one page only). */
static int run_content(struct lm_region *r, uint64_t off, uint64_t len,
		       void *buf, const struct run_src *rs, const void **from,
		       bool *zero)
{
	*zero = rs->given ? rs->data == NULL : is_zero(r, off, len);
	*from = NULL;			/* NULL: UFFDIO_ZEROPAGE */
	if (!*zero && rs->given) {
		*from = rs->data;
	} else if (!*zero && r->image) {
		*from = r->image + off;
	} else if (!*zero) {
		*from = buf;
		return lm_source_read(r->src, off, buf, len);
	} else if (r->backing == LM_BACKING_HUGETLB) {
		/* hugetlbfs has no zero page. */
		if (rs->given)
			return 1;
		memset(buf, 0, len);
		*from = buf;
	}
	return 0;
}

static int install_claimed(struct lm_region *r, uint64_t first, uint64_t n,
			   void *buf, bool wake, const struct run_src *rs)
{
	struct lm_view *v = &r->view[0];
	uint64_t off = first << r->page_shift, len = n << r->page_shift;
	uint64_t done = 0;
	bool removed = false, zero;
	const void *from;
	int err = run_content(r, off, len, buf, rs, &from, &zero);

	events_rdlock(r);
	for (uint64_t i = first; i < first + n && !removed; i++)
		removed = lm_pagemap_removed(&r->map, i);
	if (removed || err) {
		/* A page removed meanwhile, or a read error to pin on its
		 * page: each page its own outcome. buf: one page at least. */
		err = one_by_one(r, first, first, n, buf, rs);
		goto out;
	}
	err = install(r, first, n, from, from == NULL, &done);
	if (done)
		installed(r, first, done, rs, 0, zero);
	if (!zero && !rs->given && done)
		lm__count(r, bytes_read, done << r->page_shift);
	if (err == -EAGAIN) {
		release(r, first + done, n - done);
		lm__count(r, faults_retried, 1);
	} else if (err) {
		/* EEXIST part-way, the mapped file shrank, or a real error:
		 * page by page (through source reads, which say why). */
		err = one_by_one(r, first, first + done, n - done, buf, rs);
	}
out:
	events_unlock(r);
	if (wake)
		lm_uffd_wake(v->uffd, v->addr + off, len);
	return err;
}

int lm__install_claimed(struct lm_region *r, uint64_t first, uint64_t n,
			void *buf, bool wake)
{
	const struct run_src rs = { .origin = LM_ORIGIN_BACKGROUND };

	return install_claimed(r, first, n, buf, wake, &rs);
}

int lm__install_claimed_given(struct lm_region *r, uint64_t first, uint64_t n,
			      const void *data, enum lm_fault_origin origin,
			      void *page, struct lm__run_outcome *out)
{
	const struct run_src rs = {
		.given = true, .data = data, .origin = origin, .out = out,
	};

	return install_claimed(r, first, n, page, true, &rs);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Claim the listed pages of range k that are missing and not removed. */
static size_t claim_listed(struct lm_foreign *f, unsigned k,
			   const uint64_t *offs, size_t n, uint64_t *idx)
{
	struct lm_region *r = f->region[k];
	uint64_t lo = f->src_off[k];
	size_t m = 0;

	for (size_t j = 0; j < n; j++) {
		uint64_t i;

		if (offs[j] < lo || offs[j] - lo >= r->size)
			continue;
		i = (offs[j] - lo) >> r->page_shift;
		if (!lm_pagemap_removed(&r->map, i) &&
		    lm_pagemap_claim(&r->map, i))
			idx[m++] = i;
	}
	qsort(idx, m, sizeof(*idx), cmp_u64);
	return m;
}

/* Install claimed, sorted pages idx[0..m) of range k in runs. */
static int install_listed(struct lm_region *r, const uint64_t *idx, size_t m,
			  uint8_t *buf, size_t buf_pages, int *installed)
{
	size_t j = 0;

	while (j < m) {
		size_t e = j + 1;
		int err;

		while (e < m && idx[e] == idx[e - 1] + 1 && e - j < buf_pages)
			e++;
		err = lm__install_claimed(r, idx[j], e - j, buf, false);
		if (err == -EAGAIN) {
			for (size_t q = e; q < m; q++)
				lm_pagemap_publish(&r->map, idx[q],
						   LM_PS_MISSING);
			return -EAGAIN;
		}
		*installed += (int)(e - j);
		j = e;
	}
	return 0;
}

int lm_foreign_prefetch(struct lm_foreign *f, const uint64_t *offs, size_t n)
{
	uint64_t *idx = malloc(n * sizeof(*idx) + 1);
	uint8_t *buf = NULL;
	int installed = 0, err = 0;

	if (!idx)
		return -ENOMEM;
	for (unsigned k = 0; k < f->nr && !err; k++) {
		struct lm_region *r = f->region[k];
		size_t buf_pages = LM_MAX(1, BATCH_BYTES >> r->page_shift);
		size_t m = claim_listed(f, k, offs, n, idx);
		struct lm_view *v = &r->view[0];

		if (!m)
			continue;
		free(buf);
		buf = malloc(buf_pages << r->page_shift);
		if (!buf) {
			for (size_t q = 0; q < m; q++)
				lm_pagemap_publish(&r->map, idx[q],
						   LM_PS_MISSING);
			err = -ENOMEM;
			break;
		}
		err = install_listed(r, idx, m, buf, buf_pages, &installed);
		/* One wake for the batch: any vCPU that faulted on one of
		 * these pages meanwhile sleeps in this span. */
		lm_uffd_wake(v->uffd, v->addr + (idx[0] << r->page_shift),
			     (idx[m - 1] - idx[0] + 1) << r->page_shift);
	}
	free(buf);
	free(idx);
	return err ? err : installed;
}
