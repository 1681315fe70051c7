/*
 * fc_serve.c - `lazymem fc-handler` serves a Firecracker-style guest: two
 * regions, 4 KiB pages, four threads touching in scrambled orders; every
 * byte matches the memory file (holes read as zero). Statistics come on
 * SIGUSR1 and on disconnect, as JSON; the handler keeps serving the next
 * VM. With --prefetch all, pages arrive without being touched. Fault-around
 * grows along the guest's sequential stream and stays off for a scattered
 * one.
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

/* One statistic of the daemon's last JSON line (its "disconnected" one). */
static long last_stat(const char *out, const char *key)
{
	const char *line = strrchr(out, '{'), *p;

	p = line ? strstr(line, key) : NULL;
	return p ? atol(p + strlen(key)) : -1;
}

/* Read one word of pages 0, step, 2 step, ... below n, in that order. */
static void read_pages(const struct fc_guest *g, uint64_t n, uint64_t step)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < n; i += step)
		sum += *(const volatile uint64_t *)(const volatile void *)
		       (g->mem + i * 4096);
	(void)sum;
}

/*
 * Fault-around of a foreign space follows the guest's stream: 1024 pages
 * read in order take 4 faults for the first 15 pages (window 1, 2, 4, 8),
 * then one per 16 (64 runs, the last reaching page 1038): 68 faults and
 * 15 + 64 x 16 pages installed; a read of every third page has no
 * stream and installs nothing around (pages_prefetch is fault-around
 * here: no prefetch option).
 */
static void test_around_window(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", NULL };
	char *out;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 1));
	read_pages(&g, 1024, 1);
	LM_ASSERT(t_verify(&g, 0, 1024 * 4096, false) < 0, "content");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
	out = t_slurp(d.out);
	LM_ASSERT(last_stat(out, "\"faults\":") == 68 &&
		  last_stat(out, "\"pages_demand\":") == 68 &&
		  last_stat(out, "\"pages_prefetch\":") == 15 + 64 * 16 - 68,
		  "in order: expected 68 faults, 68 demand, 971 around: %s",
		  out);
	free(out);

	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 1));
	read_pages(&g, 3072, 3);
	/* only the pages read: a read of the others would fault in order */
	for (uint64_t i = 0; i < 3072; i += 3)
		LM_ASSERT(t_verify(&g, i * 4096, 4096, false) < 0,
			  "content of page %llu", (unsigned long long)i);
	fc_guest_stop(&g);
	/* vm 1 was t_daemon_start's probe connection, vm 2 the first */
	LM_ASSERT(t_wait_for(d.out, "\"vm\":3", 5000),
		  "no statistics on the second disconnect");
	out = t_slurp(d.out);
	LM_ASSERT(last_stat(out, "\"pages_prefetch\":") == 0,
		  "scattered: fault-around installed pages: %s", out);
	free(out);
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_4k),
		cmocka_unit_test(test_prefetch_all),
		cmocka_unit_test(test_around_window),
	};

	LM_ASSERT(argc > 1, "usage: fc_serve PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
