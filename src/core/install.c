/*
 * install.c - lm_region_install_run: a run of pages whose content the
 * caller already holds (a migration destination's pushed pages), installed
 * with one ioctl per run of missing pages.
 *
 * The page-state map decides, exactly as for the background fill: a page
 * present, failed or being fetched by another thread is skipped (never
 * waited for, never installed twice), the missing ones are claimed in
 * maximal contiguous runs. Going through lm_region_fault page by page
 * costs a claim, a source read and an ioctl per page: 1.2-1.7 GB/s against
 * 2.1-3.2 GB/s for runs of 64 (anon, UFFDIO_COPY; memfd with
 * UFFDIO_CONTINUE 0.4-0.8 against 0.75-0.9), measured by `lazymem bench
 * postcopy`'s install A/B (docs/migration.md).
 *
 * Not on the signal path: called by ordinary threads only.
 */
#include <errno.h>
#include <string.h>

#include "core/region_internal.h"

static const char *why(int err)
{
	return strerror(-err);
}

static int check_args(struct lm_region *r, uint64_t off, unsigned npages,
		      enum lm_fault_origin origin,
		      const struct lm_install_run *run)
{
	if (!run)
		return lm_error(-EINVAL, "region '%s': install run: no "
				"struct lm_install_run given", r->name);
	if ((unsigned)origin >= LM_ORIGIN_COUNT)
		return lm_error(-EINVAL, "region '%s': install run: origin "
				"%u is not one of lm_fault_origin", r->name,
				(unsigned)origin);
	if (npages == 0 || npages > LM_INSTALL_RUN_MAX)
		return lm_error(-EINVAL, "region '%s': install run of %u "
				"pages: 1 to %u at a time", r->name, npages,
				LM_INSTALL_RUN_MAX);
	if (off & (r->page_size - 1))
		return lm_error(-EINVAL, "region '%s': install run at %#llx: "
				"not aligned to the page size %llu", r->name,
				(unsigned long long)off,
				(unsigned long long)r->page_size);
	if (off >= r->size ||
	    (uint64_t)npages > (r->size - off) >> r->page_shift)
		return lm_error(-EFAULT, "region '%s': install run of %u "
				"pages at %#llx: past the region's end %#llx",
				r->name, npages, (unsigned long long)off,
				(unsigned long long)r->size);
	return 0;
}

/* Claim the missing pages from idx on, at most max: how many. */
static unsigned claim_run(struct lm_region *r, uint64_t idx, unsigned max)
{
	unsigned n = 0;

	while (n < max && !lm__page_removed(r, idx + n) &&
	       lm_pagemap_claim(&r->map, idx + n))
		n++;
	return n;
}

static void fail_page(struct lm_region *r, uint64_t idx, int err)
{
	struct lm_fault f = {
		.off = idx << r->page_shift,
		.origin = LM_ORIGIN_BACKGROUND,	/* no demand count to end */
		.slot = -1,
		.npages = 1,
	};

	lm_fault_fail(r, &f, err);
}

/* The run [idx, idx+n) went in whole: publish, count, note from bit j. */
static void run_done(struct lm_region *r, uint64_t idx, unsigned n,
		     enum lm_fault_origin origin, bool zero,
		     struct lm__run_outcome *out, unsigned j)
{
	lm__pages_done(r, idx, n, LM_PS_PRESENT, origin, zero);
	out->installed |= (n == 64 ? ~0ull : (1ull << n) - 1) << j;
}

/*
 * The run's one ioctl failed (EEXIST part-way, an error on one page), or
 * it is a hugetlb zero run, which has no UFFDIO_ZEROPAGE: page by page, so
 * each page gets its own outcome. For CONTINUE the alias holds the pages.
 */
static int one_by_one(struct lm_region *r, uint64_t idx, unsigned n,
		      const uint8_t *data, enum lm_fault_origin origin,
		      struct lm__run_outcome *out, unsigned j)
{
	bool copy = r->install == LM_INSTALL_COPY;
	bool need_zero = copy && !data && r->backing == LM_BACKING_HUGETLB;
	void *zero = NULL;
	int slot = -1, first_err = 0;

	if (need_zero) {
		slot = lm_staging_get(&r->staging, &zero);
		if (slot >= 0)
			memset(zero, 0, r->page_size);
	}
	for (unsigned k = 0; k < n; k++) {
		uint64_t off = (idx + k) << r->page_shift;
		const uint8_t *from = !copy ? NULL
				      : data ? data + ((uint64_t)k << r->page_shift)
					     : zero;
		int err = need_zero && slot < 0
				  ? slot
				  : lm__install_range(r, 0, true, off, from,
						      r->page_size);

		if (!err) {
			run_done(r, idx + k, 1, origin, !data, out, j + k);
			continue;
		}
		fail_page(r, idx + k, err);
		out->failed |= 1ull << (j + k);
		if (!first_err)
			first_err = lm_error(err, "region '%s': installing the "
					     "page at %#llx: %s", r->name,
					     (unsigned long long)off, why(err));
	}
	if (slot >= 0)
		lm_staging_put(&r->staging, slot);
	return first_err;
}

