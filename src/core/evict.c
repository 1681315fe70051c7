/*
 * evict.c - reclaim's half of the core: a present page goes back to
 * missing with its content in the region's page store.
 *
 * The page-state map makes it safe against concurrent faults. The evicting
 * thread claims each page PRESENT -> FETCHING, as a fetch does, so a fault
 * on a page being evicted finds it FETCHING and waits on its word; the
 * eviction then publishes it MISSING + STORED (or PRESENT again if the
 * store refused it), and the woken fault claims it and reads it from the
 * store (fault.c). Nothing waits on anything but its own page.
 *
 * anon: UFFDIO_MOVE takes a run out of the page tables in one ioctl, so a
 * write lands before the move (and moves with the page) or faults after it
 * (and waits): no write can be lost. Runs of 64 because the move's cost is
 * mostly a TLB shootdown per call: 1 page per call costs about 10 us while
 * another thread of the process runs, 64 pages per call 250 ns per page
 * (probes, /work/shared/DESIGN.md).
 *
 * memfd: UFFDIO_MOVE refuses shared memory (EINVAL). The run is
 * write-protected first, copied, punched out of the memfd, and only then
 * un-protected; a write in between takes a write-protect fault and waits
 * for the page like any fault during an eviction.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lazymem/reclaim.h>
#include "core/region_internal.h"
#include "core/uffd.h"

uint64_t lm__reclaim_features(const struct lm_region *r)
{
	if (!r->reclaim.store)
		return 0;
	if (r->backing == LM_BACKING_ANON)
		return UFFD_FEATURE_MOVE;
	return UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
}

uint64_t lm__reclaim_register_mode(const struct lm_region *r)
{
	return r->reclaim.store && r->backing == LM_BACKING_MEMFD
		       ? UFFDIO_REGISTER_MODE_WP : 0;
}

int lm__reclaim_init(struct lm_region *r, struct lm_page_store *s)
{
	struct lm_reclaim *rc = &r->reclaim;
	uint64_t len = LM_EVICT_RUN * r->page_size;
	int err;

	if (!s)
		return 0;
	rc->stage = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rc->stage == MAP_FAILED) {
		rc->stage = NULL;
		return lm_error(-errno, "region '%s': eviction staging area: "
				"%s", r->name, strerror(errno));
	}
	pthread_mutex_init(&rc->lock, NULL);
	if (r->backing != LM_BACKING_ANON)
		return 0;
	rc->bounce = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (rc->bounce == MAP_FAILED) {
		rc->bounce = NULL;
		return lm_error(-errno, "region '%s': eviction bounce buffer: "
				"%s", r->name, strerror(errno));
	}
	/* A move's destination must be registered with the userfaultfd the
	 * ioctl is issued on; no THP, as for the region itself. */
	madvise(rc->stage, len, MADV_NOHUGEPAGE);
	err = lm_uffd_register(r->view[0].uffd, rc->stage, len,
			       UFFDIO_REGISTER_MODE_MISSING);
	if (err)
		return lm_error(err, "region '%s': registering the eviction "
				"staging area: %s", r->name, strerror(-err));
	return 0;
}

void lm__reclaim_fini(struct lm_region *r)
{
	struct lm_reclaim *rc = &r->reclaim;

	if (!rc->stage)
		return;
	munmap(rc->stage, LM_EVICT_RUN * r->page_size);
	rc->stage = NULL;
	if (rc->bounce)
		munmap(rc->bounce, LM_EVICT_RUN * r->page_size);
	rc->bounce = NULL;
	pthread_mutex_destroy(&rc->lock);
}

void lm__reclaim_quiesce(struct lm_region *r)
{
	while (atomic_load(&r->reclaim.evicting))
		sched_yield();
}

