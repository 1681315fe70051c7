/*
 * wp.c - write-protect tracking of a region: the instant (one sweep), the
 * write-protect fault (copy before write, or lift only), the snapshot
 * writer's saves, and the async mode's collection of written pages.
 *
 * The page-state word holds a write-protect state beside the fill state
 * (pagemap.h): PROTECTED -> SAVING -> SAVED. Exactly one thread wins
 * PROTECTED -> SAVING and copies the page; the others wait on the word as
 * they wait for a fetch. A SAVED page is never copied again; its next
 * write fault only lifts the protection. Faults on a page whose state says
 * there is nothing to save lift the protection too: a write-protect fault
 * must never be answered by returning into the same fault (a loop).
 *
 * Why the faulting thread resolves its own write-protect fault: on a plain
 * thread the SIGBUS self-resolve costs 4.9 us against 42 us for a handler
 * thread on another CPU (probes, /work/shared/DESIGN.md); the handler
 * delivery stays as the classic contender.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/region_internal.h"
#include "core/uffd.h"

#define SCAN_VEC 512	/* result ranges per PAGEMAP_SCAN call */

#if defined(__SANITIZE_THREAD__)
#define LM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LM_TSAN 1
#endif
#endif

#ifdef LM_TSAN
/*
 * Copying a protected page races with nothing: the protection holds every
 * writer off until it is lifted after the copy, an ordering the kernel
 * makes and ThreadSanitizer cannot see (it would report the application's
 * next write as a race with this read). Under TSan the copy is therefore
 * uninstrumented; volatile keeps it from becoming an intercepted memcpy.
 */
__attribute__((no_sanitize("thread")))
static void copy_page(void *dst, const void *src, uint64_t len)
{
	volatile uint64_t *d = dst;
	const volatile uint64_t *s = src;

	for (uint64_t i = 0; i < len / 8; i++)
		d[i] = s[i];
}
#else
static void copy_page(void *dst, const void *src, uint64_t len)
{
	memcpy(dst, src, len);
}
#endif

const char *lm_wp_mode_name(enum lm_wp_mode m)
{
	static const char *const n[] = { "none", "sync", "async" };

	return (unsigned)m < 3 ? n[m] : "?";
}

uint64_t lm__wp_features(const struct lm_region *r)
{
	uint64_t f;

	if (r->wp.mode == LM_WP_NONE)
		return 0;
	/* WP_UNPOPULATED: without it, a never-populated anonymous page
	 * is not protected by the sweep and its first write is lost. */
	f = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED;
	if (r->backing != LM_BACKING_ANON)
		f |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (r->wp.mode == LM_WP_ASYNC)
		f |= UFFD_FEATURE_WP_ASYNC;
	return f;
}

uint64_t lm__wp_register_mode(const struct lm_region *r)
{
	return r->wp.mode == LM_WP_NONE ? 0 : UFFDIO_REGISTER_MODE_WP;
}

int lm__wp_init(struct lm_region *r, enum lm_wp_mode mode)
{
	r->wp.mode = mode;
	r->wp.pagemap_fd = -1;
	if (mode == LM_WP_NONE)
		return 0;
	if (mode == LM_WP_ASYNC) {
		r->wp.pagemap_fd = open("/proc/self/pagemap",
					O_RDONLY | O_CLOEXEC);
		if (r->wp.pagemap_fd < 0)
			return lm_error(-errno, "region '%s': /proc/self/"
					"pagemap (for PAGEMAP_SCAN): %s",
					r->name, strerror(errno));
	}
	return 0;
}

void lm__wp_fini(struct lm_region *r)
{
	if (r->wp.pagemap_fd >= 0)
		close(r->wp.pagemap_fd);
	r->wp.pagemap_fd = -1;
}

/* Lift the protection of one page in view v; wake a blocking sleeper. */
static int lift(struct lm_region *r, struct lm_view *v, uint64_t off)
{
	return lm_uffd_writeprotect(v->uffd, v->addr + off, r->page_size,
				    false, !v->sigbus);
}

