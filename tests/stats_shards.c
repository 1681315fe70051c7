/*
 * stats_shards.c - the statistics are kept in per-thread shards (one per
 * faulting thread, a shared one beyond LM_STAT_SHARDS - 1 threads) and
 * summed by lm_region_stats: the sums must equal the pages faulted, with
 * more threads than shards and more regions per thread than a thread's
 * shard cache holds. And the self-resolve fault-around window each shard
 * keeps for its thread: grown by a sequential stream, 1 for random access,
 * and kept when two regions take each other's entry in the shard cache.
 */
#include <pthread.h>

#include "lm_test.h"

#define PAGES_PER_THREAD 64
#define MAX_REGIONS 24

struct job {
	struct lm_region **r;
	unsigned nregions;
	unsigned first;			/* first page of this thread's slice */
	bool api;			/* lm_region_fault, not a touch */
	pthread_barrier_t *start;
};

static void *fault_slice(void *arg)
{
	struct job *j = arg;

	pthread_barrier_wait(j->start);
	/* Regions interleaved page by page: a thread's cache entries for
	 * them collide and are handed out anew, which must not lose a
	 * count either. */
	for (unsigned p = j->first; p < j->first + PAGES_PER_THREAD; p++)
		for (unsigned k = 0; k < j->nregions; k++) {
			uint64_t off = (uint64_t)p * 4096;

			if (j->api)
				assert_int_equal(lm_region_fault(j->r[k], off,
						LM_ORIGIN_VCPU), 0);
			else
				(void)*(volatile uint64_t *)(void *)
					((uint8_t *)lm_region_addr(j->r[k]) +
					 off);
		}
	return NULL;
}

static void run(enum lm_delivery d, unsigned threads, unsigned nregions,
		bool api)
{
	uint64_t pages = (uint64_t)threads * PAGES_PER_THREAD;
	uint64_t size = pages * 4096;
	struct lm_region *r[MAX_REGIONS];
	struct lm_source *src[MAX_REGIONS];
	pthread_t *tid = calloc(threads, sizeof(*tid));
	struct job *j = calloc(threads, sizeof(*j));
	uint8_t *image = calloc(1, size);
	pthread_barrier_t start;
	enum lm_fault_origin o = api ? LM_ORIGIN_VCPU
			       : d == LM_DELIVERY_SELF ? LM_ORIGIN_SIGBUS
						       : LM_ORIGIN_HANDLER;

	assert_non_null(tid);
	assert_non_null(j);
	assert_non_null(image);
	for (uint64_t p = 0; p < pages; p++)
		image[p * 4096] = (uint8_t)(p | 1);	/* no zero pages */
	for (unsigned k = 0; k < nregions; k++) {
		LM_OK(lm_source_memory_create(image, size, &src[k]));
		struct lm_region_config rc = {
			.name = "shards", .size = size,
			.backing = LM_BACKING_ANON,
			.install = LM_INSTALL_COPY, .delivery = d,
			.handler_threads = 2, .source = src[k],
		};
		LM_OK(lm_region_create(&rc, &r[k]));
	}
	pthread_barrier_init(&start, NULL, threads);
	for (unsigned i = 0; i < threads; i++) {
		j[i] = (struct job){ r, nregions, i * PAGES_PER_THREAD, api,
				     &start };
		assert_int_equal(pthread_create(&tid[i], NULL, fault_slice,
						&j[i]), 0);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start);
	for (unsigned k = 0; k < nregions; k++) {
		struct lm_stats st;

		LM_OK(lm_region_wait_complete(r[k], 10000));
		lm_region_stats(r[k], &st);
		LM_ASSERT(st.faults[o] == pages, "region %u: faults %llu of "
			  "%llu", k, (unsigned long long)st.faults[o],
			  (unsigned long long)pages);
		LM_ASSERT(st.pages_demand == pages && st.pages_around == 0,
			  "region %u: pages_demand %llu around %llu of %llu",
			  k, (unsigned long long)st.pages_demand,
			  (unsigned long long)st.pages_around,
			  (unsigned long long)pages);
		LM_ASSERT(st.bytes_read == size, "region %u: bytes_read %llu",
			  k, (unsigned long long)st.bytes_read);
		LM_ASSERT(st.lat_count == pages, "region %u: lat_count %llu",
			  k, (unsigned long long)st.lat_count);
		LM_ASSERT(st.lat_max_ns >= st.lat_p99_ns && st.lat_max_ns,
			  "region %u: max %llu p99 %llu", k,
			  (unsigned long long)st.lat_max_ns,
			  (unsigned long long)st.lat_p99_ns);
		LM_ASSERT(st.faults_waited == 0 && st.faults_present == 0 &&
			  st.pages_failed == 0 && st.pages_zero == 0,
			  "region %u: waited %llu present %llu failed %llu "
			  "zero %llu", k, (unsigned long long)st.faults_waited,
			  (unsigned long long)st.faults_present,
			  (unsigned long long)st.pages_failed,
			  (unsigned long long)st.pages_zero);
		assert_int_equal(lm_region_pages_present(r[k]), pages);
		lm_region_destroy(r[k]);
		lm_source_destroy(src[k]);
	}
	free(image);
	free(tid);
	free(j);
}

