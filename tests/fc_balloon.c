/*
 * fc_balloon.c - a balloon in the middle of guest memory: after
 * MADV_DONTNEED (the REMOVE event), pages in the removed range read as
 * zero, whether they had been faulted in before or never; pages outside
 * keep the memory file's content; removed pages are not prefetched again.
 */
#include <stdatomic.h>

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

/* A guest reading in order: faults become sequential and install 16
 * pages at once, but never across the balloon's edges. */
static void test_balloon_sequential(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	uint64_t sum = 0;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, NULL);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 1));
	LM_OK(fc_guest_balloon(&g, HOLE_OFF + 4096, HOLE_LEN - 8192));
	for (uint64_t off = 0; off < SIZE; off += 4096)
		sum += *(volatile uint8_t *)(g.mem + off);
	(void)sum;
	LM_ASSERT(t_verify(&g, 0, HOLE_OFF + 4096, false) < 0, "before");
	LM_ASSERT(t_verify(&g, HOLE_OFF + 4096, HOLE_LEN - 8192, true) < 0,
		  "in the balloon");
	LM_ASSERT(t_verify(&g, HOLE_OFF + HOLE_LEN - 4096,
			   SIZE - HOLE_OFF - HOLE_LEN + 4096, false) < 0,
		  "after the balloon: %lld",
		  (long long)t_verify(&g, HOLE_OFF + HOLE_LEN - 4096,
				      SIZE - HOLE_OFF - HOLE_LEN + 4096, false));
	fc_guest_stop(&g);
	t_cleanup(&d);
}

static void test_balloon_with_prefetch_all(void **state)
{
	(void)state;
	LM_REQUIRE_UFFD();
	balloon_case("all", false);
}

/* ---- a balloon storm: REMOVE events racing faults ---- */

struct storm {
	struct fc_guest *g;
	_Atomic bool stop;
	_Atomic uint64_t bad_at;	/* offset + 1 of a wrong byte */
	unsigned seed;
};

static void *storm_balloon(void *arg)
{
	struct storm *st = arg;

	while (!atomic_load(&st->stop))
		if (fc_guest_balloon(st->g, HOLE_OFF, HOLE_LEN))
			break;
	return NULL;
}

/* Read pages all over memory: outside the balloon they must hold the
 * file's content, inside it zero, whatever the removals in between. */
static void *storm_touch(void *arg)
{
	struct storm *st = arg;
	uint64_t x = st->seed * 0x9e3779b97f4a7c15ull + 1;

	while (!atomic_load(&st->stop)) {
		uint64_t off, w;
		bool in;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (x % (SIZE / 8)) * 8;
		in = off >= HOLE_OFF && off < HOLE_OFF + HOLE_LEN;
		w = *(volatile uint64_t *)(volatile void *)(st->g->mem + off);
		if (w != (in ? 0 : t_word(off, 4096)))
			atomic_store(&st->bad_at, off + 1);
	}
	return NULL;
}

static void test_balloon_storm(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", NULL };
	struct storm st = { .g = &g };
	struct storm t[3];
	pthread_t tid[4];
	char *out, *p;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	LM_OK(fc_guest_balloon(&g, HOLE_OFF, HOLE_LEN));
	pthread_create(&tid[0], NULL, storm_balloon, &st);
	for (unsigned i = 0; i < 3; i++) {
		t[i] = (struct storm){ .g = &g, .seed = i + 1 };
		pthread_create(&tid[1 + i], NULL, storm_touch, &t[i]);
	}
	usleep(1000000);
	atomic_store(&st.stop, true);
	for (unsigned i = 0; i < 3; i++)
		atomic_store(&t[i].stop, true);
	for (unsigned i = 0; i < 4; i++)
		pthread_join(tid[i], NULL);
	for (unsigned i = 0; i < 3; i++)
		LM_ASSERT(!atomic_load(&t[i].bad_at), "wrong word at %llu",
			  (unsigned long long)atomic_load(&t[i].bad_at) - 1);
	LM_ASSERT(t_verify(&g, 0, HOLE_OFF, false) < 0, "before the balloon");
	LM_ASSERT(t_verify(&g, HOLE_OFF, HOLE_LEN, true) < 0, "in the balloon");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
	out = t_slurp(d.out);
	p = strstr(out, "\"events\":");
	LM_ASSERT(p && atol(p + 9) > 10, "REMOVE events seen: %s", out);
	print_message("storm: %s", out);
	free(out);
	t_cleanup(&d);
}

/*
 * Removals racing the background fill all over memory: a page the
 * balloon removed (flagged after its madvise returned) must read zero
 * ever after, even if the filler was installing it at that moment.
 */
#define BIG (256ull << 20)
#define CHUNK (64ull << 10)

struct race {
	struct fc_guest *g;
	_Atomic uint8_t *removed;	/* per chunk */
	_Atomic bool stop;
};

static void *race_balloon(void *arg)
{
	struct race *rc = arg;
	uint64_t x = 88172645463325252ull;

	while (!atomic_load(&rc->stop)) {
		uint64_t c;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		c = x % (BIG / CHUNK);
		if (fc_guest_balloon(rc->g, c * CHUNK, CHUNK))
			break;
		atomic_store(&rc->removed[c], 1);
		usleep(20);
	}
	return NULL;
}

static void test_balloon_races_prefetch_all(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", "--prefetch", "all", NULL };
	struct race rc = { .g = &g };
	pthread_t tid;
	uint64_t flagged = 0;

	(void)state;
	LM_REQUIRE_UFFD();
	rc.removed = calloc(BIG / CHUNK, 1);
	t_make_mem(&d, BIG);
	t_daemon_start(&d, extra);
	LM_OK(fc_guest_start(&g, d.sock, BIG, 4096, 2));
	(void)*(volatile uint8_t *)g.mem;	/* the first fault */
	pthread_create(&tid, NULL, race_balloon, &rc);
	usleep(400000);
	atomic_store(&rc.stop, true);
	pthread_join(tid, NULL);
	for (uint64_t c = 0; c < BIG / CHUNK; c++) {
		bool rm = atomic_load(&rc.removed[c]);
		int64_t bad = t_verify(&g, c * CHUNK, CHUNK, rm);

		flagged += rm;
		LM_ASSERT(bad < 0, "byte %lld in a %s chunk is wrong",
			  (long long)bad, rm ? "removed" : "kept");
	}
	print_message("race: %llu of %llu chunks removed during the fill\n",
		      (unsigned long long)flagged,
		      (unsigned long long)(BIG / CHUNK));
	fc_guest_stop(&g);
	free((void *)rc.removed);
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_balloon_after_touch),
		cmocka_unit_test(test_balloon_untouched),
		cmocka_unit_test(test_balloon_sequential),
		cmocka_unit_test(test_balloon_with_prefetch_all),
		cmocka_unit_test(test_balloon_storm),
		cmocka_unit_test(test_balloon_races_prefetch_all),
	};

	LM_ASSERT(argc > 1, "usage: fc_balloon PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
