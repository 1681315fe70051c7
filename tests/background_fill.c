/*
 * background_fill.c - background fill completes a region nobody touches,
 * and demand faults during the fill still get exactly the right pages.
 */
#include <pthread.h>

#include "lm_test.h"

static void run(enum lm_backing b, enum lm_install ins, enum lm_delivery d,
		bool touch_too)
{
	uint64_t size = 32ull << 20;
	uint8_t *img = malloc(size);
	struct lm_source *src;
	struct lm_region *r;
	struct lm_stats st;

	t_fill(img, size, 11);
	LM_OK(lm_source_memory_create(img, size, &src));
	struct lm_region_config rc = {
		.name = "bg", .size = size, .backing = b, .install = ins,
		.delivery = d, .background = true, .source = src,
	};
	LM_OK(lm_region_create(&rc, &r));
	if (touch_too) {
		/* Demand faults from the far end while the filler streams
		 * from the start. */
		volatile uint8_t *p = lm_region_addr(r);

		for (uint64_t off = size; off > 0; off -= 64 * 4096)
			(void)p[off - 4096];
	}
	LM_OK(lm_region_wait_complete(r, 20000));
	LM_ASSERT(t_check(lm_region_addr(r), size, 11) == -1,
		  "content after background fill");
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_demand + st.pages_background == size / 4096,
		  "demand %llu + background %llu pages",
		  (unsigned long long)st.pages_demand,
		  (unsigned long long)st.pages_background);
	if (!touch_too)
		LM_ASSERT(st.pages_background == size / 4096,
			  "untouched region filled by background only");
	LM_ASSERT(lm_region_pages_present(r) == size / 4096, "present");
	lm_region_destroy(r);
	lm_source_destroy(src);
	free(img);
}

static void test_untouched_anon(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_BACKING_ANON, LM_INSTALL_COPY, LM_DELIVERY_HANDLER, false);
}

static void test_untouched_memfd_continue(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_BACKING_MEMFD, LM_INSTALL_CONTINUE, LM_DELIVERY_SELF, false);
}

static void test_with_demand_self(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_BACKING_ANON, LM_INSTALL_COPY, LM_DELIVERY_SELF, true);
}

static void test_with_demand_handler_continue(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_BACKING_MEMFD, LM_INSTALL_CONTINUE, LM_DELIVERY_HANDLER, true);
}

/*
 * background_deferred: nothing is filled until lm_region_background_start
 * (a touched page comes by demand meanwhile), then the fill completes the
 * region; a second start does nothing, and a region without background
 * refuses the call by name.
 */
static void test_deferred(void **s)
{
	uint64_t size = 8ull << 20;
	uint8_t *img = malloc(size);
	struct lm_source *src;
	struct lm_region *r;
	struct lm_stats st;

	(void)s;
	LM_REQUIRE_UFFD();
	t_fill(img, size, 12);
	LM_OK(lm_source_memory_create(img, size, &src));
	struct lm_region_config rc = {
		.name = "bg-later", .size = size, .backing = LM_BACKING_ANON,
		.install = LM_INSTALL_COPY, .delivery = LM_DELIVERY_SELF,
		.background = true, .background_deferred = true, .source = src,
	};
	LM_OK(lm_region_create(&rc, &r));
	(void)((volatile uint8_t *)lm_region_addr(r))[4096];
	usleep(100 * 1000);
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_background == 0 && lm_region_pages_present(r) == 1,
		  "before the start: %llu pages by the fill, %llu present",
		  (unsigned long long)st.pages_background,
		  (unsigned long long)lm_region_pages_present(r));
	LM_OK(lm_region_background_start(r));
	LM_OK(lm_region_background_start(r));
	LM_OK(lm_region_wait_complete(r, 20000));
	LM_ASSERT(t_check(lm_region_addr(r), size, 12) == -1, "content");
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_background == size / 4096 - 1,
		  "fill after the start: %llu pages",
		  (unsigned long long)st.pages_background);
	lm_region_destroy(r);

	rc.background = false;
	LM_OK(lm_region_create(&rc, &r));
	LM_ASSERT(lm_region_background_start(r) == -EINVAL,
		  "start without background accepted");
	LM_ASSERT(strstr(lm_last_error(), "without background fill"),
		  "%s", lm_last_error());
	lm_region_destroy(r);
	lm_source_destroy(src);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untouched_anon),
		cmocka_unit_test(test_untouched_memfd_continue),
		cmocka_unit_test(test_with_demand_self),
		cmocka_unit_test(test_with_demand_handler_continue),
		cmocka_unit_test(test_deferred),
	};

	return cmocka_run_group_tests_name("background_fill", tests, NULL,
					   NULL);
}
