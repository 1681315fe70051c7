/*
 * live.c - a live snapshot of a region: its memory at one instant, saved
 * while its writers run, as an ordinary snapshot directory.
 *
 * cow: the instant is one write-protect sweep inside a short pause
 * (UFFDIO_WRITEPROTECT, about 70 ns per page: 18 ms per GiB, DESIGN.md).
 * Then this thread, the writer, saves pages in runs of 64 (lm_wp_save_run
 * copies and un-protects them) while a write to a page not saved yet is
 * copied by the faulting thread into a slot of a bounded buffer
 * (lazymem/wp.h's consumer, below). The writer drains the buffer after
 * each run. When every slot is full a faulting thread waits for one: the
 * throttle, which bounds the extra memory where fork() cannot.
 *
 * iterate: async write-protect rounds like pre-copy to a file: every page,
 * then the pages written meanwhile (PAGEMAP_SCAN collects and re-protects
 * them), until a round finds few; then a pause in which the last written
 * pages are saved, which is the instant.
 *
 * Dirty page cache is extra memory too: every FLUSH_BYTES written, the
 * previous step's writeback is waited for, the next one started and the
 * clean pages dropped (flush_behind), so the page cache held for
 * memory.img stays near two steps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/snapshot_internal.h"
#include "util/bits.h"
#include "util/clock.h"
#include "util/futex.h"

#include <lazymem/error.h>
#include <lazymem/wp.h>

#define RUN 64u				/* pages per writer step, at most */
#define RUN_BYTES (256u << 10)		/* ... and at most this, or one page */
#define FLUSH_BYTES (8ull << 20)
#define DEFAULT_BUFFER (64ull << 20)

#if defined(__SANITIZE_THREAD__)
#define LIVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LIVE_TSAN 1
#endif
#endif

/*
 * Copy pages that writers may be changing (iterate rounds): a torn page is
 * expected and harmless, since a page written during its copy is reported
 * written and saved again by a later round or the final pause. Under TSan
 * the copy is uninstrumented for that reason.
 */
#ifdef LIVE_TSAN
__attribute__((no_sanitize("thread")))
static void copy_racy(void *dst, const void *src, uint64_t len)
{
	volatile uint64_t *d = dst;
	const volatile uint64_t *s = src;

	for (uint64_t i = 0; i < len / 8; i++)
		d[i] = s[i];
}
#else
static void copy_racy(void *dst, const void *src, uint64_t len)
{
	memcpy(dst, src, len);
}
#endif

/* The copy-before-write buffer: slots taken by faulting threads (in a
 * signal handler: atomics and futexes only), drained by the writer. */
struct live_buf {
	uint8_t *mem;
	uint64_t ps;
	unsigned nslots, nwords;
	_Atomic uint64_t *free_bits, *full_bits;
	uint64_t *slot_off;		/* published by the full bit */
	_Atomic uint32_t nfree;		/* futex: faulting threads wait */
	_Atomic uint32_t puts;		/* futex: the writer waits */
	_Atomic uint32_t writer_waiting;
	_Atomic uint32_t hint;
	_Atomic bool failing;
	_Atomic uint64_t throttled_ns, copied;
	_Atomic uint32_t peak;		/* slots in use at most */
};

struct live {
	const char *dir;
	char img[4096];
	int fd;
	struct lm_region *r;
	struct lm_snap_meta *m;
	const struct lm_live_config *c;
	uint64_t ps, nr;		/* the region's pages */
	uint64_t hp;			/* the head's pages, before them */
	uint8_t *head;			/* the head copied at the instant */
	uint64_t *hashes;		/* per page of memory.img */
	uint8_t *stored;		/* page i is data (not a hole) */
	unsigned run_pages;		/* pages per writer step */
	uint8_t *run;			/* run_pages pages of staging */
	uint64_t *bitmap;		/* iterate: written pages of a round */
	uint64_t since_flush;
	uint64_t done;			/* pages saved (cow) */
	struct live_buf b;
	struct lm_live_report *rep;
};

