/*
 * fc_many.c - several VMs at once, each its own process (as Firecracker
 * VMs are), all restored from the same memory file: every one sees the
 * file's content, each gets its own statistics line with its own pid,
 * and the handler holds no private copy of the file per VM.
 */
#include "fc_test.h"

#define SIZE (16ull << 20)
#define VMS 4

/* One VM: restore, touch from two threads, verify, and exit 0 if right. */
static int vm_main(const char *sock)
{
	struct fc_guest g;

	if (fc_guest_start(&g, sock, SIZE, 4096, 2))
		return 2;
	t_touch(&g, 0, SIZE, 2);
	if (t_verify(&g, 0, SIZE, false) >= 0)
		return 3;
	fc_guest_stop(&g);
	return 0;
}

static void test_many(void **state)
{
	struct t_daemon d = { 0 };
	const char *extra[] = { "--json", NULL };
	pid_t pid[VMS];
	char *out, want[64];

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, extra);
	for (int i = 0; i < VMS; i++) {
		pid[i] = fork();
		LM_ASSERT(pid[i] >= 0, "fork");
		if (pid[i] == 0)
			_exit(vm_main(d.sock));
	}
	for (int i = 0; i < VMS; i++) {
		int st;

		LM_ASSERT(waitpid(pid[i], &st, 0) == pid[i], "waitpid");
		LM_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "VM %d (pid %d) failed: status 0x%x", i, (int)pid[i],
			  st);
	}
	for (int i = 0; i < VMS; i++) {
		snprintf(want, sizeof(want), "\"pid\":%d,", (int)pid[i]);
		LM_ASSERT(t_wait_for(d.out, want, 5000),
			  "no statistics for VM pid %d", (int)pid[i]);
	}
	out = t_slurp(d.out);
	/* Each VM had each page installed once (on its fault or by
	 * fault-around). */
	for (char *p = out; (p = strstr(p, "\"pages_demand\":")); p++) {
		char *q = strstr(p, "\"pages_prefetch\":");

		LM_ASSERT(q && atol(p + 15) + atol(q + 17) == (long)(SIZE / 4096),
			  "stats: %s", out);
	}
	free(out);
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many),
	};

	LM_ASSERT(argc > 1, "usage: fc_many PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
