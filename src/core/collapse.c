/*
 * collapse.c - huge pages after the fill: a 2 MiB range of a region whose
 * every page is present becomes one transparent huge page (MADV_COLLAPSE).
 *
 * Faults stay per 4 KiB page (userfaultfd takes a missing page before the
 * kernel could allocate a huge one, even under MADV_HUGEPAGE), so a lazily
 * filled region ends up mapped by 4 KiB pages: a TLB entry per page for a
 * guest or any random reader. Collapsing a full range gives it one entry
 * per 2 MiB. docs/thp.md has the probe and the figures.
 *
 * Never on a faulting thread, for two measured reasons: a collapse costs
 * about 0.8-5 ms per range here (a huge page is allocated and 512 pages
 * are copied into it), and the kernel holds the region's mapping locked
 * for writing while it copies, so an install into the same region waits
 * for it (UFFDIO_COPY calls slower than 1 ms went from 3-13 to 22 per
 * 32768 while a collapse loop ran). So either the caller asks, where no
 * one faults (lm_region_collapse, e.g. once a restore is complete), or the
 * collapser thread does it (LM_THP_AUTO): under SCHED_IDLE, woken when the
 * completing install of a 4 MiB chunk bumps a futex word, and collapsing
 * only while no demand fault is in progress, so a fault waits for one
 * collapse at most, and only one that began before it. Nor while the
 * region's background fill runs: the fill is idle-priority work too, and
 * its every install waited for the collapse in progress (`bench thp`, 1
 * GiB: a restore with auto took 2.88 s against 0.57 s without thp), so
 * the collapser starts once the fill has ended (docs/thp.md has the
 * figures before and after).
 *
 * What the kernel refuses (measured on 6.18): a range with any page not
 * mapped (EBUSY; a userfaultfd-registered range is never filled with
 * zeroes by the collapse), a UFFDIO_ZEROPAGE page in it (EBUSY: so
 * regions with thp install zero pages as copied zeroes), a page with a
 * write-protect bit (EINVAL), a MADV_NOHUGEPAGE mapping (EINVAL). Memfd
 * (shmem) collapses too, even with shmem_enabled=never. After a collapse,
 * UFFDIO_MOVE or MADV_DONTNEED of one 4 KiB page works (the kernel splits
 * the huge page), and so does UFFDIO_WRITEPROTECT of one page; but the
 * split maps the zero-filled pages to the zero page (unshare_zero_pages).
 *
 * Live snapshots and eviction: a collapse announces itself (collapsing),
 * then looks for a running write-protection or eviction and backs off if
 * it sees one; lm_wp_protect sets busy, then waits for collapses to end.
 * One of the two sees the other, so no range is collapsed while a
 * snapshot protects it. An eviction that starts during a collapse is
 * serialized by the kernel (it splits the huge page); its page's range
 * loses its huge bit (lm__thp_page_gone) and is collapsed again once full.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat/linux_compat.h"
#include "core/region_internal.h"

#define RANGE (1ull << LM_THP_SHIFT)
#define BITS 64

const char *lm_thp_name(enum lm_thp t)
{
	static const char *const n[] = { "off", "collapse", "auto" };

	return (unsigned)t <= LM_THP_AUTO ? n[t] : "?";
}

static bool range_huge(const struct lm_region *r, uint64_t i)
{
	return atomic_load(&r->thp.huge[i / BITS]) & (1ull << (i % BITS));
}

static void range_set_huge(struct lm_region *r, uint64_t i, bool huge)
{
	uint64_t bit = 1ull << (i % BITS);

	if (huge)
		atomic_fetch_or(&r->thp.huge[i / BITS], bit);
	else
		atomic_fetch_and(&r->thp.huge[i / BITS], ~bit);
}

/* Every page of range i present (not missing, in flight or failed)? The
 * chunk's completion count rules most ranges out with one load. */
static bool range_full(const struct lm_region *r, uint64_t i)
{
	uint64_t per = RANGE >> r->page_shift;
	uint64_t first = i * per;

	if (atomic_load_explicit(&r->done[first >> LM_DONE_CHUNK_SHIFT].n,
				 memory_order_relaxed) < per)
		return false;
	for (uint64_t p = first; p < first + per; p++)
		if (lm_pagemap_state(&r->map, p) != LM_PS_PRESENT)
			return false;
	return true;
}

static void count_failure(struct lm_region *r, int err)
{
	switch (err) {
	case EBUSY:
		lm__count(r, thp_failed_busy, 1);
		break;
	case EAGAIN:
		lm__count(r, thp_failed_again, 1);
		break;
	case ENOMEM:
		lm__count(r, thp_failed_nomem, 1);
		break;
	default:
		lm__count(r, thp_failed_other, 1);
	}
}

