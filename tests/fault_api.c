/*
 * fault_api.c - the begin/commit protocol a vCPU uses: the owner sees the
 * page's content before anyone else, may change it (to complete an emulated
 * access), and others needing the page wait until it is committed or
 * failed, then see exactly what was committed.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "lm_test.h"

#define SIZE (1ull << 20)

struct waiter {
	struct lm_region *r;
	uint64_t off;
	_Atomic int started;
	int rc;
};

static void *wait_page(void *arg)
{
	struct waiter *w = arg;
	struct lm_fault f;

	atomic_store(&w->started, 1);
	w->rc = lm_fault_begin(w->r, w->off, LM_ORIGIN_VCPU, &f);
	return NULL;
}

static void setup(enum lm_backing b, enum lm_install i, struct lm_source **src,
		  struct lm_region **r, uint8_t *img)
{
	t_fill(img, SIZE, 9);
	LM_OK(lm_source_memory_create(img, SIZE, src));
	struct lm_region_config c = {
		.name = "api", .size = SIZE, .backing = b, .install = i,
		.delivery = LM_DELIVERY_SELF, .source = *src,
	};
	LM_OK(lm_region_create(&c, r));
}

static void run_commit(enum lm_backing b, enum lm_install ins)
{
	static uint8_t img[SIZE];
	struct lm_source *src;
	struct lm_region *r;
	struct lm_fault f;
	struct waiter w = { .off = 5 * 4096 + 8 };
	pthread_t tid;

	setup(b, ins, &src, &r, img);
	w.r = r;
	LM_ASSERT(lm_fault_begin(r, 5 * 4096 + 123, LM_ORIGIN_VCPU, &f) == 1,
		  "first begin owns the page");
	LM_ASSERT(f.off == 5 * 4096, "offset rounded to the page");
	LM_ASSERT(!memcmp(f.page, img + 5 * 4096, 4096), "staged content");
	((uint64_t *)f.page)[3] = 0xfeedface;	/* the emulated write */

	pthread_create(&tid, NULL, wait_page, &w);
	while (!atomic_load(&w.started))
		;
	usleep(20000);		/* the waiter is asleep on the page now */
	LM_OK(lm_fault_commit(r, &f));
	pthread_join(tid, NULL);
	LM_ASSERT(w.rc == 0, "waiter sees the page present: %d", w.rc);

	const uint64_t *p = (const uint64_t *)lm_region_addr(r) + 5 * 512;
	LM_ASSERT(p[3] == 0xfeedface, "the owner's write landed");
	LM_ASSERT(p[4] == ((const uint64_t *)(const void *)img)[5 * 512 + 4],
		  "the rest");
	LM_ASSERT(lm_fault_begin(r, 5 * 4096, LM_ORIGIN_VCPU, &f) == 0,
		  "present afterwards");
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void test_commit_anon(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_commit(LM_BACKING_ANON, LM_INSTALL_COPY);
}

static void test_commit_memfd_continue(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_commit(LM_BACKING_MEMFD, LM_INSTALL_CONTINUE);
}

static void test_fail_wakes_waiters(void **s)
{
	static uint8_t img[SIZE];
	struct lm_source *src;
	struct lm_region *r;
	struct lm_fault f;
	struct waiter w = { .off = 9 * 4096 };
	pthread_t tid;

	(void)s;
	LM_REQUIRE_UFFD();
	setup(LM_BACKING_ANON, LM_INSTALL_COPY, &src, &r, img);
	w.r = r;
	LM_ASSERT(lm_fault_begin(r, 9 * 4096, LM_ORIGIN_VCPU, &f) == 1, "own");
	pthread_create(&tid, NULL, wait_page, &w);
	while (!atomic_load(&w.started))
		;
	usleep(20000);
	lm_fault_fail(r, &f, -EIO);
	pthread_join(tid, NULL);
	LM_ASSERT(w.rc == -EIO, "waiter told the page failed: %d", w.rc);
	LM_ASSERT(lm_fault_begin(r, 9 * 4096, LM_ORIGIN_VCPU, &f) == -EIO,
		  "failed stays failed");
	lm_region_destroy(r);
	lm_source_destroy(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_anon),
		cmocka_unit_test(test_commit_memfd_continue),
		cmocka_unit_test(test_fail_wakes_waiters),
	};

	return cmocka_run_group_tests_name("fault_api", tests, NULL, NULL);
}