/* 100 threads: 63 own shards, the other 37 share shard 0. */
static void test_self_many_threads(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_SELF, 100, 1, false);
}

/* 20 regions per thread: more than the 16 entries of its shard cache. */
static void test_self_many_regions(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_SELF, 8, 20, false);
}

static void test_handler_threads(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_HANDLER, 16, 1, false);
}

/* lm_region_fault from many threads: the vCPU path, no signal. */
static void test_api_many_threads(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_SELF, 80, 2, true);
}

/* One thread touches 1024 pages with fault-around 16, in order or in a
 * scattered order (stride 37, coprime with 1024). */
static void around(bool sequential, struct lm_stats *st)
{
	uint64_t pages = 1024, size = pages * 4096;
	uint8_t *image = calloc(1, size);
	struct lm_source *src;
	struct lm_region *r;
	volatile uint8_t *p;

	assert_non_null(image);
	for (uint64_t i = 0; i < pages; i++)
		image[i * 4096] = 1;
	LM_OK(lm_source_memory_create(image, size, &src));
	struct lm_region_config rc = {
		.name = "window", .size = size, .backing = LM_BACKING_ANON,
		.install = LM_INSTALL_COPY, .delivery = LM_DELIVERY_SELF,
		.source = src, .fault_around = 16,
	};
	LM_OK(lm_region_create(&rc, &r));
	p = lm_region_addr(r);
	for (uint64_t i = 0; i < pages; i++)
		(void)p[(sequential ? i : i * 37 % pages) * 4096];
	LM_OK(lm_region_wait_complete(r, 10000));
	lm_region_stats(r, st);
	lm_region_destroy(r);
	lm_source_destroy(src);
	free(image);
}

static void test_around_window(void **s)
{
	struct lm_stats st;

	(void)s;
	LM_REQUIRE_UFFD();
	/* Sequential: 1, 2, 4, 8, then 16 pages per fault. */
	around(true, &st);
	LM_ASSERT(st.faults[LM_ORIGIN_SIGBUS] <= 1024 / 16 + 4 &&
		  st.pages_demand + st.pages_around == 1024,
		  "sequential: %llu faults, %llu demand, %llu around",
		  (unsigned long long)st.faults[LM_ORIGIN_SIGBUS],
		  (unsigned long long)st.pages_demand,
		  (unsigned long long)st.pages_around);
	/* Scattered: no fault lands where the previous run ended, so each
	 * installs its own page only. */
	around(false, &st);
	LM_ASSERT(st.pages_around == 0 && st.pages_demand == 1024,
		  "scattered: %llu demand, %llu around",
		  (unsigned long long)st.pages_demand,
		  (unsigned long long)st.pages_around);
}

/*
 * Regions whose ids agree mod 16 share an entry of a thread's shard
 * cache (17 regions made one after another: the first and the last). A
 * thread reading both in order, a page of one then a page of the other,
 * keeps one shard in each, so each region's fault-around window grows
 * along its stream: at most 68 faults per region. (When a miss handed
 * out a new shard each time, the window began again at every switch:
 * about 120 faults per region, and every shard of both was taken.)
 */
static void test_cache_collision(void **s)
{
	uint64_t pages = 1024, size = pages * 4096;
	struct lm_region *r[17];
	struct lm_source *src;
	uint8_t *image = calloc(1, size);
	struct lm_stats st;

	(void)s;
	LM_REQUIRE_UFFD();
	assert_non_null(image);
	LM_OK(lm_source_memory_create(image, size, &src));
	for (unsigned k = 0; k < 17; k++) {
		struct lm_region_config rc = {
			.name = "collide", .size = size,
			.backing = LM_BACKING_ANON,
			.install = LM_INSTALL_COPY,
			.delivery = LM_DELIVERY_SELF, .source = src,
			.fault_around = 16,
		};

		LM_OK(lm_region_create(&rc, &r[k]));
	}
	for (uint64_t i = 0; i < pages; i++) {
		(void)((volatile uint8_t *)lm_region_addr(r[0]))[i * 4096];
		(void)((volatile uint8_t *)lm_region_addr(r[16]))[i * 4096];
	}
	for (unsigned k = 0; k < 17; k += 16) {
		lm_region_stats(r[k], &st);
		LM_ASSERT(st.faults[LM_ORIGIN_SIGBUS] <= 1024 / 16 + 4 &&
			  st.pages_demand + st.pages_around == pages,
			  "region %u: %llu faults, %llu demand, %llu around", k,
			  (unsigned long long)st.faults[LM_ORIGIN_SIGBUS],
			  (unsigned long long)st.pages_demand,
			  (unsigned long long)st.pages_around);
	}
	for (unsigned k = 0; k < 17; k++)
		lm_region_destroy(r[k]);
	lm_source_destroy(src);
	free(image);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_many_threads),
		cmocka_unit_test(test_self_many_regions),
		cmocka_unit_test(test_handler_threads),
		cmocka_unit_test(test_api_many_threads),
		cmocka_unit_test(test_around_window),
		cmocka_unit_test(test_cache_collision),
	};

	return cmocka_run_group_tests_name("stats_shards", tests, NULL, NULL);
}