/*
 * When the kernel splits a huge page (an eviction's UFFDIO_MOVE does), it
 * maps the zero-filled pages of it to the shared zero page (6.12 and
 * later; measured on 6.18), and a userfaultfd-registered range holding
 * the zero page cannot collapse again (EBUSY). MADV_POPULATE_WRITE gives
 * each such page a page of its own (a write fault, no byte changed, no
 * race with a writer), and leaves writable pages alone. Anon only: shmem
 * keeps its pages. (An atomic add of 0 does not do: clang turns it into a
 * plain load, which faults nothing.)
 */
static bool unshare_zero_pages(struct lm_region *r, uint64_t i)
{
	return r->backing == LM_BACKING_ANON &&
	       madvise(r->view[0].addr + i * RANGE, RANGE,
		       MADV_POPULATE_WRITE) == 0;
}

static int madvise_collapse(struct lm_region *r, uint64_t i)
{
	uint64_t t0 = lm_now_ns();
	int err = madvise(r->view[0].addr + i * RANGE, RANGE, MADV_COLLAPSE)
			  ? errno : 0;

	lm__count(r, thp_collapse_ns, lm_now_ns() - t0);
	return err;
}

/* Collapse range i. 1 collapsed, 0 refused (counted), -EBUSY skipped: a
 * write-protection or an eviction runs. */
static int collapse_range(struct lm_region *r, uint64_t i)
{
	int err;

	/* Announce, then look: lm_wp_protect sets busy, then waits for
	 * collapsing to drain (seq_cst, so one of the two sees the other). */
	atomic_fetch_add(&r->thp.collapsing, 1);
	if (atomic_load(&r->wp.busy) || atomic_load(&r->reclaim.evicting)) {
		atomic_fetch_sub(&r->thp.collapsing, 1);
		return -EBUSY;
	}
	err = madvise_collapse(r, i);
	/* EBUSY with every page present: a zero page (see above). */
	if (err == EBUSY && range_full(r, i) && unshare_zero_pages(r, i))
		err = madvise_collapse(r, i);
	atomic_fetch_sub(&r->thp.collapsing, 1);
	if (err) {
		count_failure(r, err);
		return 0;
	}
	/* Set, then look again: a page evicted meanwhile clears the bit
	 * after its state changed, so a stale bit cannot survive both. */
	range_set_huge(r, i, true);
	if (!range_full(r, i))
		range_set_huge(r, i, false);
	lm__count(r, thp_collapsed, 1);
	return 1;
}

/* How a pass ended, for the collapser thread's next wait. */
enum pass_end {
	PASS_DONE,		/* every full range is huge */
	PASS_REFUSED,		/* the kernel refused some (retry later) */
	PASS_DEMAND,		/* gave up: a demand fault runs */
	PASS_FILL,		/* gave up: the background fill runs */
	PASS_BLOCKED,		/* gave up: a snapshot or an eviction runs */
};

/*
 * One pass over the ranges not huge yet. quiet: give up as soon as a
 * demand fault or the background fill runs (the collapser thread; it
 * comes back). Returns the ranges collapsed; *end says how the pass ended.
 */
static uint64_t collapse_pass(struct lm_region *r, bool quiet,
			      enum pass_end *end)
{
	uint64_t n = 0;

	*end = PASS_DONE;
	pthread_mutex_lock(&r->thp.pass);
	for (uint64_t i = 0; i < r->thp.nr_ranges; i++) {
		int got;

		if (atomic_load(&r->thp.stop))
			break;
		if (range_huge(r, i) || !range_full(r, i))
			continue;
		if (quiet && atomic_load(&r->bg.filling)) {
			*end = PASS_FILL;
			break;
		}
		if (quiet && lm__demand_active(r) > 0) {
			*end = PASS_DEMAND;
			break;
		}
		got = collapse_range(r, i);
		if (got == -EBUSY) {
			lm__count(r, thp_skipped, 1);
			*end = PASS_BLOCKED;
			break;
		}
		if (got == 0)
			*end = PASS_REFUSED;
		n += (uint64_t)got;
	}
	pthread_mutex_unlock(&r->thp.pass);
	return n;
}

int lm_region_collapse(struct lm_region *r, uint64_t *collapsed)
{
	enum pass_end end;
	uint64_t n;

	if (!r)
		return lm_error(-EINVAL, "lm_region_collapse: no region");
	if (r->thp.mode == LM_THP_OFF)
		return lm_error(-EINVAL, "region '%s': created with thp off; "
				"collapsing needs thp collapse or auto",
				r->name);
	n = collapse_pass(r, false, &end);
	if (collapsed)
		*collapsed = n;
	return 0;
}

/* Sleep until a chunk completes after `seen` (or stop), or ms pass (-1:
 * no timeout). */
