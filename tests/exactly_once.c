/*
 * exactly_once.c - many threads faulting the same pages fetch each page
 * exactly once: the source is read once per page, whatever the contention.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "lm_test.h"

#define THREADS 8
#define PAGES 2048

/* A source that counts how many times each page is read. */
struct counting_source {
	struct lm_source base;
	_Atomic uint32_t reads[PAGES];
};

static int counting_read(struct lm_source *s, uint64_t off, void *dst,
			 size_t len)
{
	struct counting_source *c = (struct counting_source *)s;

	for (uint64_t o = off; o < off + len; o += 4096) {
		atomic_fetch_add(&c->reads[o / 4096], 1);
		for (unsigned w = 0; w < 512; w++)
			((uint64_t *)dst)[(o - off) / 8 + w] =
				t_pattern(o / 8 + w, 3);
	}
	return 0;
}

static const struct lm_source_ops counting_ops = { .read = counting_read };

struct toucher {
	volatile uint64_t *base;
	unsigned seed;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	/* All threads walk the same pages in the same order: maximal
	 * contention, every page raced by all of them. */
	for (unsigned p = 0; p < PAGES; p++)
		(void)t->base[p * 512 + t->seed];
	return NULL;
}

static void run(enum lm_delivery d, unsigned around)
{
	static struct counting_source src;
	struct lm_region *r;
	struct lm_stats st;
	pthread_t tid[THREADS];
	struct toucher t[THREADS];

	memset(&src, 0, sizeof(src));
	src.base.ops = &counting_ops;
	src.base.size = PAGES * 4096ull;
	struct lm_region_config rc = {
		.name = "once", .size = PAGES * 4096ull,
		.backing = LM_BACKING_ANON, .install = LM_INSTALL_COPY,
		.delivery = d, .handler_threads = 4, .source = &src.base,
		.fault_around = around,
	};
	LM_OK(lm_region_create(&rc, &r));
	for (unsigned i = 0; i < THREADS; i++) {
		t[i] = (struct toucher){ lm_region_addr(r), i };
		pthread_create(&tid[i], NULL, touch, &t[i]);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	LM_OK(lm_region_wait_complete(r, 10000));
	for (unsigned p = 0; p < PAGES; p++)
		LM_ASSERT(atomic_load(&src.reads[p]) == 1,
			  "page %u read %u times", p,
			  atomic_load(&src.reads[p]));
	LM_ASSERT(t_check(lm_region_addr(r), PAGES * 4096ull, 3) == -1,
		  "content");
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_demand + st.pages_around == PAGES,
		  "pages_demand %llu + around %llu",
		  (unsigned long long)st.pages_demand,
		  (unsigned long long)st.pages_around);
	lm_region_destroy(r);
}

static void test_self(void **s) { (void)s; LM_REQUIRE_UFFD(); run(LM_DELIVERY_SELF, 0); }
static void test_handler(void **s) { (void)s; LM_REQUIRE_UFFD(); run(LM_DELIVERY_HANDLER, 0); }
static void test_self_around(void **s) { (void)s; LM_REQUIRE_UFFD(); run(LM_DELIVERY_SELF, 16); }
static void test_handler_around(void **s) { (void)s; LM_REQUIRE_UFFD(); run(LM_DELIVERY_HANDLER, 7); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_handler),
		cmocka_unit_test(test_self_around),
		cmocka_unit_test(test_handler_around),
	};

	return cmocka_run_group_tests_name("exactly_once", tests, NULL, NULL);
}
