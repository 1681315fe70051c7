/*
 * background.c - streams every page nobody asked for yet, so a region
 * becomes complete without being touched.
 *
 * Demand faults always go first, by three means: the filler runs under
 * SCHED_IDLE, so any faulting thread wants the CPU more; it yields while any
 * demand fault is being resolved; and it claims pages in short runs
 * (BATCH_BYTES), so a thread whose page the filler holds waits for one short
 * read at most, never for a long stream. The huge-page collapser waits for
 * the fill to end (bg.filling; collapse.c says why).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/region_internal.h"
#include "core/uffd.h"

#define BATCH_BYTES (256u << 10)

static bool run_is_zero(struct lm_region *r, uint64_t off, uint64_t len)
{
	return r->src->ops->is_zero && r->src->ops->is_zero(r->src, off, len) == 1;
}

/* One page at a time through the ordinary path, to pin an error on the
 * page that has it. The pages are already claimed by us. */
static void fill_pages_one_by_one(struct lm_region *r, uint64_t first,
				  uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		struct lm_fault f = {
			.off = i << r->page_shift,
			.origin = LM_ORIGIN_BACKGROUND,
			.slot = -1,
			.npages = 1,
			.t0_ns = lm_now_ns(),
		};
		int err = 0;

		if (r->install == LM_INSTALL_CONTINUE) {
			f.page = r->alias + f.off;
		} else {
			f.slot = lm_staging_get(&r->staging, &f.page);
			err = f.slot < 0 ? f.slot : 0;
		}
		if (!err)
			err = lm_source_read(r->src, f.off, f.page,
					     r->page_size);
		if (err)
			lm_fault_fail(r, &f, err);
		else
			lm_fault_commit(r, &f);
	}
}

/* Read and install a claimed run of pages with one read and one ioctl. */
static void fill_run(struct lm_region *r, uint64_t first, uint64_t n)
{
	struct lm_view *v = &r->view[0];
	uint64_t off = first << r->page_shift, len = n << r->page_shift;
	bool zero = run_is_zero(r, off, len);
	uint8_t *buf = r->install == LM_INSTALL_CONTINUE ? r->alias + off
							 : r->bg.batch;
	int err = 0;

	/* hugetlbfs has no UFFDIO_ZEROPAGE, and a zero page keeps a range
	 * from collapsing into a huge page: both get copied zeroes. */
	if (zero && r->install == LM_INSTALL_COPY &&
	    r->backing != LM_BACKING_HUGETLB && r->thp.mode == LM_THP_OFF) {
		err = lm_uffd_zeropage(v->uffd, v->addr + off, len, !v->sigbus);
	} else {
		if (zero)
			memset(buf, 0, len);
		else
			err = lm_source_read(r->src, off, buf, len);
		if (!err && r->install == LM_INSTALL_CONTINUE)
			err = lm__continue_all(r, off, len);
		else if (!err)
			err = lm_uffd_copy(v->uffd, v->addr + off, buf, len,
					   !v->sigbus);
	}
	if (err) {
		fill_pages_one_by_one(r, first, n);
		return;
	}
	if (!zero)
		lm__count(r, bytes_read, len);
	lm__pages_done(r, first, n, LM_PS_PRESENT, LM_ORIGIN_BACKGROUND, zero);
}

static void *background_main(void *arg)
{
	struct lm_region *r = arg;
	struct lm_background *bg = &r->bg;
	struct sched_param sp = { .sched_priority = 0 };
	uint64_t per_batch = LM_MAX(1, BATCH_BYTES >> r->page_shift);
	uint64_t i = 0;

	sched_setscheduler(0, SCHED_IDLE, &sp);
	while (i < r->nr_pages && !atomic_load(&r->bg.stop)) {
		uint64_t n = 0;

		if (lm__demand_active(r) > 0) {
			sched_yield();
			continue;
		}
		/* A foreign region's removed pages stay unbacked: the
		 * balloon gave them back to the host. */
		while (n < per_batch && i + n < r->nr_pages &&
		       !lm__page_removed(r, i + n) &&
		       lm_pagemap_claim(&r->map, i + n))
			n++;
		if (n == 0) {
			i++;	/* present, failed or being fetched */
			continue;
		}
		if (r->foreign &&
		    lm__install_claimed(r, i, n, bg->batch, true) == -EAGAIN) {
			/* An event is pending in the other process; its
			 * handler thread reads it. Pages were given back. */
			usleep(100);
			continue;
		}
		lm__count(r, faults[LM_ORIGIN_BACKGROUND], n);
		if (!r->foreign)
			fill_run(r, i, n);
		i += n;
	}
	atomic_store(&r->bg.filling, false);
	lm__thp_wake(r);
	return NULL;
}

int lm__background_start(struct lm_region *r)
{
	struct lm_background *bg = &r->bg;
	int err;

	bg->batch_size = LM_MAX(BATCH_BYTES, r->page_size);
	if (r->install == LM_INSTALL_COPY) {
		bg->batch = mmap(NULL, bg->batch_size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (bg->batch == MAP_FAILED) {
			bg->batch = NULL;
			return lm_error(-ENOMEM, "region '%s': background "
					"buffer", r->name);
		}
	}
	atomic_store(&bg->stop, false);
	atomic_store(&bg->filling, true);
	err = pthread_create(&bg->thread, NULL, background_main, r);
	if (err) {
		atomic_store(&bg->filling, false);
		return lm_error(-err, "region '%s': starting background fill: "
				"%s", r->name, strerror(err));
	}
	bg->running = true;
	return 0;
}

int lm_region_background_start(struct lm_region *r)
{
	if (!r->bg.configured)
		return lm_error(-EINVAL, "region '%s': background start: the "
				"region was created without background fill",
				r->name);
	return r->bg.running ? 0 : lm__background_start(r);
}

void lm__background_stop(struct lm_region *r)
{
	struct lm_background *bg = &r->bg;

	if (bg->running) {
		atomic_store(&bg->stop, true);
		pthread_join(bg->thread, NULL);
		bg->running = false;
	}
	if (bg->batch)
		munmap(bg->batch, bg->batch_size);
	bg->batch = NULL;
}
