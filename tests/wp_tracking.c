/*
 * wp_tracking.c - write-protect tracking of a region (lazymem/wp.h): a
 * page written after the instant is copied exactly once with its content
 * at the instant; a page the writer saved first is never copied; both the
 * SIGBUS and the handler delivery; a page missing at the instant is saved
 * with its source's content; async tracking finds exactly the written
 * pages, past PAGEMAP_SCAN's 512 result ranges; a second protection is
 * refused. The same on hugetlb, where the unit is the 2 MiB page: a 4 KiB
 * write copies its whole huge page, once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "lm_test.h"

#define PAGES 2048
#define PS 4096ull
#define HPS (2ull << 20)	/* a hugetlb page */
#define HPAGES 16u		/* pages of the hugetlb region */

/* The consumer: one slot per page, and how often each was filled. */
struct sink {
	uint8_t *slots;
	uint64_t ps, size;
	_Atomic uint32_t copies[PAGES];
};

static void *sink_get(void *arg, uint64_t off)
{
	struct sink *k = arg;

	return k->slots + off;
}

static void sink_put(void *arg, uint64_t off, void *slot)
{
	struct sink *k = arg;

	(void)slot;
	atomic_fetch_add(&k->copies[off / k->ps], 1);
}

static struct sink *sink_new_ps(uint64_t ps, uint64_t pages)
{
	struct sink *k = calloc(1, sizeof(*k));

	k->ps = ps;
	k->size = ps * pages;
	k->slots = mmap(NULL, k->size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	LM_ASSERT(k->slots != MAP_FAILED, "mmap");
	return k;
}

static struct sink *sink_new(void)
{
	return sink_new_ps(PS, PAGES);
}

static void sink_free(struct sink *k)
{
	munmap(k->slots, k->size);
	free(k);
}

static enum lm_backing backing = LM_BACKING_ANON;

static struct lm_region *wp_region(enum lm_delivery d, enum lm_wp_mode m,
				   struct lm_source **src)
{
	struct lm_region *r;