static void collapser_wait(struct lm_region *r, uint32_t seen, long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (ms % 1000) * 1000000 };

	/* Announce, then look: lm__thp_wake bumps chunks, then looks
	 * at sleeping; one of the two sees the other, so no wake is lost. */
	atomic_store(&r->thp.sleeping, 1);
	if (atomic_load(&r->thp.chunks) == seen && !atomic_load(&r->thp.stop))
		lm_futex_wait(&r->thp.chunks, seen, ms < 0 ? NULL : &ts);
	atomic_store(&r->thp.sleeping, 0);
}

static void *collapser_main(void *arg)
{
	struct lm_region *r = arg;
	struct sched_param sp = { .sched_priority = 0 };

	long backoff = 1000;

	sched_setscheduler(0, SCHED_IDLE, &sp);
	while (!atomic_load(&r->thp.stop)) {
		uint32_t seen = atomic_load(&r->thp.chunks);
		enum pass_end end;

		collapse_pass(r, true, &end);
		/* Demand faults run: look again in a millisecond. A snapshot
		 * or an eviction: in 10. The kernel refused a range (no huge
		 * page free, EAGAIN): retry it after 1 s, doubling to 64 s,
		 * so a range that cannot collapse costs no steady work.
		 * Done, or the fill runs: sleep until another chunk completes
		 * or the fill ends (both wake us). */
		if (end != PASS_REFUSED)
			backoff = 1000;
		collapser_wait(r, seen, end == PASS_DEMAND ? 1
				      : end == PASS_BLOCKED ? 10
				      : end == PASS_REFUSED ? backoff : -1);
		if (end == PASS_REFUSED && backoff < 64000)
			backoff *= 2;
	}
	return NULL;
}

void lm__thp_wake(struct lm_region *r)
{
	if (r->thp.mode != LM_THP_AUTO)
		return;
	atomic_fetch_add(&r->thp.chunks, 1);
	if (atomic_load(&r->thp.sleeping))
		lm_futex_wake_all(&r->thp.chunks);
}

/*
 * The atomic AND stays: 64 ranges share a word of the huge bitmap, and the
 * collapser sets other ranges' bits in it (atomic OR) while an eviction
 * clears this one, so a load and a plain store could drop the collapser's
 * bit. Skipping the AND when the bit is already clear would save one
 * uncontended atomic per evicted page (an eviction costs microseconds of
 * ioctls) and would need the page's state change and this load both
 * sequentially consistent against collapse_range's set-then-look; not
 * worth that.
 */
void lm__thp_page_gone(struct lm_region *r, uint64_t idx)
{
	uint64_t i = (idx << r->page_shift) >> LM_THP_SHIFT;

	if (r->thp.huge && i < r->thp.nr_ranges)
		range_set_huge(r, i, false);
}

void lm__thp_quiesce(struct lm_region *r)
{
	while (atomic_load(&r->thp.collapsing))
		sched_yield();
}

int lm__thp_init(struct lm_region *r, enum lm_thp mode)
{
	uint64_t words;

	r->thp.mode = mode;
	if (mode == LM_THP_OFF)
		return 0;
	if (access("/sys/kernel/mm/transparent_hugepage", F_OK))
		return lm_error(-EOPNOTSUPP, "region '%s': thp %s, but this "
				"kernel has no transparent huge pages (no "
				"/sys/kernel/mm/transparent_hugepage)",
				r->name, lm_thp_name(mode));
	r->thp.nr_ranges = r->size >> LM_THP_SHIFT;
	words = r->thp.nr_ranges / BITS + 1;
	r->thp.huge = calloc(words, sizeof(*r->thp.huge));
	if (!r->thp.huge)
		return lm_error(-ENOMEM, "region '%s': huge-page bitmap",
				r->name);
	pthread_mutex_init(&r->thp.pass, NULL);
	return 0;
}

int lm__thp_start(struct lm_region *r)
{
	int err;

	if (r->thp.mode != LM_THP_AUTO)
		return 0;
	err = pthread_create(&r->thp.thread, NULL, collapser_main, r);
	if (err)
		return lm_error(-err, "region '%s': starting the collapser "
				"thread: %s", r->name, strerror(err));
	r->thp.running = true;
	return 0;
}

void lm__thp_fini(struct lm_region *r)
{
	if (r->thp.running) {
		atomic_store(&r->thp.stop, true);
		atomic_fetch_add(&r->thp.chunks, 1);
		lm_futex_wake_all(&r->thp.chunks);
		pthread_join(r->thp.thread, NULL);
		r->thp.running = false;
	}
	if (r->thp.huge) {
		pthread_mutex_destroy(&r->thp.pass);
		free(r->thp.huge);
		r->thp.huge = NULL;
	}
}
