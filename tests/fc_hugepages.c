/*
 * fc_hugepages.c - a guest on 2 MiB hugetlbfs pages (shared, as
 * Firecracker maps them): faults are per 2 MiB page and served with
 * UFFDIO_COPY (hugetlbfs has no UFFDIO_ZEROPAGE, so a removed page comes
 * back as copied zeroes); a balloon's MADV_REMOVE in the middle makes
 * those pages read zero. Skips when 2 MiB pages cannot be reserved.
 */
#include "fc_test.h"

#define SIZE (16ull << 20)
#define HUGE (2ull << 20)

static void test_hugepages(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", NULL };
	long prev;
	int64_t bad;
	char *out, *p;

	(void)state;
	LM_REQUIRE_UFFD();
	prev = t_hugepages_reserve((long)(SIZE / HUGE) + 2);
	if (prev < 0)
		LM_SKIP("cannot reserve %llu 2 MiB hugetlb pages",
			(unsigned long long)(SIZE / HUGE) + 2);
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, HUGE, 2));
	t_touch(&g, 0, SIZE, 4);
	bad = t_verify(&g, 0, SIZE, false);
	LM_ASSERT(bad < 0, "guest byte %lld differs from the memory file",
		  (long long)bad);
	LM_OK(fc_guest_balloon(&g, 4 * HUGE, 2 * HUGE));
	t_touch(&g, 0, SIZE, 2);
	LM_ASSERT(t_verify(&g, 4 * HUGE, 2 * HUGE, true) < 0,
		  "removed hugepages not zero");
	LM_ASSERT(t_verify(&g, 0, 4 * HUGE, false) < 0, "before the balloon");
	LM_ASSERT(t_verify(&g, 6 * HUGE, SIZE - 6 * HUGE, false) < 0,
		  "after the balloon");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
	out = t_slurp(d.out);
	/* 8 pages faulted, then the 2 removed ones again as zeroes. */
	p = strstr(out, "\"pages_demand\":");
	LM_ASSERT(p && atol(p + 15) == 10, "stats: %s", out);
	LM_ASSERT(strstr(out, "\"pages_removed\":2,"), "stats: %s", out);
	LM_ASSERT(strstr(out, "\"pages_zero\":2,"), "stats: %s", out);
	free(out);
	t_cleanup(&d);
	t_hugepages_restore(prev);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hugepages),
	};

	LM_ASSERT(argc > 1, "usage: fc_hugepages PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
