/*
 * fc_events.c - userfaultfd events a VMM may enable beyond Firecracker's
 * REMOVE: UNMAP (the range reads as removed, serving goes on), FORK (the
 * child's copy of guest memory is served as a VM of its own: pages the
 * parent had are the child's copies, the rest come from the file, the
 * parent's balloon stays zero), REMAP (not followed: said, and the peer
 * killed with --kill-peer-on-error).
 */
#include <linux/userfaultfd.h>
#include <sys/mman.h>

#include "fc_test.h"

#define SIZE (8ull << 20)
#define MB (1ull << 20)

static int start_guest(struct fc_guest *g, const char *sock, uint64_t feat)
{
	char *json;
	int err = fc_guest_map(g, SIZE, 4096, 1);

	if (err)
		return err;
	g->extra_features = feat;
	err = fc_guest_register(g);
	if (err)
		return err;
	json = fc_guest_json(g);
	err = fc_client_send(sock, json, strlen(json), &g->uffd, 1, &g->sock);
	free(json);
	return err;
}

static void test_unmap(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { "--json", NULL };
	char *out;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(start_guest(&g, d.sock, UFFD_FEATURE_EVENT_UNMAP));
	t_touch(&g, 0, 2 * MB, 2);
	LM_ASSERT(munmap(g.mem + 3 * MB, MB) == 0, "munmap");
	t_touch(&g, 0, 3 * MB, 2);
	t_touch(&g, 4 * MB, SIZE - 4 * MB, 2);
	LM_ASSERT(t_verify(&g, 0, 3 * MB, false) < 0, "before the hole");
	LM_ASSERT(t_verify(&g, 4 * MB, SIZE - 4 * MB, false) < 0, "after it");
	/* Read now: the final munmap in fc_guest_stop is an UNMAP too. */
	kill(d.pid, SIGUSR1);
	LM_ASSERT(t_wait_for(d.out, "sigusr1", 5000), "no stats");
	out = t_slurp(d.out);
	LM_ASSERT(strstr(out, "\"pages_removed\":256,"), "stats: %s", out);
	LM_ASSERT(strstr(out, "\"events\":1,"), "stats: %s", out);
	free(out);
	/* Put the hole back for fc_guest_stop's munmap. */
	LM_ASSERT(mmap(g.mem + 3 * MB, MB, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
		  MAP_FAILED, "mmap");
	fc_guest_stop(&g);
	t_cleanup(&d);
}

static void test_fork(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	const char *extra[] = { NULL };
	pid_t pid;
	int st;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	LM_OK(start_guest(&g, d.sock, UFFD_FEATURE_EVENT_FORK));
	/* The parent has the first 2 MiB and gave 1 MiB at 4 MiB back. */
	t_touch(&g, 0, 2 * MB, 2);
	memset(g.mem, 0x5a, 4096);
	LM_OK(fc_guest_balloon(&g, 4 * MB, MB));
	pid = fork();
	LM_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		t_touch(&g, 0, SIZE, 2);
		if (g.mem[7] != 0x5a)
			_exit(2);	/* not the parent's copy */
		if (t_verify(&g, 4096, 4 * MB - 4096, false) >= 0 ||
		    t_verify(&g, 4 * MB, MB, true) >= 0 ||
		    t_verify(&g, 5 * MB, SIZE - 5 * MB, false) >= 0)
			_exit(3);
		_exit(0);
	}
	LM_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	LM_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "child saw wrong memory (status 0x%x)", st);
	LM_ASSERT(t_wait_for(d.err, "its child's memory is served as vm", 5000),
		  "fork not reported");
	t_touch(&g, 0, SIZE, 2);
	LM_ASSERT(t_verify(&g, 4096, 4 * MB - 4096, false) < 0, "parent");
	LM_ASSERT(t_verify(&g, 4 * MB, MB, true) < 0, "parent's balloon");
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.err, "parent disconnected", 5000),
		  "child VM not cleaned up with its parent");
	t_cleanup(&d);
}

static void test_remap(void **state)
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
		uint8_t *to;

		signal(SIGBUS, SIG_DFL);
		if (start_guest(&g, d.sock, UFFD_FEATURE_EVENT_REMAP))
			_exit(2);
		to = mmap(NULL, MB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mremap(g.mem + MB, MB, MB, MREMAP_MAYMOVE | MREMAP_FIXED,
			   to) == MAP_FAILED)
			_exit(3);
		for (;;)
			(void)*(volatile uint8_t *)to;
	}
	LM_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	LM_ASSERT(WIFSIGNALED(st) && (WTERMSIG(st) == SIGKILL ||
				      WTERMSIG(st) == SIGBUS),
		  "peer neither killed nor failed (status 0x%x)", st);
	LM_ASSERT(t_wait_for(d.err, "the VMM moved its memory", 5000),
		  "remap not reported");
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unmap),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_remap),
	};

	LM_ASSERT(argc > 1, "usage: fc_events PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