/* This thread owns page off (SAVING): copy it to a consumer slot, mark it
 * saved, lift the protection. Reads of a protected page do not fault. */
static int copy_out(struct lm_region *r, struct lm_view *v, uint64_t off)
{
	uint64_t idx = off >> r->page_shift;
	const struct lm_wp_consumer *c = &r->wp.consumer;
	void *slot = c->slot_get(c->arg, off);

	if (slot) {
		copy_page(slot, r->view[0].addr + off, r->page_size);
		c->slot_put(c->arg, off, slot);
		lm__count(r, wp_copied, 1);
	}
	/* Without a slot the snapshot is being abandoned: nothing to save,
	 * and the writer must run on. */
	lm_pagemap_wp_set(&r->map, idx, slot ? LM_PS_WP_SAVED
					     : LM_PS_WP_NONE);
	return lift(r, v, off);
}

int lm__wp_fault(struct lm_region *r, unsigned view, uint64_t off,
		 enum lm_fault_origin origin)
{
	struct lm_view *v = &r->view[view];
	uint64_t idx;

	(void)origin;
	if (r->wp.mode != LM_WP_SYNC || off >= r->size)
		return 1;
	off &= ~(r->page_size - 1);
	idx = off >> r->page_shift;
	/* A missing page is the fill path's: it installs the page protected,
	 * and the retried write comes back here. A present page goes back
	 * to missing only by an eviction (evict.c), which waits for no
	 * snapshot: none runs while it does. */
	if (lm_pagemap_state(&r->map, idx) != LM_PS_PRESENT)
		return 1;
	lm__count(r, wp_faults, 1);
	for (;;) {
		switch (lm_pagemap_wp(&r->map, idx)) {
		case LM_PS_WP_PROTECTED:
			if (lm_pagemap_wp_claim(&r->map, idx))
				return copy_out(r, v, off);
			continue;
		case LM_PS_WP_SAVING:
			lm__count(r, wp_waited, 1);
			lm_pagemap_wp_wait(&r->map, idx);
			continue;
		default:
			/* Saved already (by the writer), or no snapshot: a
			 * stale protection. Lift it, copy nothing. */
			lm__count(r, wp_lifted, 1);
			return lift(r, v, off);
		}
	}
}

int lm_wp_fault(struct lm_region *r, uint64_t off, enum lm_fault_origin origin)
{
	return lm__wp_fault(r, 0, off, origin);
}

/* Pages that were being filled when the flag went up may be installed
 * without MODE_WP after the sweep: wait for each and protect it again. */
static int reprotect_fetching(struct lm_region *r, const uint8_t *fetching)
{
	struct lm_view *v = &r->view[0];

	for (uint64_t i = 0; i < r->nr_pages; i++) {
		int err;

		if (!fetching[i >> 3] || !(fetching[i >> 3] & (1u << (i & 7))))
			continue;
		if (lm_pagemap_wait(&r->map, i) != LM_PS_PRESENT)
			continue;
		err = lm_uffd_writeprotect(v->uffd, v->addr +
					   (i << r->page_shift),
					   r->page_size, true, false);
		if (err)
			return err;
	}
	return 0;
}

/* Sync mode: every page PROTECTED. Both modes: the pages being filled
 * noted in *fetching (NULL: none), since the flag may have come too late
 * for their install. */