	LM_OK(lm_source_zero_create(PAGES * PS, src));
	struct lm_region_config rc = {
		.name = "wp", .size = PAGES * PS,
		.backing = backing, .install = LM_INSTALL_COPY,
		.delivery = d, .handler_threads = 2, .source = *src,
		.write_protect = m,
	};
	LM_OK(lm_region_create(&rc, &r));
	return r;
}

/* Every word of page p holds (p << 32 | gen). */
static void write_page(uint8_t *base, unsigned p, uint32_t gen)
{
	volatile uint64_t *w = (volatile uint64_t *)(void *)(base + p * PS);

	for (unsigned i = 0; i < PS / 8; i++)
		w[i] = (uint64_t)p << 32 | gen;
}

static bool is_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static bool page_is(const uint8_t *page, unsigned p, uint32_t gen)
{
	const uint64_t *w = (const uint64_t *)(const void *)page;

	for (unsigned i = 0; i < PS / 8; i++)
		if (w[i] != ((uint64_t)p << 32 | gen))
			return false;
	return true;
}

/* Pages 0..half written before the instant (gen 1), the rest missing.
 * After the instant: every third page written (gen 2), twice. Then the
 * writer saves everything; the pages it saved are written (gen 3). */
static void sync_once(enum lm_delivery d)
{
	struct lm_source *src;
	struct lm_region *r = wp_region(d, LM_WP_SYNC, &src);
	uint8_t *base = lm_region_addr(r);
	struct sink *k = sink_new();
	struct lm_wp_consumer c = { sink_get, sink_put, k };
	uint8_t *buf = malloc(64 * PS);
	bool by_writer[PAGES] = { false };
	struct lm_stats st;
	uint64_t faults;

	for (unsigned p = 0; p < PAGES / 2; p++)
		write_page(base, p, 1);
	LM_OK(lm_wp_protect(r, &c));
	LM_ASSERT(lm_wp_protect(r, &c) == -EBUSY, "second protect refused");
	for (int round = 0; round < 2; round++)
		for (unsigned p = 0; p < PAGES; p += 3)
			write_page(base, p, 2);
	for (unsigned p = 0; p < PAGES; p++) {
		unsigned want = p % 3 == 0;

		LM_ASSERT(atomic_load(&k->copies[p]) == want,
			  "page %u copied %u times, want %u", p,
			  atomic_load(&k->copies[p]), want);
		if (want)
			LM_ASSERT(p < PAGES / 2 ? page_is(k->slots + p * PS, p, 1)
					       : is_zero(k->slots + p * PS, PS),
				  "page %u copied with its content at the "
				  "instant", p);
	}
	for (unsigned p = 0; p < PAGES; p += 64) {
		uint64_t saved;

		LM_OK(lm_wp_save_run(r, p * PS, 64, buf, &saved));
		for (unsigned i = 0; i < 64; i++) {
			unsigned q = p + i;

			LM_ASSERT(!!(saved >> i & 1) == (q % 3 != 0),
				  "page %u saved by the writer: %d", q,
				  (int)(saved >> i & 1));
			if (!(saved >> i & 1))
				continue;
			by_writer[q] = true;
			LM_ASSERT(q < PAGES / 2 ? page_is(buf + i * PS, q, 1)
					       : is_zero(buf + i * PS, PS),
				  "page %u saved with its content at the "
				  "instant", q);
		}
	}
	lm_region_stats(r, &st);
	faults = st.wp_faults;
	for (unsigned p = 0; p < PAGES; p++)
		if (by_writer[p])
			write_page(base, p, 3);
	for (unsigned p = 0; p < PAGES; p++)
		LM_ASSERT(atomic_load(&k->copies[p]) == (p % 3 == 0),
			  "page %u copied after the writer saved it", p);
	lm_region_stats(r, &st);
	LM_ASSERT(st.wp_copied == (PAGES + 2) / 3, "wp_copied %llu",
		  (unsigned long long)st.wp_copied);
	LM_OK(lm_wp_release(r));
	/* Released: writes fault no more. */
	for (unsigned p = 0; p < PAGES; p++)
		write_page(base, p, 4);
	lm_region_stats(r, &st);
	LM_ASSERT(st.wp_copied == (PAGES + 2) / 3, "copied after release");
	LM_ASSERT(st.wp_faults == faults, "writes to pages the writer saved "
		  "(and un-protected) faulted: %llu",
		  (unsigned long long)(st.wp_faults - faults));
	/* A second snapshot on the same region works from a clean state. */
	memset(k->copies, 0, sizeof(k->copies));
	LM_OK(lm_wp_protect(r, &c));
	write_page(base, 5, 6);
	LM_ASSERT(atomic_load(&k->copies[5]) == 1 &&
		  page_is(k->slots + 5 * PS, 5, 4), "second snapshot copy");
	LM_OK(lm_wp_release(r));
	free(buf);
	sink_free(k);
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_sync_self(void **s) { (void)s; LM_REQUIRE_UFFD(); sync_once(LM_DELIVERY_SELF); }
static void race(enum lm_delivery d);

/* Shared memory (shmem): WP_HUGETLBFS_SHMEM, markers on the page cache. */
static void test_sync_memfd(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	backing = LM_BACKING_MEMFD;
	sync_once(LM_DELIVERY_SELF);
	race(LM_DELIVERY_SELF);
	backing = LM_BACKING_ANON;
}
static void test_sync_handler(void **s) { (void)s; LM_REQUIRE_UFFD(); sync_once(LM_DELIVERY_HANDLER); }

/* Threads rewrite pages while the writer saves: every page ends saved
 * exactly once, by one side or the other, with its content at the instant. */
struct racer {
	uint8_t *base;
	unsigned seed;
	_Atomic bool *stop;
};

static void *race_writes(void *arg)
{
	struct racer *t = arg;
	unsigned x = t->seed;

	while (!atomic_load(t->stop)) {
		x = x * 1103515245u + 12345u;
		/* Each racer its own half: they race the writer, not
		 * each other. */
		write_page(t->base, (x >> 8) % (PAGES / 2) * 2 + t->seed,
			   7 + t->seed);
	}
	return NULL;
}

static void race(enum lm_delivery d)
{
	struct lm_source *src;
	struct lm_region *r = wp_region(d, LM_WP_SYNC, &src);
	uint8_t *base = lm_region_addr(r);
	struct sink *k = sink_new();
	struct lm_wp_consumer c = { sink_get, sink_put, k };
	uint8_t *buf = malloc(64 * PS);
	_Atomic bool stop = false;
	struct racer t[2];
	pthread_t tid[2];

	for (unsigned p = 0; p < PAGES; p++)
		write_page(base, p, 1);
	LM_OK(lm_wp_protect(r, &c));
	for (unsigned i = 0; i < 2; i++) {
		t[i] = (struct racer){ base, i, &stop };
		pthread_create(&tid[i], NULL, race_writes, &t[i]);
	}
	for (unsigned p = 0; p < PAGES; p += 64) {
		uint64_t saved;

		LM_OK(lm_wp_save_run(r, p * PS, 64, buf, &saved));
		for (unsigned i = 0; i < 64; i++) {
			if (!(saved >> i & 1))
				continue;
			LM_ASSERT(atomic_load(&k->copies[p + i]) == 0,
				  "page %u saved by both", p + i);
			atomic_fetch_add(&k->copies[p + i], 1);
			memcpy(k->slots + (p + i) * PS, buf + i * PS, PS);
		}
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	for (unsigned p = 0; p < PAGES; p++)
		LM_ASSERT(atomic_load(&k->copies[p]) == 1 &&
			  page_is(k->slots + p * PS, p, 1),
			  "page %u saved %u times (content ok: %d)", p,
			  atomic_load(&k->copies[p]),
			  page_is(k->slots + p * PS, p, 1));
	LM_OK(lm_wp_release(r));
	free(buf);
	sink_free(k);
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_race_self(void **s) { (void)s; LM_REQUIRE_UFFD(); race(LM_DELIVERY_SELF); }
static void test_race_handler(void **s) { (void)s; LM_REQUIRE_UFFD(); race(LM_DELIVERY_HANDLER); }

static void collect_expect(struct lm_region *r, const bool *want)
{
	uint64_t bitmap[PAGES / 64] = { 0 }, n, nwant = 0;

	LM_OK(lm_wp_collect(r, bitmap, &n));
	for (unsigned p = 0; p < PAGES; p++) {
		bool got = bitmap[p / 64] >> (p % 64) & 1;

		nwant += want[p];
		LM_ASSERT(got == want[p], "page %u: collected %d, written %d",
			  p, got, want[p]);
	}
	LM_ASSERT(n == nwant, "count %llu, want %llu", (unsigned long long)n,
		  (unsigned long long)nwant);
}

static void test_async(void **s)
{
	struct lm_source *src;
	struct lm_region *r;
	uint8_t *base;
	bool want[PAGES];

	(void)s;
	LM_REQUIRE_UFFD();
	r = wp_region(LM_DELIVERY_SELF, LM_WP_ASYNC, &src);
	base = lm_region_addr(r);
	for (unsigned p = 0; p < PAGES; p += 2)
		write_page(base, p, 1);	/* half populated, half never */
	LM_OK(lm_wp_protect(r, NULL));
	/* Every other page: 1024 ranges, more than one scan's 512. */
	for (unsigned p = 0; p < PAGES; p++) {
		want[p] = p % 2 == 1;
		if (want[p])
			write_page(base, p, 2);
	}
	collect_expect(r, want);
	for (unsigned p = 0; p < PAGES; p++) {
		want[p] = p % 7 == 0;
		if (want[p])
			write_page(base, p, 3);
	}
	collect_expect(r, want);
	memset(want, 0, sizeof(want));
	collect_expect(r, want);
	LM_OK(lm_wp_release(r));
	for (unsigned p = 0; p < PAGES; p++)
		LM_ASSERT(page_is(base + p * PS, p, p % 7 == 0 ? 3
					: p % 2 ? 2 : 1), "content of %u", p);
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_async_memfd(void **s)
{
	backing = LM_BACKING_MEMFD;
	test_async(s);
	backing = LM_BACKING_ANON;
}

/*
 * hugetlb. The state is main's reservation: the previous nr_hugepages, or
 * -1 when none could be made (skip).
 */
#define REQUIRE_HUGE(s)                                                      \
	do {                                                                 \
		LM_REQUIRE_UFFD();                                           \
		if (*(long *)*(s) < 0)                                       \
			LM_SKIP("cannot reserve %u hugetlb pages of 2 MiB "  \
				"(/proc/sys/vm/nr_hugepages, needs root)",   \
				HPAGES + 2);                                 \
	} while (0)

static struct lm_region *huge_region(enum lm_delivery d, enum lm_wp_mode m,
				     struct lm_source **src)
{
	struct lm_region *r;

	LM_OK(lm_source_zero_create(HPAGES * HPS, src));
	struct lm_region_config rc = {
		.name = "wp-huge", .size = HPAGES * HPS,
		.backing = LM_BACKING_HUGETLB, .install = LM_INSTALL_COPY,
		.delivery = d, .handler_threads = 2, .source = *src,
		.write_protect = m,
	};
	LM_OK(lm_region_create(&rc, &r));
	LM_ASSERT(lm_region_page_size(r) == HPS, "page size %llu",
		  (unsigned long long)lm_region_page_size(r));
	return r;
}

/* Every word of huge page p holds (p << 32 | gen). */
static void write_huge(uint8_t *base, unsigned p, uint32_t gen)
{
	volatile uint64_t *w = (volatile uint64_t *)(void *)(base + p * HPS);

	for (unsigned i = 0; i < HPS / 8; i++)
		w[i] = (uint64_t)p << 32 | gen;
}

/* One 4 KiB write inside huge page p, at its small page sub. */
static void write_sub(uint8_t *base, unsigned p, unsigned sub, uint32_t gen)
{
	volatile uint64_t *w = (volatile uint64_t *)(void *)
		(base + p * HPS + (sub % (HPS / PS)) * PS);

	for (unsigned i = 0; i < PS / 8; i++)
		w[i] = (uint64_t)p << 32 | gen;
}

/* Huge page p as it was at the instant: gen 1 if populated, else zero. */
static bool huge_at_instant(const uint8_t *page, unsigned p, bool populated)
{
	const uint64_t *w = (const uint64_t *)(const void *)page;

	if (!populated)
		return is_zero(page, HPS);
	for (unsigned i = 0; i < HPS / 8; i++)
		if (w[i] != ((uint64_t)p << 32 | 1))
			return false;
	return true;
}

/* The first half written before the instant, the rest missing; after it,
 * every third huge page gets two 4 KiB writes at different places; the
 * writer saves the others, whose writes then fault no more. */
static void huge_sync(void **s, enum lm_delivery d)
{
	struct lm_source *src;
	struct lm_region *r;
	uint8_t *base, *buf;
	struct sink *k;
	struct lm_stats st;
	uint64_t saved, faults;

	REQUIRE_HUGE(s);
	r = huge_region(d, LM_WP_SYNC, &src);
	base = lm_region_addr(r);
	k = sink_new_ps(HPS, HPAGES);
	buf = malloc(HPAGES * HPS);
	LM_ASSERT(buf, "malloc");
	struct lm_wp_consumer c = { sink_get, sink_put, k };

	for (unsigned p = 0; p < HPAGES / 2; p++)
		write_huge(base, p, 1);
	LM_OK(lm_wp_protect(r, &c));
	for (unsigned round = 0; round < 2; round++)
		for (unsigned p = 0; p < HPAGES; p += 3)
			write_sub(base, p, 7 * p + 100 * round + 1, 2);
	for (unsigned p = 0; p < HPAGES; p++) {
		unsigned want = p % 3 == 0;

		LM_ASSERT(atomic_load(&k->copies[p]) == want,
			  "huge page %u copied %u times, want %u", p,
			  atomic_load(&k->copies[p]), want);
		if (want)
			LM_ASSERT(huge_at_instant(k->slots + p * HPS, p,
						  p < HPAGES / 2),
				  "huge page %u copied whole, with its "
				  "content at the instant", p);
	}
	LM_OK(lm_wp_save_run(r, 0, HPAGES, buf, &saved));
	for (unsigned p = 0; p < HPAGES; p++) {
		LM_ASSERT(!!(saved >> p & 1) == (p % 3 != 0),
			  "huge page %u saved by the writer: %d", p,
			  (int)(saved >> p & 1));
		if (saved >> p & 1)
			LM_ASSERT(huge_at_instant(buf + p * HPS, p,
						  p < HPAGES / 2),
				  "huge page %u saved with its content at "
				  "the instant", p);
	}
	lm_region_stats(r, &st);
	faults = st.wp_faults;
	for (unsigned p = 0; p < HPAGES; p++)
		if (p % 3)
			write_sub(base, p, p, 3);
	lm_region_stats(r, &st);
	LM_ASSERT(st.wp_faults == faults && st.wp_copied == (HPAGES + 2) / 3,
		  "after the writer: %llu more faults, %llu copies",
		  (unsigned long long)(st.wp_faults - faults),
		  (unsigned long long)st.wp_copied);
	LM_OK(lm_wp_release(r));
	for (unsigned p = 0; p < HPAGES; p++)
		write_sub(base, p, 3 * p, 4);
	lm_region_stats(r, &st);
	LM_ASSERT(st.wp_faults == faults, "writes faulted after release");
	free(buf);
	sink_free(k);
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_huge_sync_self(void **s) { huge_sync(s, LM_DELIVERY_SELF); }
static void test_huge_sync_handler(void **s) { huge_sync(s, LM_DELIVERY_HANDLER); }

/* Two threads write 4 KiB pieces of the same huge pages (so one often
 * waits for the other's copy) while the writer saves one huge page at a
 * time: each saved exactly once, whole. */
static void *huge_race_writes(void *arg)
{
	struct racer *t = arg;
	unsigned x = t->seed;

	while (!atomic_load(t->stop)) {
		x = x * 1103515245u + 12345u;
		write_sub(t->base, (x >> 8) % HPAGES, (x >> 16) * 2 + t->seed,
			  7 + t->seed);
	}
	return NULL;
}

static void huge_race(void **s, enum lm_delivery d)
{
	struct lm_source *src;
	struct lm_region *r;
	uint8_t *base, *buf;
	struct sink *k;
	_Atomic bool stop = false;
	struct racer t[2];
	pthread_t tid[2];

	REQUIRE_HUGE(s);
	r = huge_region(d, LM_WP_SYNC, &src);
	base = lm_region_addr(r);
	k = sink_new_ps(HPS, HPAGES);
	buf = malloc(HPS);
	LM_ASSERT(buf, "malloc");
	struct lm_wp_consumer c = { sink_get, sink_put, k };

	for (unsigned p = 0; p < HPAGES; p++)
		write_huge(base, p, 1);
	LM_OK(lm_wp_protect(r, &c));
	for (unsigned i = 0; i < 2; i++) {
		t[i] = (struct racer){ base, i, &stop };
		pthread_create(&tid[i], NULL, huge_race_writes, &t[i]);
	}
	for (unsigned p = 0; p < HPAGES; p++) {
		uint64_t saved;

		usleep(2000);	/* let the racers get some pages first */
		LM_OK(lm_wp_save_run(r, p * HPS, 1, buf, &saved));
		if (!saved)
			continue;
		LM_ASSERT(atomic_load(&k->copies[p]) == 0,
			  "huge page %u saved by both", p);
		atomic_fetch_add(&k->copies[p], 1);
		memcpy(k->slots + p * HPS, buf, HPS);
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	for (unsigned p = 0; p < HPAGES; p++)
		LM_ASSERT(atomic_load(&k->copies[p]) == 1 &&
			  huge_at_instant(k->slots + p * HPS, p, true),
			  "huge page %u saved %u times (content ok: %d)", p,
			  atomic_load(&k->copies[p]),
			  huge_at_instant(k->slots + p * HPS, p, true));
	LM_OK(lm_wp_release(r));
	free(buf);
	sink_free(k);
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_huge_race_self(void **s) { huge_race(s, LM_DELIVERY_SELF); }
static void test_huge_race_handler(void **s) { huge_race(s, LM_DELIVERY_HANDLER); }

static void huge_collect_expect(struct lm_region *r, const bool *want)
{
	uint64_t bitmap[1] = { 0 }, n, nwant = 0;

	LM_OK(lm_wp_collect(r, bitmap, &n));
	for (unsigned p = 0; p < HPAGES; p++) {
		bool got = bitmap[0] >> p & 1;

		nwant += want[p];
		LM_ASSERT(got == want[p], "huge page %u: collected %d, "
			  "written %d", p, got, want[p]);
	}
	LM_ASSERT(n == nwant, "count %llu, want %llu", (unsigned long long)n,
		  (unsigned long long)nwant);
}

/* Async: PAGEMAP_SCAN reports written huge pages, populated or not. */
static void test_huge_async(void **s)
{
	struct lm_source *src;
	struct lm_region *r;
	uint8_t *base;
	bool want[HPAGES];

	REQUIRE_HUGE(s);
	r = huge_region(LM_DELIVERY_SELF, LM_WP_ASYNC, &src);
	base = lm_region_addr(r);
	for (unsigned p = 0; p < HPAGES; p += 2)
		write_huge(base, p, 1);
	LM_OK(lm_wp_protect(r, NULL));
	for (unsigned p = 0; p < HPAGES; p++) {
		want[p] = p % 3 == 1;
		if (want[p])
			write_sub(base, p, p * 5, 2);
	}
	huge_collect_expect(r, want);
	for (unsigned p = 0; p < HPAGES; p++) {
		want[p] = p % 5 == 0;
		if (want[p])
			write_sub(base, p, p * 11, 3);
	}
	huge_collect_expect(r, want);
	memset(want, 0, sizeof(want));
	huge_collect_expect(r, want);
	LM_OK(lm_wp_release(r));
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_refusals(void **s)
{
	struct lm_source *src;
	struct lm_region *r;
	uint64_t saved, bm[PAGES / 64], n;

	(void)s;
	LM_REQUIRE_UFFD();
	r = wp_region(LM_DELIVERY_SELF, LM_WP_NONE, &src);
	LM_ASSERT(lm_wp_protect(r, NULL) == -EINVAL, "no write_protect");
	lm_region_destroy(r);
	lm_source_destroy(src);
	r = wp_region(LM_DELIVERY_SELF, LM_WP_SYNC, &src);
	LM_ASSERT(lm_wp_protect(r, NULL) == -EINVAL, "sync without consumer");
	LM_ASSERT(lm_wp_save_run(r, 0, 1, bm, &saved) == -EINVAL,
		  "save without a snapshot");
	LM_ASSERT(lm_wp_collect(r, bm, &n) == -EINVAL, "collect on sync");
	lm_region_destroy(r);
	lm_source_destroy(src);
}

int main(void)
{
	/* One reservation for the hugetlb cases, given back at the end. */
	long prev = t_hugepages_reserve(HPAGES + 2);
	int rc;
	const struct CMUnitTest huge[] = {
		cmocka_unit_test_prestate(test_huge_sync_self, &prev),
		cmocka_unit_test_prestate(test_huge_sync_handler, &prev),
		cmocka_unit_test_prestate(test_huge_race_self, &prev),
		cmocka_unit_test_prestate(test_huge_race_handler, &prev),
		cmocka_unit_test_prestate(test_huge_async, &prev),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_self),
		cmocka_unit_test(test_sync_handler),
		cmocka_unit_test(test_race_self),
		cmocka_unit_test(test_race_handler),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_sync_memfd),
		cmocka_unit_test(test_async_memfd),
		cmocka_unit_test(test_refusals),
	};

	rc = cmocka_run_group_tests_name("wp_tracking", tests, NULL, NULL);
	rc |= cmocka_run_group_tests_name("wp_tracking_hugetlb", huge, NULL,
					  NULL);
	t_hugepages_restore(prev);
	return rc;
}
