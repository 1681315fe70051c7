/*
 * fc_balloon.c - a balloon in the middle of guest memory: after
 * MADV_DONTNEED (the REMOVE event), pages in the removed range read as
 * zero, whether they had been faulted in before or never; pages outside
 * keep the memory file's content; removed pages are not prefetched again.
 */
#include "fc_test.h"

#define SIZE (16ull << 20)
#define HOLE_OFF (5ull << 20)
#define HOLE_LEN (3ull << 20)

static void balloon_case(const char *prefetch, bool touch_first)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", "--prefetch", prefetch, NULL };
	int64_t bad;
	char *out, *p;

	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	if (touch_first) {
		t_touch(&g, 0, SIZE, 2);
		LM_ASSERT(t_verify(&g, 0, SIZE, false) < 0, "before balloon");
	} else {
		LM_ASSERT(t_verify(&g, 0, 4096, false) < 0, "first page");
	}
	LM_OK(fc_guest_balloon(&g, HOLE_OFF, HOLE_LEN));
	if (!strcmp(prefetch, "all"))
		usleep(300000);	/* let the background fill pass the hole */
	t_touch(&g, 0, SIZE, 2);
	bad = t_verify(&g, HOLE_OFF, HOLE_LEN, true);
	LM_ASSERT(bad < 0, "removed byte at %lld is not zero", (long long)bad);
	bad = t_verify(&g, 0, HOLE_OFF, false);
	LM_ASSERT(bad < 0, "byte %lld before the balloon", (long long)bad);
	bad = t_verify(&g, HOLE_OFF + HOLE_LEN, SIZE - HOLE_OFF - HOLE_LEN,
		       false);
	LM_ASSERT(bad < 0, "byte %lld after the balloon", (long long)bad);

	/* Deflate and write: the guest owns those pages again. */
	memset(g.mem + HOLE_OFF, 0xab, 4096);
	LM_ASSERT(g.mem[HOLE_OFF + 17] == 0xab, "write after deflate");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
	out = t_slurp(d.out);
	p = strstr(out, "\"pages_removed\":");
	LM_ASSERT(p && atol(p + 16) == (long)(HOLE_LEN / 4096), "stats: %s",
		  out);
	free(out);
	t_cleanup(&d);
}

static void test_balloon_after_touch(void **state)
{
	(void)state;
	LM_REQUIRE_UFFD();
	balloon_case("none", true);
}

static void test_balloon_untouched(void **state)
{
	(void)state;
	LM_REQUIRE_UFFD();
	balloon_case("none", false);
}

static void test_balloon_with_prefetch_all(void **state)
{
	(void)state;
	LM_REQUIRE_UFFD();
	balloon_case("all", false);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_balloon_after_touch),
		cmocka_unit_test(test_balloon_untouched),
		cmocka_unit_test(test_balloon_with_prefetch_all),
	};

	LM_ASSERT(argc > 1, "usage: fc_balloon PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