static void *slot_get(void *arg, uint64_t off)
{
	struct live_buf *b = arg;
	uint64_t t0 = 0;
	uint32_t n;

	(void)off;
	for (;;) {
		if (atomic_load(&b->failing))
			return NULL;
		n = atomic_load(&b->nfree);
		if (n == 0) {
			struct timespec ts = { 0, 50 * 1000000 };

			if (!t0)
				t0 = lm_now_ns();
			lm_futex_wait(&b->nfree, 0, &ts);
			continue;
		}
		if (atomic_compare_exchange_weak(&b->nfree, &n, n - 1))
			break;
	}
	if (t0)
		atomic_fetch_add(&b->throttled_ns, lm_now_ns() - t0);
	for (uint32_t used = b->nslots - (n - 1), p = atomic_load(&b->peak);
	     used > p && !atomic_compare_exchange_weak(&b->peak, &p, used);)
		;
	/* A slot is reserved for us: one free bit is ours to find. */
	for (unsigned w = atomic_fetch_add(&b->hint, 1) % b->nwords;;
	     w = (w + 1) % b->nwords) {
		uint64_t v = atomic_load(&b->free_bits[w]);

		while (v) {
			unsigned i = (unsigned)__builtin_ctzll(v);

			if (atomic_compare_exchange_weak(&b->free_bits[w], &v,
							 v & ~(1ull << i)))
				return b->mem + (uint64_t)(w * 64 + i) * b->ps;
		}
	}
}

static void slot_put(void *arg, uint64_t off, void *slot)
{
	struct live_buf *b = arg;
	uint64_t i = (uint64_t)((uint8_t *)slot - b->mem) / b->ps;

	b->slot_off[i] = off;
	atomic_fetch_or(&b->full_bits[i / 64], 1ull << (i % 64));
	atomic_fetch_add(&b->copied, 1);
	atomic_fetch_add(&b->puts, 1);
	if (atomic_load(&b->writer_waiting))
		lm_futex_wake_all(&b->puts);
}

static void slot_free(struct live_buf *b, uint64_t i)
{
	atomic_fetch_or(&b->free_bits[i / 64], 1ull << (i % 64));
	if (atomic_fetch_add(&b->nfree, 1) == 0)
		lm_futex_wake_all(&b->nfree);
}

/* Slots are whole pages of the region (2 MiB on hugetlb), max / ps of
 * them; check() refused a max below one page. */
static int buf_init(struct live_buf *b, uint64_t max, uint64_t ps)
{
	uint64_t n = max / ps;
	size_t words;

	if (n > (1u << 24))
		return lm_error(-EINVAL, "live snapshot: buffer of %llu "
				"bytes is too large", (unsigned long long)max);
	memset(b, 0, sizeof(*b));
	b->ps = ps;
	b->nslots = (unsigned)n;
	b->nwords = (unsigned)((n + 63) / 64);
	words = b->nwords;
	/* mmap: slots cost memory only once used, so the buffer's peak is
	 * what it holds, not max_buffer. */
	b->mem = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	b->free_bits = calloc(words, sizeof(*b->free_bits));
	b->full_bits = calloc(words, sizeof(*b->full_bits));
	b->slot_off = calloc(n, sizeof(*b->slot_off));
	if (b->mem == MAP_FAILED || !b->free_bits || !b->full_bits ||
	    !b->slot_off) {
		if (b->mem == MAP_FAILED)
			b->mem = NULL;
		return lm_error(-ENOMEM, "live snapshot: buffer of %llu "
				"bytes: out of memory", (unsigned long long)max);
	}
	for (uint64_t i = 0; i < n; i++)
		b->free_bits[i / 64] |= 1ull << (i % 64);
	b->nfree = (uint32_t)n;
	return 0;
}

static void buf_fini(struct live_buf *b)
{
	if (b->mem)
		munmap(b->mem, (uint64_t)b->nslots * b->ps);
	free(b->free_bits);
	free(b->full_bits);
	free(b->slot_off);
}

/*
 * Write-behind, every FLUSH_BYTES: wait for the writeback started at the
 * previous step, start writeback of what was written since, and drop the
 * clean pages from the cache. So dirty plus under-writeback pages of the
 * image stay within about two steps (16 MiB) while the disk writes one
 * step as the writer fills the next: the extra memory stays bounded, and
 * a disk slower than the writer throttles it (and, through the buffer,
 * the faulting threads).
 */