/* Move [off, off+len) of view 0 to dst; bytes moved (all or a prefix). */
static int move_run(struct lm_region *r, uint8_t *dst, uint64_t off,
		    uint64_t len, uint64_t *moved)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)(r->view[0].addr + off),
		.len = len,
		.mode = UFFDIO_MOVE_MODE_DONTWAKE,
	};

	*moved = 0;
	for (;;) {
		if (ioctl(r->view[0].uffd, UFFDIO_MOVE, &m) == 0) {
			*moved += len;
			return 0;
		}
		if (m.move > 0) {
			*moved += (uint64_t)m.move;
			m.dst += (uint64_t)m.move;
			m.src += (uint64_t)m.move;
			m.len -= (uint64_t)m.move;
			m.move = 0;
		}
		if (errno != EAGAIN)
			return -errno;
	}
}

/*
 * The k pages just moved to the stage, copied to the bounce buffer by the
 * kernel. Why not read the stage directly: each moved page's mapping is
 * new, and on this nested host (a shadow-paging guest) the first user
 * access to a newly mapped page exits to the host to build its shadow
 * entry, about 12 us per page (perf: the store's zero check, the first
 * reader, was half the reclaimer's time, and eviction ran at ~23K pages/s).
 * The kernel reads the pages through its own mapping of them instead.
 */
