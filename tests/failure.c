/*
 * failure.c - a page whose source read fails fails the access visibly and
 * promptly: the faulting thread is told (SIGBUS on a poisoned page, or the
 * region's on_fail callback), the error names the page, and no thread
 * waits forever. A watchdog alarm turns a hang into a test failure.
 */
#include <signal.h>
#include <time.h>

#include "lm_test.h"

#define SIZE (1ull << 20)
#define BAD_OFF (37 * 4096ull)

static sigjmp_buf jump;
static volatile sig_atomic_t got_code;
static volatile uint64_t failed_off;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	got_code = si->si_code;
	siglongjmp(jump, 1);
}

static void on_fail(struct lm_region *r, uint64_t off, int err, void *arg)
{
	(void)r; (void)err; (void)arg;
	failed_off = off;
	siglongjmp(jump, 2);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "failure: a faulting access hung\n";

	if (write(2, m, sizeof(m) - 1) < 0)
		_exit(3);
	_exit(3);
}

static unsigned around;		/* fault-around of the next region */

static void make(enum lm_delivery d, enum lm_backing b, enum lm_install i,
		 bool background, struct lm_source **inner,
		 struct lm_source **src, struct lm_region **r)
{
	LM_OK(lm_source_zero_create(SIZE, inner));
	LM_OK(lm_source_failing_create(*inner, BAD_OFF, -EIO, src));
	struct lm_region_config rc = {
		.name = "failing", .size = SIZE, .backing = b, .install = i,
		.delivery = d, .source = *src, .background = background,
		.on_fail = on_fail, .fault_around = around,
	};
	LM_OK(lm_region_create(&rc, r));
}

static void check_access_fails(struct lm_region *r, int expect_jump)
{
	volatile uint8_t *p = lm_region_addr(r);
	static volatile double t0;
	struct timespec ts;
	int j;
	uint64_t off = 0;

	signal(SIGALRM, on_alarm);
	alarm(10);
	(void)p[0];				/* a good page still works */
	j = sigsetjmp(jump, 1);
	if (j == 0) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t0 = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		(void)p[BAD_OFF + 100];
		fail_msg("access to a failed page returned normally");
	}
	alarm(0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	LM_ASSERT((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - t0 < 1.0,
		  "failure took %.3f s, expected it promptly",
		  (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - t0);
	LM_ASSERT(j == expect_jump, "failure reported by %s, expected %s",
		  j == 1 ? "SIGBUS" : "on_fail",
		  expect_jump == 1 ? "SIGBUS" : "on_fail");
	if (j == 1)
		/* A UFFDIO_POISON marker raises BUS_MCEERR_AR on older
		 * kernels and BUS_ADRERR on newer ones (6.18 here). */
		LM_ASSERT(got_code == BUS_MCEERR_AR || got_code == BUS_ADRERR,
			  "SIGBUS code %d, expected a poisoned-page fault",
			  (int)got_code);
	else
		LM_ASSERT(failed_off == BAD_OFF, "on_fail named offset 0x%llx",
			  (unsigned long long)failed_off);
	LM_ASSERT(lm_region_error(r, &off) == -EIO && off == BAD_OFF,
		  "region error names the page: off 0x%llx",
		  (unsigned long long)off);
	/* Pages after the bad one are still served. */
	(void)p[BAD_OFF + 4096];
}

static void install_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static void run(enum lm_delivery d, enum lm_backing b, enum lm_install i,
		int expect)
{
	struct lm_source *inner, *src;
	struct lm_region *r;

	install_sigbus();
	make(d, b, i, false, &inner, &src, &r);
	check_access_fails(r, expect);
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_source_destroy(inner);
	signal(SIGBUS, SIG_DFL);
}

static void test_handler_anon(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_HANDLER, LM_BACKING_ANON, LM_INSTALL_COPY, 1);
}

static void test_handler_memfd_continue(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_HANDLER, LM_BACKING_MEMFD, LM_INSTALL_CONTINUE, 1);
}

static void test_self_anon(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_SELF, LM_BACKING_ANON, LM_INSTALL_COPY, 2);
}

static void test_self_memfd_continue(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run(LM_DELIVERY_SELF, LM_BACKING_MEMFD, LM_INSTALL_CONTINUE, 2);
}

/* A fault whose fault-around run covers the bad page still gets its own
 * page; only an access to the bad page itself fails. */
static void run_around(enum lm_delivery d, int expect)
{
	struct lm_source *inner, *src;
	struct lm_region *r;
	volatile uint8_t *p;

	install_sigbus();
	around = 8;
	make(d, LM_BACKING_ANON, LM_INSTALL_COPY, false, &inner, &src, &r);
	around = 0;
	p = lm_region_addr(r);
	if (d == LM_DELIVERY_SELF) {
		/* A self-resolving thread's window grows with its
		 * sequential stream: 1, 2, 4 pages, then 8 from BAD - 3. */
		(void)p[BAD_OFF - 10 * 4096];
		(void)p[BAD_OFF - 9 * 4096];
		(void)p[BAD_OFF - 7 * 4096];
	}
	(void)p[BAD_OFF - 3 * 4096];		/* run covers BAD_OFF */
	LM_ASSERT(lm_region_error(r, NULL) == 0,
		  "a neighbour's read error is not this page's");
	(void)p[BAD_OFF - 2 * 4096];
	check_access_fails(r, expect);
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_source_destroy(inner);
	signal(SIGBUS, SIG_DFL);
}

static void test_around_self(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_around(LM_DELIVERY_SELF, 2);
}

static void test_around_handler(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_around(LM_DELIVERY_HANDLER, 1);
}

/* Background fill meets the bad page first: it is recorded, the region
 * still completes, and a later access fails at once instead of retrying. */
static void test_background(void **s)
{
	struct lm_source *inner, *src;
	struct lm_region *r;
	uint64_t off = 0;

	(void)s;
	LM_REQUIRE_UFFD();
	install_sigbus();
	make(LM_DELIVERY_HANDLER, LM_BACKING_ANON, LM_INSTALL_COPY, true,
	     &inner, &src, &r);
	LM_ASSERT(lm_region_wait_complete(r, 10000) == -EIO,
		  "completion reports the failed page");
	LM_ASSERT(lm_region_error(r, &off) == -EIO && off == BAD_OFF,
		  "error offset 0x%llx", (unsigned long long)off);
	struct lm_stats st;
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_failed == 1, "pages_failed %llu",
		  (unsigned long long)st.pages_failed);
	check_access_fails(r, 1);
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_source_destroy(inner);
	signal(SIGBUS, SIG_DFL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handler_anon),
		cmocka_unit_test(test_handler_memfd_continue),
		cmocka_unit_test(test_self_anon),
		cmocka_unit_test(test_self_memfd_continue),
		cmocka_unit_test(test_background),
		cmocka_unit_test(test_around_self),
		cmocka_unit_test(test_around_handler),
	};

	return cmocka_run_group_tests_name("failure", tests, NULL, NULL);
}