static int mark_protected(struct lm_region *r, uint8_t **fetching)
{
	uint32_t bit = r->wp.mode == LM_WP_SYNC ? LM_PS_WP_PROTECTED : 0;

	*fetching = NULL;
	for (uint64_t i = 0; i < r->nr_pages; i++) {
		uint32_t old = bit ? atomic_fetch_or(&r->map.w[i], bit)
				   : atomic_load(&r->map.w[i]);

		if ((old & LM_PS_STATE) != LM_PS_FETCHING)
			continue;
		if (!*fetching) {
			*fetching = mmap(NULL, r->nr_pages / 8 + 1,
					 PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (*fetching == MAP_FAILED) {
				*fetching = NULL;
				return -ENOMEM;
			}
		}
		(*fetching)[i >> 3] |= (uint8_t)(1u << (i & 7));
	}
	return 0;
}

static void clear_protected(struct lm_region *r)
{
	for (uint64_t i = 0; i < r->nr_pages; i++) {
		uint32_t v = atomic_load(&r->map.w[i]);

		for (;;) {
			if ((v & LM_PS_WP) == LM_PS_WP_SAVING) {
				lm_pagemap_wp_wait(&r->map, i);
				v = atomic_load(&r->map.w[i]);
				continue;
			}
			if (!(v & LM_PS_WP) ||
			    atomic_compare_exchange_weak(&r->map.w[i], &v,
							 v & ~(uint32_t)LM_PS_WP))
				break;
		}
	}
}

int lm_wp_protect(struct lm_region *r, const struct lm_wp_consumer *c)
{
	struct lm_view *v = &r->view[0];
	uint8_t *fetching = NULL;
	bool no = false;
	int err;

	if (r->wp.mode == LM_WP_NONE)
		return lm_error(-EINVAL, "region '%s': not created with "
				"write_protect", r->name);
	if (r->wp.mode == LM_WP_SYNC && (!c || !c->slot_get || !c->slot_put))
		return lm_error(-EINVAL, "region '%s': sync write-protect "
				"needs a consumer for the copied pages",
				r->name);
	if (atomic_load(&r->first_err))
		return lm_error(-EIO, "region '%s': a page has failed; its "
				"content cannot be saved", r->name);
	if (!atomic_compare_exchange_strong(&r->wp.busy, &no, true))
		return lm_error(-EBUSY, "region '%s': a write-protect "
				"snapshot is already running", r->name);
	/* No page is evicted while a copy-before-write snapshot runs:
	 * evictions check busy after announcing themselves (evict.c). */
	if (r->wp.mode == LM_WP_SYNC)
		lm__reclaim_quiesce(r);
	/* Nor collapsed into a huge page: collapses check busy after
	 * announcing themselves (collapse.c). */
	lm__thp_quiesce(r);
	if (c)
		r->wp.consumer = *c;
	atomic_store(&r->wp.active, true);
	err = mark_protected(r, &fetching);
	if (!err)
		err = lm_uffd_writeprotect(v->uffd, v->addr, r->size, true,
					   false);
	if (!err && fetching)
		err = reprotect_fetching(r, fetching);
	if (fetching)
		munmap(fetching, r->nr_pages / 8 + 1);
	if (err) {
		lm_error(err, "region '%s': write-protecting %llu bytes: %s",
			 r->name, (unsigned long long)r->size, strerror(-err));
		lm_wp_release(r);
		return err;
	}
	return 0;
}

/* Lift the protection of pages [first, first + n) of a saved run. */
static int lift_run(struct lm_region *r, uint64_t first, uint64_t n)
{
	struct lm_view *v = &r->view[0];

	return lm_uffd_writeprotect(v->uffd, v->addr + (first << r->page_shift),
				    n << r->page_shift, false, !v->sigbus);
}

int lm_wp_save_run(struct lm_region *r, uint64_t off, unsigned n, void *buf,
		   uint64_t *saved)
{
	uint64_t first = off >> r->page_shift, run = 0;
	unsigned run_len = 0;
	int err = 0;

	*saved = 0;
	if (r->wp.mode != LM_WP_SYNC || !atomic_load(&r->wp.busy))
		return lm_error(-EINVAL, "region '%s': no sync write-protect "
				"snapshot runs", r->name);
	if (n > 64 || off % r->page_size || first + n > r->nr_pages)
		return lm_error(-EINVAL, "region '%s': run of %u pages at "
				"offset %llu", r->name, n,
				(unsigned long long)off);
	/* Claim, copy and publish page by page; lift in runs of pages
	 * claimed here only: a page another thread is saving must stay
	 * protected until its own copy is done. */
	for (unsigned i = 0; i <= n; i++) {
		uint64_t idx = first + i;
		bool mine;

		/* A page still missing holds its source's content: fill it
		 * (protected, since the snapshot runs), then save it. */
		if (i < n && lm_pagemap_state(&r->map, idx) != LM_PS_PRESENT) {
			int ferr = lm__fault(r, 0, idx << r->page_shift,
					     LM_ORIGIN_BACKGROUND);

			if (ferr < 0) {
				err = err ? err : ferr;
				break;
			}
		}
		mine = i < n && lm_pagemap_wp_claim(&r->map, idx);

		if (mine) {
			copy_page((uint8_t *)buf + ((uint64_t)i << r->page_shift),
			       r->view[0].addr + (idx << r->page_shift),
			       r->page_size);
			lm_pagemap_wp_set(&r->map, idx, LM_PS_WP_SAVED);
			*saved |= 1ull << i;
			if (!run_len)
				run = idx;
			run_len++;
			continue;
		}
		if (run_len && !err)
			err = lift_run(r, run, run_len);
		run_len = 0;
	}
	if (run_len) {
		int lerr = lift_run(r, run, run_len);

		err = err ? err : lerr;
	}
	return err ? lm_error(err, "region '%s': lifting write-protection "
			      "at offset %llu: %s", r->name,
			      (unsigned long long)off, strerror(-err))
		   : 0;
}

int lm_wp_collect(struct lm_region *r, uint64_t *bitmap, uint64_t *count)
{
	return lm_wp_collect_range(r, 0, r->size, bitmap, count);
}

int lm_wp_collect_range(struct lm_region *r, uint64_t off, uint64_t len,
			uint64_t *bitmap, uint64_t *count)
{
	struct page_region vec[SCAN_VEC];
	uint64_t base = (uintptr_t)r->view[0].addr;
	uint64_t start = base + off, end = start + len;

	*count = 0;
	if (r->wp.mode != LM_WP_ASYNC || !atomic_load(&r->wp.busy))
		return lm_error(-EINVAL, "region '%s': no async write-protect "
				"tracking runs", r->name);
	if (off % r->page_size || len % r->page_size || off > r->size ||
	    len > r->size - off)
		return lm_error(-EINVAL, "region '%s': collect %llu bytes at "
				"%llu: not page-aligned or past the end",
				r->name, (unsigned long long)len,
				(unsigned long long)off);
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = start, .end = end,
			.vec = (uintptr_t)vec, .vec_len = SCAN_VEC,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		int n = ioctl(r->wp.pagemap_fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return lm_error(-errno, "region '%s': PAGEMAP_SCAN "
					"from offset %llu: %s", r->name,
					(unsigned long long)(start - base),
					strerror(errno));
		for (int k = 0; k < n; k++)
			for (uint64_t p = vec[k].start; p < vec[k].end;
			     p += r->page_size) {
				uint64_t i = (p - base) >> r->page_shift;

				bitmap[i >> 6] |= 1ull << (i & 63);
				(*count)++;
			}
		if (n < SCAN_VEC)
			break;
		/* A full vector: resume after the last range reported.
		 * walk_end was seen stale past 512 ranges (DESIGN.md). */
		start = vec[SCAN_VEC - 1].end;
	}
	return 0;
}

int lm_wp_release(struct lm_region *r)
{
	struct lm_view *v = &r->view[0];
	int err;

	if (!atomic_load(&r->wp.busy))
		return 0;
	atomic_store(&r->wp.active, false);
	err = lm_uffd_writeprotect(v->uffd, v->addr, r->size, false,
				   !v->sigbus);
	if (err)
		return lm_error(err, "region '%s': lifting write-protection "
				"of %llu bytes: %s", r->name,
				(unsigned long long)r->size, strerror(-err));
	if (r->wp.mode == LM_WP_SYNC)
		clear_protected(r);
	atomic_store(&r->wp.busy, false);
	return 0;
}

bool lm_wp_busy(const struct lm_region *r)
{
	return atomic_load(&r->wp.busy);
}

enum lm_wp_mode lm_wp_mode(const struct lm_region *r)
{
	return r->wp.mode;
}
