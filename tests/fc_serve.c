/*
 * fc_serve.c - `lazymem fc-handler` serves a Firecracker-style guest: two
 * regions, 4 KiB pages, four threads touching in scrambled orders; every
 * byte matches the memory file (holes read as zero). Statistics come on
 * SIGUSR1 and on disconnect, as JSON; the handler keeps serving the next
 * VM. With --prefetch all, pages arrive without being touched.
 */
#include "fc_test.h"

#define SIZE (16ull << 20)

static void test_serve_4k(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", NULL };
	int64_t bad;
	char *out, *p, *q;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	t_touch(&g, 0, SIZE, 4);
	bad = t_verify(&g, 0, SIZE, false);
	LM_ASSERT(bad < 0, "guest byte %lld differs from the memory file",
		  (long long)bad);
	kill(d.pid, SIGUSR1);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"sigusr1\"", 5000),
		  "no statistics on SIGUSR1");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
	out = t_slurp(d.out);
	/* Every 4 KiB page was installed once, by its fault or by the
	 * fault-around of a sequential neighbour; holes (1/8) mostly as
	 * zero pages (a hole inside a fault-around run is read instead). */
	p = strstr(out, "\"pages_demand\":");
	q = strstr(out, "\"pages_prefetch\":");
	LM_ASSERT(p && q && atol(p + 15) + atol(q + 17) == 4096, "stats: %s",
		  out);
	p = strstr(out, "\"pages_zero\":");
	LM_ASSERT(p && atol(p + 13) > 256 && atol(p + 13) <= 512, "stats: %s",
		  out);
	LM_ASSERT(strstr(out, "\"fault_p99_us\""), "stats: %s", out);
	free(out);

	/* The handler is still there for the next VM. */
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 1));
	t_touch(&g, 0, SIZE, 2);
	LM_ASSERT(t_verify(&g, 0, SIZE, false) < 0, "second VM content");
	fc_guest_stop(&g);
	LM_ASSERT(WIFEXITED(t_daemon_stop(&d)), "handler did not exit cleanly");
	t_cleanup(&d);
}

static void test_prefetch_all(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", "--prefetch", "all", NULL };
	char *out, *p;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	/* One touch, then the background fill does the rest. */
	LM_ASSERT(t_verify(&g, 4096, 4096, false) < 0, "first page");
	usleep(500000);
	t_touch(&g, 0, SIZE, 2);
	LM_ASSERT(t_verify(&g, 0, SIZE, false) < 0, "content after prefetch");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
	out = t_slurp(d.out);
	p = strstr(out, "\"pages_prefetch\":");
	LM_ASSERT(p && atol(p + 17) > 2048, "most pages prefetched: %s", out);
	free(out);
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_4k),
		cmocka_unit_test(test_prefetch_all),
	};

	LM_ASSERT(argc > 1, "usage: fc_serve PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
