/*
 * teardown.c - regions come and go without leaking threads, mappings,
 * descriptors or memory: created and destroyed many times, with idle
 * handler threads, an unfinished background fill, half-touched memory.
 * Run under AddressSanitizer in CI, which fails on any leak.
 */
#include <dirent.h>

#include "lm_test.h"

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static void test_create_destroy_loop(void **s)
{
	struct lm_source *src;
	int fds_before;

	(void)s;
	LM_REQUIRE_UFFD();
	LM_OK(lm_source_zero_create(64 << 20, &src));
	fds_before = count_fds();
	for (int i = 0; i < 60; i++) {
		struct lm_region *r;
		struct lm_region_config c = {
			.name = "churn", .size = 64 << 20,
			.backing = (enum lm_backing)(i % 2),
			.install = (i % 4 == 3) ? LM_INSTALL_CONTINUE
						: LM_INSTALL_COPY,
			.delivery = (enum lm_delivery)((i / 2) % 2),
			.handler_threads = 1 + i % 3,
			.background = i % 5 == 0,
			.vmm_view = i % 4 == 3 && (i / 2) % 2 == 1,
			.source = src,
		};
		LM_OK(lm_region_create(&c, &r));
		volatile uint8_t *p = lm_region_addr(r);

		for (int k = 0; k < 50; k++)
			(void)p[(uint64_t)k * 4096 * 7];
		lm_region_destroy(r);
	}
	LM_ASSERT(count_fds() == fds_before, "fds before %d after %d",
		  fds_before, count_fds());
	lm_source_destroy(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_destroy_loop),
	};

	return cmocka_run_group_tests_name("teardown", tests, NULL, NULL);
}