/* Claimed pages [idx, idx+n) of a region lazymem maps itself: one ioctl
 * (CONTINUE: after writing them into the alias, which we may, owning them). */
static int install_local(struct lm_region *r, uint64_t idx, unsigned n,
			 const uint8_t *data, enum lm_fault_origin origin,
			 struct lm__run_outcome *out, unsigned j)
{
	uint64_t off = idx << r->page_shift, len = (uint64_t)n << r->page_shift;
	bool copy = r->install == LM_INSTALL_COPY;

	/* data may be the alias itself (a pre-copy store in the page
	 * cache): the pages are where they go already */
	if (!copy && !data)
		memset(r->alias + off, 0, len);
	else if (!copy && data != r->alias + off)
		memcpy(r->alias + off, data, len);
	if ((copy && !data && r->backing == LM_BACKING_HUGETLB) ||
	    lm__install_range(r, 0, true, off, copy ? data : NULL, len))
		return one_by_one(r, idx, n, data, origin, out, j);
	run_done(r, idx, n, origin, !data, out, j);
	return 0;
}

/* Claimed pages [idx, idx+n) of an adopted region: prefetch.c's batched
 * install, which holds off the owner's events while it copies. */
static int install_foreign(struct lm_region *r, uint64_t idx, unsigned n,
			   const uint8_t *data, enum lm_fault_origin origin,
			   struct lm__run_outcome *out, unsigned j)
{
	struct lm__run_outcome o = { 0, 0 };
	void *page;
	int slot = lm_staging_get(&r->staging, &page), err;

	if (slot < 0) {
		for (unsigned k = 0; k < n; k++)
			lm_pagemap_publish(&r->map, idx + k, LM_PS_MISSING);
		return lm_error(slot, "region '%s': install run: no staging "
				"page", r->name);
	}
	err = lm__install_claimed_given(r, idx, n, data, origin, page, &o);
	lm_staging_put(&r->staging, slot);
	out->installed |= o.installed << j;
	out->failed |= o.failed << j;
	if (err == -EAGAIN)
		return lm_error(err, "region '%s': install run at %#llx: an "
				"event of the memory's owner is pending; read "
				"it, then retry", r->name,
				(unsigned long long)(idx << r->page_shift));
	if (err)
		return lm_error(err, "region '%s': install run at %#llx: %s",
				r->name,
				(unsigned long long)(idx << r->page_shift),
				why(err));
	return 0;
}

/* Page i can't be claimed. 1: it went back to MISSING meanwhile (a fault
 * gave back its fault-around pages): try again; 0: skipped; -EIO: failed. */
static int unclaimed(struct lm_region *r, uint64_t idx)
{
	uint32_t st = lm_pagemap_state(&r->map, idx);

	if (lm__page_removed(r, idx))
		return 0;
	if (st == LM_PS_MISSING)
		return 1;
	return st == LM_PS_FAILED ? -EIO : 0;
}

static int install_runs(struct lm_region *r, uint64_t first, unsigned npages,
			const uint8_t *buf, enum lm_fault_origin origin,
			const struct lm_install_run *run,
			struct lm__run_outcome *out)
{
	int first_err = 0;

	for (unsigned i = 0; i < npages;) {
		const uint8_t *data = buf ? buf + ((uint64_t)i << r->page_shift)
					  : NULL;
		unsigned n = claim_run(r, first + i, npages - i);
		int err;

		if (n == 0) {
			err = unclaimed(r, first + i);
			if (err == 1)
				continue;
			if (err)
				out->failed |= 1ull << i;
			if (err && !first_err)
				first_err = lm_error(err, "region '%s': the "
						     "page at %#llx failed "
						     "earlier", r->name,
						     (unsigned long long)
						     ((first + i) << r->page_shift));
			i++;
			continue;
		}
		lm__count(r, faults[origin], n);
		if (run->on_claimed)
			run->on_claimed(run->arg,
					(first + i) << r->page_shift, n);
		err = r->foreign
			? install_foreign(r, first + i, n, data, origin, out, i)
			: install_local(r, first + i, n, data, origin, out, i);
		if (err == -EAGAIN)
			return err;	/* the rest was given back unclaimed */
		if (err && !first_err)
			first_err = err;
		i += n;
	}
	return first_err;
}

int lm_region_install_run(struct lm_region *r, uint64_t off, unsigned npages,
			  const void *buf, enum lm_fault_origin origin,
			  struct lm_install_run *run)
{
	struct lm__run_outcome out = { 0, 0 };
	int err = check_args(r, off, npages, origin, run);

	if (err)
		return err;
	/* Faulting threads' own pages go first: the filler backs off. */
	if (origin != LM_ORIGIN_BACKGROUND)
		atomic_fetch_add_explicit(&lm__shard(r)->demand_active, 1,
					  memory_order_relaxed);
	err = install_runs(r, off >> r->page_shift, npages, buf, origin, run,
			   &out);
	if (origin != LM_ORIGIN_BACKGROUND)
		atomic_fetch_sub_explicit(&lm__shard(r)->demand_active, 1,
					  memory_order_relaxed);
	run->installed = out.installed;
	run->failed = out.failed;
	run->nr_installed = (unsigned)__builtin_popcountll(out.installed);
	return err;
}