static void flush_behind(struct live *l, uint64_t bytes)
{
	l->since_flush += bytes;
	if (l->since_flush < FLUSH_BYTES)
		return;
	l->since_flush = 0;
	sync_file_range(l->fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE);
	sync_file_range(l->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	posix_fadvise(l->fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* Pages [first, first + n) of memory.img (the head's pages first, then
 * the region's) are in buf; those with bit i of mask set are the
 * snapshot's: hash them, write maximal runs of non-zero ones with one
 * pwrite each, and punch zero pages that held data in an earlier round. */
static int store_run(struct live *l, uint64_t first, unsigned n,
		     const uint8_t *buf, uint64_t mask)
{
	unsigned run = 0, run_len = 0;

	for (unsigned i = 0; i <= n; i++) {
		bool data = false;

		if (i < n && (mask >> i & 1)) {
			const uint8_t *page = buf + (uint64_t)i * l->ps;
			uint64_t idx = first + i;

			l->hashes[idx] = XXH3_64bits(page, l->ps);
			data = !lm__snap_page_is_zero(page, l->ps);
			if (!data && l->stored[idx] &&
			    fallocate(l->fd, FALLOC_FL_PUNCH_HOLE |
					     FALLOC_FL_KEEP_SIZE,
				      (off_t)(idx * l->ps), (off_t)l->ps) < 0)
				return lm_error(-errno, "%s: punching a hole at "
						"offset %llu: %s", l->img,
						(unsigned long long)(idx * l->ps),
						strerror(errno));
			l->stored[idx] = data;
			l->rep->written_pages++;
		}
		if (data && !run_len)
			run = i;
		if (data) {
			run_len++;
			continue;
		}
		if (run_len) {
			uint64_t off = (first + run) * l->ps,
				 len = (uint64_t)run_len * l->ps;
			int err = lm__snap_write_full(l->fd, buf + run * l->ps,
						      len, off, l->img);

			if (err)
				return err;
			flush_behind(l, len);
		}
		run_len = 0;
	}
	return 0;
}

static int store_page(struct live *l, uint64_t idx, const uint8_t *page)
{
	return store_run(l, idx, 1, page, 1);
}

/* Write out the buffer's full slots and free them; how many, or -errno. */
static int drain(struct live *l)
{
	struct live_buf *b = &l->b;
	int n = 0;

	for (unsigned w = 0; w < b->nwords; w++) {
		uint64_t v = atomic_exchange(&b->full_bits[w], 0);

		while (v) {
			uint64_t i = w * 64ull + (unsigned)__builtin_ctzll(v);
			int err = store_page(l, l->hp + b->slot_off[i] / l->ps,
					     b->mem + i * l->ps);

			v &= v - 1;
			slot_free(b, i);
			if (err)
				return err;
			n++;
		}
	}
	l->done += (uint64_t)n;
	return n;
}

/* The pause around fn: the instant. Longest pause kept in the report. */
static int paused(struct live *l, int (*fn)(struct live *l))
{
	uint64_t t0 = lm_now_ns(), t1;
	int err = l->c->pause(l->c->arg);

	if (err)
		return lm_error(err, "snapshot %s: pausing the writers: %s",
				l->dir, strerror(-err));
	t1 = lm_now_ns();
	err = fn(l);
	l->rep->pause_work_ns = LM_MAX(l->rep->pause_work_ns,
				       lm_now_ns() - t1);
	l->c->resume(l->c->arg);
	l->rep->pause_ns = LM_MAX(l->rep->pause_ns, lm_now_ns() - t0);
	return err;
}

/* Inside the pause: the head as it is at the instant. */
static void head_capture(struct live *l)
{
	if (l->hp)
		memcpy(l->head, l->c->head, l->hp * l->ps);
}

/* After the pause: store the captured head at the start of the image. */
static int head_store(struct live *l)
{
	int err = 0;

	for (uint64_t p = 0; !err && p < l->hp; p += RUN) {
		unsigned n = (unsigned)LM_MIN((uint64_t)RUN, l->hp - p);

		err = store_run(l, p, n, l->head + p * l->ps,
				n == 64 ? ~0ull : (1ull << n) - 1);
	}
	return err;
}

static int cow_protect(struct live *l)
{
	struct lm_wp_consumer cons = { slot_get, slot_put, &l->b };

	head_capture(l);
	return lm_wp_protect(l->r, &cons);
}

/* cow: save every page not saved by a write, draining as we go, then
 * wait for the pages faulting threads still hold. */
static int cow_stream(struct live *l)
{
	struct live_buf *b = &l->b;
	int err;

	for (uint64_t p = 0; p < l->nr; p += l->run_pages) {
		unsigned n = (unsigned)LM_MIN((uint64_t)l->run_pages, l->nr - p);
		uint64_t saved;

		err = lm_wp_save_run(l->r, p * l->ps, n, l->run, &saved);
		if (!err)
			err = store_run(l, l->hp + p, n, l->run, saved);
		l->done += (uint64_t)__builtin_popcountll(saved);
		if (!err) {
			int d = drain(l);

			err = d < 0 ? d : 0;
		}
		if (err)
			return err;
	}
	while (l->done < l->nr) {
		uint32_t puts = atomic_load(&b->puts);
		int n = drain(l);
		struct timespec ts = { 0, 10 * 1000000 };

		if (n < 0)
			return n;
		if (n || l->done >= l->nr)
			continue;
		atomic_store(&b->writer_waiting, 1);
		if (atomic_load(&b->puts) == puts)
			lm_futex_wait(&b->puts, puts, &ts);
		atomic_store(&b->writer_waiting, 0);
	}
	return 0;
}

/* Save pages [first, first + n) as they are now (iterate), in steps of
 * the staging's run_pages. */
static int copy_run(struct live *l, uint64_t first, unsigned n)
{
	const uint8_t *src = (const uint8_t *)lm_region_addr(l->r);
	int err = 0;

	for (unsigned at = 0; !err && at < n; at += l->run_pages) {
		unsigned k = LM_MIN(l->run_pages, n - at);

		copy_racy(l->run, src + (first + at) * l->ps,
			  (uint64_t)k * l->ps);
		err = store_run(l, l->hp + first + at, k, l->run,
				k == 64 ? ~0ull : (1ull << k) - 1);
	}
	return err;
}

/* Collect the written pages and save them; *count gets how many. */
static int iterate_round(struct live *l, uint64_t *bitmap, uint64_t *count)
{
	int err;

	memset(bitmap, 0, (l->nr + 63) / 64 * 8);
	err = lm_wp_collect(l->r, bitmap, count);
	/* Runs of written pages within each 64-page word: one copy and
	 * (mostly) one pwrite per run. */
	for (uint64_t w = 0; !err && w < (l->nr + 63) / 64; w++) {
		uint64_t v = bitmap[w];

		while (v && !err) {
			unsigned i = (unsigned)__builtin_ctzll(v);
			uint64_t x = ~(v >> i);
			unsigned len = x ? (unsigned)__builtin_ctzll(x) : 64 - i;

			err = copy_run(l, w * 64 + i, len);
			v = len + i >= 64 ? 0 : v & ~(((1ull << len) - 1) << i);
		}
	}
	return err;
}

static int iterate_final(struct live *l)
{
	uint64_t n;

	head_capture(l);
	return iterate_round(l, l->bitmap, &n);
}

static int iterate(struct live *l)
{
	/* Default: 1/64 of the pages, or 1 MiB (256 small pages, one huge
	 * page), whichever is more. */
	uint64_t limit = l->c->final_pages
				 ? l->c->final_pages
				 : LM_MAX(l->nr / 64,
					  LM_MAX((1ull << 20) / l->ps, 1ull));
	unsigned max_rounds = l->c->max_rounds ? l->c->max_rounds : 8;
	uint64_t *bitmap = l->bitmap, n = 0;
	/* No pause to start: a page written during the sweep or the first
	 * round is reported written and saved again later. */
	int err = lm_wp_protect(l->r, NULL);

	for (uint64_t p = 0; !err && p < l->nr; p += RUN)
		err = copy_run(l, p, (unsigned)LM_MIN((uint64_t)RUN, l->nr - p));
	/* Rounds while they shrink: when the writers dirty pages as fast as
	 * they are saved, more rounds only cost time (as in pre-copy). */
	for (uint64_t prev = UINT64_MAX;
	     !err && l->rep->rounds < max_rounds; prev = n) {
		err = iterate_round(l, bitmap, &n);
		l->rep->rounds++;
		if (n <= limit || n >= prev)
			break;
	}
	if (!err)
		err = paused(l, iterate_final);
	return err;
}

const char *lm_live_mode_name(enum lm_live_mode mode)
{
	return mode == LM_LIVE_COW ? "cow" : mode == LM_LIVE_ITERATE
						 ? "iterate" : "?";
}

static int check(const char *dir, struct lm_snap_meta *m, struct lm_region *r,
		 const struct lm_live_config *c)
{
	if (!c || !c->pause || !c->resume ||
	    (unsigned)c->mode > LM_LIVE_ITERATE)
		return lm_error(-EINVAL, "snapshot %s: a live snapshot needs "
				"a mode and pause / resume calls", dir);
	if (lm_wp_mode(r) != (c->mode == LM_LIVE_COW ? LM_WP_SYNC
						  : LM_WP_ASYNC))
		return lm_error(-EINVAL, "snapshot %s: mode %s needs region "
				"'%s' created with write_protect %s, not %s",
				dir, lm_live_mode_name(c->mode),
				lm_region_name(r),
				c->mode == LM_LIVE_COW ? "sync" : "async",
				lm_wp_mode_name(lm_wp_mode(r)));
	/* A slot holds a whole page (2 MiB on hugetlb): a smaller buffer
	 * could hold no copy, and every first write would wait forever.
	 * Refused before anything in dir is touched. */
	if (c->mode == LM_LIVE_COW && c->max_buffer &&
	    c->max_buffer < lm_region_page_size(r))
		return lm_error(-EINVAL, "snapshot %s: max_buffer of %llu "
				"bytes is smaller than one page of region "
				"'%s' (%llu bytes); give at least one page",
				dir, (unsigned long long)c->max_buffer,
				lm_region_name(r),
				(unsigned long long)lm_region_page_size(r));
	if (!m->nr_vcpus || !m->nr_regions ||
	    c->head_size % lm_region_page_size(r) ||
	    (c->head_size && !c->head) ||
	    m->mem_size != c->head_size + lm_region_size(r) ||
	    m->page_size != lm_region_page_size(r))
		return lm_error(-EINVAL, "snapshot %s: incomplete description "
				"(vCPUs, regions; memory size the head's "
				"plus region '%s''s, page size its own)", dir,
				lm_region_name(r));
	return 0;
}

static int setup(struct live *l)
{
	char meta[4096];
	int err;

	if (mkdir(l->dir, 0755) < 0 && errno != EEXIST)
		return lm_error(-errno, "snapshot %s: %s", l->dir,
				strerror(errno));
	/* An old meta.json must not outlive the files it described. */
	err = lm__snap_path(meta, sizeof(meta), l->dir, LM_SNAP_META_FILE);
	if (!err)
		err = lm__snap_path(l->img, sizeof(l->img), l->dir,
				    LM_SNAP_MEM_FILE);
	if (err)
		return err;
	if (unlink(meta) < 0 && errno != ENOENT)
		return lm_error(-errno, "%s: %s", meta, strerror(errno));
	l->hashes = calloc(l->hp + l->nr, sizeof(*l->hashes));
	l->stored = calloc(l->hp + l->nr, 1);
	l->head = l->hp ? malloc(l->hp * l->ps) : NULL;
	l->run = malloc((uint64_t)l->run_pages * l->ps);
	l->bitmap = calloc((l->nr + 63) / 64, 8);
	if (!l->hashes || !l->stored || !l->run || !l->bitmap ||
	    (l->hp && !l->head))
		return lm_error(-ENOMEM, "snapshot %s: out of memory", l->dir);
	if (l->c->mode == LM_LIVE_COW) {
		err = buf_init(&l->b, l->c->max_buffer ? l->c->max_buffer
						       : DEFAULT_BUFFER, l->ps);
		if (err)
			return err;
	}
	l->fd = open(l->img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (l->fd < 0)
		return lm_error(-errno, "%s: %s", l->img, strerror(errno));
	if (ftruncate(l->fd, (off_t)l->m->mem_size) < 0)
		return lm_error(-errno, "%s: sizing to %llu bytes: %s", l->img,
				(unsigned long long)l->m->mem_size,
				strerror(errno));
	return 0;
}

static int run(struct live *l)
{
	int err;

	if (l->c->mode == LM_LIVE_ITERATE)
		err = iterate(l);
	else if (!(err = paused(l, cow_protect)))
		err = cow_stream(l);
	return err ? err : head_store(l);
}

/*
 * Failed: the faulting threads get no slot from now on (their pages are
 * un-protected without a copy), every protection is lifted, and the image
 * goes, so the directory holds nothing a restore would take.
 */
static void abandon(struct live *l)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s", lm_last_error());
	atomic_store(&l->b.failing, true);
	lm_futex_wake_all(&l->b.nfree);
	lm_wp_release(l->r);
	if (l->fd >= 0)
		unlink(l->img);
	lm_error(-EIO, "%s", msg);	/* the cause, not the clean-up's */
}

static void finish_report(struct live *l, uint64_t t0)
{
	l->rep->total_ns = lm_now_ns() - t0;
	l->rep->copied_before_write = atomic_load(&l->b.copied);
	l->rep->throttled_ns = atomic_load(&l->b.throttled_ns);
	l->rep->buffer_peak = (uint64_t)atomic_load(&l->b.peak) * l->ps;
}

int lm_snap_live_save(const char *dir, struct lm_snap_meta *m,
		      struct lm_region *r, const struct lm_live_config *c,
		      struct lm_live_report *rep)
{
	struct lm_live_report dummy;
	struct live l = { .dir = dir, .fd = -1, .r = r, .m = m, .c = c };
	uint64_t t0 = lm_now_ns();
	int err = check(dir, m, r, c);

	if (err)
		return err;
	if (lm_wp_busy(r))
		return lm_error(-EBUSY, "snapshot %s: region '%s' already has "
				"a live snapshot running; refused", dir,
				lm_region_name(r));
	l.rep = rep ? rep : &dummy;
	memset(l.rep, 0, sizeof(*l.rep));
	l.ps = m->page_size;
	l.hp = c->head_size / l.ps;
	l.nr = lm_region_size(r) / l.ps;
	/* 64 small pages per step; one per step on hugetlb, so the staging
	 * is 2 MiB, not 128. */
	l.run_pages = (unsigned)LM_MAX(LM_MIN((uint64_t)RUN, RUN_BYTES / l.ps),
				       1ull);
	err = setup(&l);
	if (!err)
		err = run(&l);
	if (!err && fdatasync(l.fd) < 0)
		err = lm_error(-errno, "%s: fdatasync: %s", l.img,
			       strerror(errno));
	if (!err)
		err = lm_wp_release(r);
	if (!err) {
		m->nonzero_pages = 0;
		for (uint64_t i = 0; i < l.hp + l.nr; i++)
			m->nonzero_pages += l.stored[i];
		err = lm__snap_finish(dir, m, l.hashes);
	}
	if (err == -EBUSY) {
		/* Lost a race with another snapshot: its protection is not
		 * ours to lift; our image goes. */
		lm_error(err, "snapshot %s: region '%s' already has a live "
			 "snapshot running; refused", dir, lm_region_name(r));
		if (l.fd >= 0)
			unlink(l.img);
	} else if (err) {
		abandon(&l);
	}
	finish_report(&l, t0);
	if (l.fd >= 0)
		close(l.fd);
	free(l.hashes);
	free(l.head);
	free(l.stored);
	free(l.run);
	free(l.bitmap);
	buf_fini(&l.b);
	return err;
}
