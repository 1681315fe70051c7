/*
 * fc_peer.c - when either side misbehaves nobody hangs: a VMM killed in
 * the middle is cleaned up (statistics printed, the next VM served); a
 * fault the handler cannot serve (outside every announced region, or the
 * memory file shrank) is reported with its reason, and the VMM is killed
 * with --kill-peer-on-error or gets SIGBUS on that access without it.
 */
#include "fc_test.h"

#define SIZE (8ull << 20)

/* A VMM that registered all of SIZE but announced only the first half,
 * then touches `at`. */
static int liar_main(const char *sock, uint64_t at, bool announce_all)
{
	struct fc_guest g;
	char *json;

	/* cmocka's handlers would catch the SIGBUS in this child. */
	signal(SIGBUS, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	if (fc_guest_map(&g, SIZE, 4096, 1) || fc_guest_register(&g))
		return 2;
	if (!announce_all)
		g.size = SIZE / 2;
	json = fc_guest_json(&g);
	g.size = SIZE;
	if (fc_client_send(sock, json, strlen(json), &g.uffd, 1, &g.sock))
		return 3;
	free(json);
	return (int)*(volatile uint8_t *)(g.mem + at) + 4;
}

static int run_liar(struct t_daemon *d, uint64_t at, bool announce_all)
{
	int st;
	pid_t pid = fork();

	LM_ASSERT(pid >= 0, "fork");
	if (pid == 0)
		_exit(liar_main(d->sock, at, announce_all));
	LM_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	return st;
}

static void test_peer_killed(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	pid_t pid;
	int st;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, NULL);
	pid = fork();
	LM_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		if (fc_guest_start(&g, d.sock, SIZE, 4096, 1))
			_exit(2);
		for (;;)	/* touch for ever, slowly */
			for (uint64_t o = 0; o < SIZE; o += 4096) {
				(void)*(volatile uint8_t *)(g.mem + o);
				usleep(100);
			}
	}
	LM_ASSERT(t_wait_for(d.err, "serving 1 region", 5000), "not served");
	usleep(100000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	LM_ASSERT(t_wait_for(d.out, "disconnected", 5000),
		  "killed VMM not cleaned up");
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 1));
	t_touch(&g, 0, SIZE, 2);
	LM_ASSERT(t_verify(&g, 0, SIZE, false) < 0, "next VM content");
	fc_guest_stop(&g);
	t_cleanup(&d);
}

static void test_unserved_fault_kills_peer(void **state)
{
	struct t_daemon d = { 0 };
	const char *extra[] = { "--kill-peer-on-error", NULL };
	int st;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	st = run_liar(&d, SIZE / 2 + 4096, false);
	LM_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		  "peer not killed (status 0x%x)", st);
	LM_ASSERT(t_wait_for(d.err, "outside every region the VMM announced",
			     5000), "no reason given");
	LM_ASSERT(t_wait_for(d.err, "killing the peer", 5000), "no kill said");
	t_cleanup(&d);
}

static void test_unserved_fault_sigbus(void **state)
{
	struct t_daemon d = { 0 };
	int st;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, NULL);
	st = run_liar(&d, SIZE / 2 + 4096, false);
	LM_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
		  "access should fail with SIGBUS (status 0x%x)", st);
	LM_ASSERT(t_wait_for(d.err, "the page is poisoned", 5000),
		  "no reason given");
	t_cleanup(&d);
}

static void test_file_shrank(void **state)
{
	struct t_daemon d = { 0 };
	const char *extra[] = { "--kill-peer-on-error", NULL };
	int st;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_ASSERT(truncate(d.mem, SIZE / 2) == 0, "truncate");
	st = run_liar(&d, SIZE - 4096, true);
	/* The fault path poisons the page as it fails it, so the access may
	 * take its SIGBUS before the kill lands: either way, not hung. */
	LM_ASSERT(WIFSIGNALED(st) && (WTERMSIG(st) == SIGKILL ||
				      WTERMSIG(st) == SIGBUS),
		  "peer neither killed nor failed (status 0x%x)", st);
	LM_ASSERT(t_wait_for(d.err, "killing the peer", 5000), "no kill said");
	LM_ASSERT(t_wait_for(d.err, "cannot be served: No data available",
			     5000), "no reason given");
	LM_ASSERT(t_wait_for(d.err, "file offset 0x7ff000", 5000),
		  "the page is not named");
	t_cleanup(&d);
}

/* With --kill-peer-on-error a refused VMM is killed rather than left to
 * hang on its first fault. */
static void test_refused_peer_killed(void **state)
{
	struct t_daemon d = { 0 };
	const char *extra[] = { "--kill-peer-on-error", NULL };
	pid_t pid;
	int st;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	pid = fork();
	LM_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		struct fc_guest g;
		char *json;

		if (fc_guest_map(&g, SIZE, 4096, 1) || fc_guest_register(&g))
			_exit(2);
		g.size = 2 * SIZE;	/* larger than the memory file */
		json = fc_guest_json(&g);
		if (fc_client_send(d.sock, json, strlen(json), &g.uffd, 1,
				   &g.sock))
			_exit(3);
		for (;;)	/* would hang here */
			(void)*(volatile uint8_t *)g.mem;
	}
	LM_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	LM_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		  "refused peer not killed (status 0x%x)", st);
	LM_ASSERT(t_wait_for(d.err, "does not fit the memory file", 5000),
		  "no reason given");
	LM_ASSERT(t_wait_for(d.err, "its guest would hang", 5000),
		  "kill not said");
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_killed),
		cmocka_unit_test(test_unserved_fault_kills_peer),
		cmocka_unit_test(test_unserved_fault_sigbus),
		cmocka_unit_test(test_file_shrank),
		cmocka_unit_test(test_refused_peer_killed),
	};

	LM_ASSERT(argc > 1, "usage: fc_peer PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