static void read_moved(struct lm_region *r, unsigned at, unsigned k)
{
	uint64_t off = (uint64_t)at << r->page_shift;
	uint64_t len = (uint64_t)k << r->page_shift;
	struct iovec local = { r->reclaim.bounce + off, len };
	struct iovec remote = { r->reclaim.stage + off, len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	/* Not permitted (a seccomp or ptrace policy): read the stage. */
	if (n != (ssize_t)len)
		memcpy(local.iov_base, remote.iov_base, len);
}

/* Page idx (owned) goes back resident with its content in buf: the move
 * took it out but the store refused it. */
static int put_back(struct lm_region *r, uint64_t idx, const void *buf)
{
	struct lm_view *v = &r->view[0];

	return lm_uffd_copy(v->uffd, v->addr + (idx << r->page_shift), buf,
			    r->page_size, !v->sigbus);
}

/* The page could not be put back either: it is lost to the region, so it
 * fails (poisoned, recorded) rather than read as something else. */
static void lose(struct lm_region *r, uint64_t idx, int err)
{
	struct lm_fault f = {
		.off = idx << r->page_shift,
		.origin = LM_ORIGIN_BACKGROUND,
		.slot = -1,
		.npages = 1,
	};

	lm_fault_fail(r, &f, err);
}

static void evicted(struct lm_region *r, uint64_t idx)
{
	lm__page_undone(r, idx);
	lm_pagemap_publish(&r->map, idx, LM_PS_MISSING | LM_PS_STORED);
}

/*
 * Page i of the run [first, ...) now sits at stage + i pages, out of the
 * region's memory (anon): hand it to the store, or back to the region.
 */
static void store_moved(struct lm_region *r, uint64_t first, unsigned i,
			struct lm_evict_result *res)
{
	struct lm_page_store *s = r->reclaim.store;
	uint64_t idx = first + i;
	const uint8_t *page = r->reclaim.bounce + ((uint64_t)i << r->page_shift);
	int err = s->ops->put(s, idx << r->page_shift, page);

	if (!err) {
		res->evicted |= 1ull << i;
		evicted(r, idx);
		return;
	}
	res->refused |= 1ull << i;
	err = put_back(r, idx, page);
	if (err)
		lose(r, idx, err);
	else
		lm_pagemap_publish(&r->map, idx, LM_PS_PRESENT);
}

/* Claimed pages [first, first+n) of an anon region, n <= 64. */
static int evict_anon(struct lm_region *r, uint64_t first, unsigned n,
		      unsigned at, struct lm_evict_result *res)
{
	uint64_t off = first << r->page_shift, moved = 0;
	unsigned done = 0;
	int first_err = 0;

	while (done < n) {
		uint64_t len = (uint64_t)(n - done) << r->page_shift;
		int err = move_run(r, r->reclaim.stage +
				   ((uint64_t)done << r->page_shift),
				   off + ((uint64_t)done << r->page_shift),
				   len, &moved);
		unsigned k = (unsigned)(moved >> r->page_shift);

		if (k)
			read_moved(r, done, k);
		for (unsigned i = 0; i < k; i++) {
			struct lm_evict_result one = { 0 };

			store_moved(r, first, done + i, &one);
			res->evicted |= one.evicted << at;
			res->refused |= one.refused << at;
		}
		done += k;
		if (!err)
			break;
		/* The page at done could not be moved (a hole the user
		 * made, a page shared with a fork child: EBUSY): it stays
		 * where it is, resident; go on after it. */
		if (!first_err)
			first_err = err;
		lm_pagemap_publish(&r->map, first + done, LM_PS_PRESENT);
		res->nr_skipped++;
		done++;
	}
	/* Empty the staging area for the next move (its destination must
	 * be unpopulated). */
	madvise(r->reclaim.stage, (uint64_t)n << r->page_shift, MADV_DONTNEED);
	return first_err == -ENOENT || first_err == -EBUSY ? 0 : first_err;
}

/* Punch pages [first + i, ...) of run bits `mask` out of the memfd. */
static int punch(struct lm_region *r, uint64_t first, uint64_t mask)
{
	while (mask) {
		unsigned i = (unsigned)__builtin_ctzll(mask), j = i;

		while (j < 64 && (mask >> j & 1))
			j++;
		if (fallocate(r->memfd, FALLOC_FL_PUNCH_HOLE |
			      FALLOC_FL_KEEP_SIZE,
			      (off_t)((first + i) << r->page_shift),
			      (off_t)((uint64_t)(j - i) << r->page_shift)) < 0)
			return -errno;
		mask &= j == 64 ? 0 : ~0ull << j;
	}
	return 0;
}

/*
 * [off, off+len) of a memfd region, its writers held off, into the stage:
 * read from the memfd by the kernel, for the reason read_moved gives (the
 * alias's mapping of a page is touched here for the first time, and on
 * this nested host a first user access exits to the host); through the
 * unregistered alias for whatever the read did not return.
 */
static void read_run(struct lm_region *r, uint64_t off, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(r->memfd, r->reclaim.stage + done,
				  len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (uint64_t)n;
	}
	if (done < len)
		memcpy(r->reclaim.stage + done, r->alias + off + done,
		       len - done);
}

/* Claimed pages [first, first+n) of a memfd region: protect, copy, store,
 * punch, un-protect. */
static int evict_memfd(struct lm_region *r, uint64_t first, unsigned n,
		       unsigned at, struct lm_evict_result *res)
{
	struct lm_view *v = &r->view[0];
	struct lm_page_store *s = r->reclaim.store;
	uint64_t off = first << r->page_shift, len = (uint64_t)n << r->page_shift;
	uint64_t stored = 0;
	int err = lm_uffd_writeprotect(v->uffd, v->addr + off, len, true, false);

	if (err) {
		for (unsigned i = 0; i < n; i++)
			lm_pagemap_publish(&r->map, first + i, LM_PS_PRESENT);
		return err;
	}
	/* Writers are held off: read the run. */
	read_run(r, off, len);
	for (unsigned i = 0; i < n; i++)
		if (!s->ops->put(s, (first + i) << r->page_shift,
				 r->reclaim.stage + ((uint64_t)i << r->page_shift)))
			stored |= 1ull << i;
	err = punch(r, first, stored);
	if (err) {
		/* Page by page: a page that cannot be punched stays
		 * resident, and its copy is taken back out of the store. */
		for (unsigned i = 0; i < n; i++) {
			uint64_t o = (first + i) << r->page_shift;

			if (!(stored >> i & 1) ||
			    !fallocate(r->memfd, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, (off_t)o,
				       (off_t)r->page_size))
				continue;
			s->ops->take(s, o, r->reclaim.stage);
			stored &= ~(1ull << i);
		}
	}
	/* Lift before publishing: a page published present must not keep a
	 * protection nobody will lift (its writer would loop). */
	lm_uffd_writeprotect(v->uffd, v->addr + off, len, false, !v->sigbus);
	for (unsigned i = 0; i < n; i++) {
		if (stored >> i & 1) {
			evicted(r, first + i);
			res->evicted |= 1ull << (at + i);
		} else {
			lm_pagemap_publish(&r->map, first + i, LM_PS_PRESENT);
			res->refused |= 1ull << (at + i);
		}
	}
	return err;
}

static int check_run(struct lm_region *r, uint64_t off, unsigned npages)
{
	if (!r->reclaim.store)
		return lm_error(-EINVAL, "region '%s': evict: the region has "
				"no page store", r->name);
	if (npages == 0 || npages > LM_EVICT_RUN)
		return lm_error(-EINVAL, "region '%s': evict a run of %u "
				"pages: 1 to %d at a time", r->name, npages,
				LM_EVICT_RUN);
	if (off % r->page_size || off >= r->size ||
	    (uint64_t)npages > (r->size - off) >> r->page_shift)
		return lm_error(-EINVAL, "region '%s': evict %u pages at "
				"%#llx: not page-aligned or past the end "
				"%#llx", r->name, npages,
				(unsigned long long)off,
				(unsigned long long)r->size);
	return 0;
}

/* Evict the claimed runs of [first, first+npages); claimed: bit i. */
static int evict_claimed(struct lm_region *r, uint64_t first, uint64_t claimed,
			 struct lm_evict_result *res)
{
	int first_err = 0;

	while (claimed) {
		unsigned i = (unsigned)__builtin_ctzll(claimed), j = i;
		int err;

		while (j < 64 && (claimed >> j & 1))
			j++;
		err = r->backing == LM_BACKING_ANON
			      ? evict_anon(r, first + i, j - i, i, res)
			      : evict_memfd(r, first + i, j - i, i, res);
		if (err && !first_err)
			first_err = err;
		claimed &= j == 64 ? 0 : ~0ull << j;
	}
	return first_err;
}

int lm_region_evict(struct lm_region *r, uint64_t off, unsigned npages,
		    struct lm_evict_result *res)
{
	uint64_t first = off >> r->page_shift, claimed = 0;
	int err = check_run(r, off, npages);

	memset(res, 0, sizeof(*res));
	if (err)
		return err;
	/* Announce first, then look: lm_wp_protect sets busy, then waits
	 * for evicting to drain; one of the two sees the other. */
	atomic_fetch_add(&r->reclaim.evicting, 1);
	if (r->wp.mode == LM_WP_SYNC && atomic_load(&r->wp.busy)) {
		atomic_fetch_sub(&r->reclaim.evicting, 1);
		return lm_error(-EBUSY, "region '%s': a copy-before-write live "
				"snapshot runs; eviction waits until it ends",
				r->name);
	}
	for (unsigned i = 0; i < npages; i++) {
		if (lm_pagemap_evict_claim(&r->map, first + i))
			claimed |= 1ull << i;
		else
			res->nr_skipped++;
	}
	pthread_mutex_lock(&r->reclaim.lock);
	err = evict_claimed(r, first, claimed, res);
	pthread_mutex_unlock(&r->reclaim.lock);
	atomic_fetch_sub(&r->reclaim.evicting, 1);
	res->nr_evicted = (unsigned)__builtin_popcountll(res->evicted);
	res->nr_refused = (unsigned)__builtin_popcountll(res->refused);
	lm__count(r, pages_evicted, res->nr_evicted);
	lm__count(r, evict_refused, res->nr_refused);
	if (err)
		return lm_error(err, "region '%s': evicting %u pages at %#llx: "
				"%s", r->name, npages, (unsigned long long)off,
				strerror(-err));
	return 0;
}

void lm_page_store_destroy(struct lm_page_store *s)
{
	if (s && s->ops->destroy)
		s->ops->destroy(s);
}
