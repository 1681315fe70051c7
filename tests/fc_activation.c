/*
 * fc_activation.c - `lazymem fc-handler` started the way systemd starts a
 * socket-activated service: this test is the launcher (it creates, binds
 * and listens on the Unix socket, forks, moves the socket to fd 3, sets
 * LISTEN_FDS=1 and LISTEN_PID to the child's pid, execs the daemon). The
 * daemon serves a guest on that socket and leaves the socket file to its
 * owner when it stops. A LISTEN_PID naming another process, a descriptor
 * that is not a listening Unix stream socket, LISTEN_FDS other than 1, a
 * missing LISTEN_FDS and a --socket that names another path are refused,
 * each with a message saying which.
 */
#include "fc_test.h"

#define SIZE (8ull << 20)

enum { PID_RIGHT, PID_WRONG, PID_UNSET };

/* A listening (or only bound) Unix stream socket at path. */
static int t_listener(const char *path, bool listening)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	LM_ASSERT(s >= 0, "socket");
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	LM_ASSERT(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %s",
		  path);
	LM_ASSERT(!listening || listen(s, 16) == 0, "listen");
	return s;
}

/*
 * Fork and exec `lazymem fc-handler args...` with fd3 as descriptor 3
 * (-1: nothing there), LISTEN_FDS=listen_fds (NULL: unset) and LISTEN_PID
 * as pid_mode says. The launcher's copy of fd3 is closed, as systemd's is
 * not, but nothing here needs it after the fork.
 */
static void t_launch(struct t_daemon *d, int fd3, const char *listen_fds,
		     int pid_mode, const char *const *args)
{
	const char *argv[32] = { t_lazymem, "fc-handler" };
	int n = 2;

	for (; args && *args; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	d->pid = fork();
	LM_ASSERT(d->pid >= 0, "fork");
	if (d->pid == 0) {
		int o = open(d->out, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		int e = open(d->err, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		char pid[32];

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(o, 1);
		dup2(e, 2);
		if (fd3 < 0)
			close(3);
		else if (fd3 == 3)
			fcntl(3, F_SETFD, 0);	/* keep it across exec */
		else if (dup2(fd3, 3) < 0)
			_exit(126);
		if (listen_fds)
			setenv("LISTEN_FDS", listen_fds, 1);
		else
			unsetenv("LISTEN_FDS");
		snprintf(pid, sizeof(pid), "%d",
			 (int)(pid_mode == PID_WRONG ? getppid() : getpid()));
		if (pid_mode == PID_UNSET)
			unsetenv("LISTEN_PID");
		else
			setenv("LISTEN_PID", pid, 1);
		execv(t_lazymem, (char *const *)argv);
		_exit(127);
	}
	if (fd3 >= 0)
		close(fd3);
}

/* Serve a guest on d->sock and verify every byte. */
static void t_serve(struct t_daemon *d)
{
	struct fc_guest g;
	int64_t bad;

	LM_OK(fc_guest_start(&g, d->sock, SIZE, 4096, 2));
	t_touch(&g, 0, SIZE, 2);
	bad = t_verify(&g, 0, SIZE, false);
	LM_ASSERT(bad < 0, "guest byte %lld differs from the memory file",
		  (long long)bad);
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d->out, "\"event\":\"disconnected\"", 5000),
		  "no statistics on disconnect");
}

/* Stop the daemon: it must exit 0 and leave the socket file in place
 * (systemd owns it). Then remove the test's files. */
static void t_stop_activated(struct t_daemon *d)
{
	struct stat st;
	int status = t_daemon_stop(d);
	char *err = t_slurp(d->err);

	LM_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "fc-handler exited with status 0x%x; its log:\n%s", status,
		  err);
	free(err);
	LM_ASSERT(lstat(d->sock, &st) == 0 && S_ISSOCK(st.st_mode),
		  "the daemon removed the socket systemd passed it");
	t_cleanup(d);
}

static void test_activated_serves(void **state)
{
	struct t_daemon d = { 0 };
	char want[160];
	const char *args[] = { "--socket-activated", "--mem-file", d.mem,
			       "--json", NULL };

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_launch(&d, t_listener(d.sock, true), "1", PID_RIGHT, args);
	snprintf(want, sizeof(want), "listening on %s (socket from systemd)",
		 d.sock);
	LM_ASSERT(t_wait_for(d.err, want, 10000), "no '%s' in the log", want);
	t_serve(&d);
	/* The next VM too. */
	t_serve(&d);
	t_stop_activated(&d);
}

/* No --socket and no flag: LISTEN_FDS alone selects activation. A
 * --socket naming the same path as the passed socket is fine too. */
static void test_implied(void **state)
{
	struct t_daemon d = { 0 };
	const char *bare[] = { "--mem-file", d.mem, "--json", NULL };
	const char *same[] = { "--socket", d.sock, "--mem-file", d.mem,
			       "--json", NULL };

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_launch(&d, t_listener(d.sock, true), "1", PID_RIGHT, bare);
	LM_ASSERT(t_wait_for(d.err, "(socket from systemd)", 10000),
		  "not activated without --socket");
	t_serve(&d);
	LM_ASSERT(WIFEXITED(t_daemon_stop(&d)), "stop");

	t_launch(&d, t_listener(d.sock, true), "1", PID_RIGHT, same);
	LM_ASSERT(t_wait_for(d.err, "(socket from systemd)", 10000),
		  "--socket at the passed path: not activated");
	t_serve(&d);
	t_stop_activated(&d);
}

/* Run a launch that must be refused: exit status 1 or 2 and needle in
 * the log. */
static void t_refused(struct t_daemon *d, int fd3, const char *listen_fds,
		      int pid_mode, const char *const *args, const char *needle)
{
	uint64_t t0 = t_now_ms();
	int st = 0;
	char *err;

	t_launch(d, fd3, listen_fds, pid_mode, args);
	while (waitpid(d->pid, &st, WNOHANG) != d->pid) {
		if (t_now_ms() - t0 > 10000) {
			t_daemon_stop(d);
			fail_msg("fc-handler did not refuse (%s)", needle);
		}
		usleep(5000);
	}
	d->pid = -1;
	err = t_slurp(d->err);
	LM_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) != 0 && strstr(err, needle),
		  "want a refusal with '%s'; status 0x%x, log:\n%s", needle, st,
		  err);
	print_message("refused: %s", err);
	free(err);
}

static void test_wrong_pid(void **state)
{
	struct t_daemon d = { 0 };
	const char *flag[] = { "--socket-activated", "--mem-file", d.mem, NULL };
	const char *bare[] = { "--mem-file", d.mem, NULL };
	char other[100];
	const char *own[] = { "--socket", other, "--mem-file", d.mem, NULL };

	(void)state;
	t_make_mem(&d, 1 << 20);
	t_refused(&d, t_listener(d.sock, true), "1", PID_WRONG, flag,
		  "is not this process");
	t_refused(&d, t_listener(d.sock, true), "1", PID_WRONG, bare,
		  "the passed sockets are meant for another process");
	t_refused(&d, t_listener(d.sock, true), "1", PID_UNSET, flag,
		  "LISTEN_PID=(unset) is not this process");
	/* With a --socket of its own, variables meant for another process
	 * are ignored (sd_listen_fds does the same): it listens there. */
	snprintf(other, sizeof(other), "%s/own.sock", d.dir);
	t_launch(&d, t_listener(d.sock, true), "1", PID_WRONG, own);
	LM_ASSERT(t_wait_for(d.err, "listening on ", 10000), "did not start");
	LM_ASSERT(t_connectable(other), "not listening on its own --socket");
	{
		char *err = t_slurp(d.err);

		LM_ASSERT(!strstr(err, "from systemd"), "log: %s", err);
		free(err);
	}
	t_cleanup(&d);
}

static void test_bad_descriptor(void **state)
{
	struct t_daemon d = { 0 };
	const char *flag[] = { "--socket-activated", "--mem-file", d.mem, NULL };
	char other[100];
	const char *elsewhere[] = { "--socket", other, "--socket-activated",
				    "--mem-file", d.mem, NULL };
	int p[2], udp;

	(void)state;
	t_make_mem(&d, 1 << 20);
	LM_ASSERT(pipe2(p, O_CLOEXEC) == 0, "pipe");
	close(p[1]);
	t_refused(&d, p[0], "1", PID_RIGHT, flag, "fd 3 is not a socket");
	t_refused(&d, t_listener(d.sock, false), "1", PID_RIGHT, flag,
		  "not listening");
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	LM_ASSERT(udp >= 0, "socket");
	t_refused(&d, udp, "1", PID_RIGHT, flag,
		  "fd 3 is a socket of the wrong kind (IPv4, datagram)");
	t_refused(&d, -1, "1", PID_RIGHT, flag, "fd 3 is not open");
	t_refused(&d, t_listener(d.sock, true), "2", PID_RIGHT, flag,
		  "LISTEN_FDS=2: expected exactly one listening socket");
	t_refused(&d, t_listener(d.sock, true), "x", PID_RIGHT, flag,
		  "LISTEN_FDS=x: expected exactly one");
	t_refused(&d, t_listener(d.sock, true), NULL, PID_RIGHT, flag,
		  "LISTEN_FDS is not set");
	snprintf(other, sizeof(other), "%s/other.sock", d.dir);
	t_refused(&d, t_listener(d.sock, true), "1", PID_RIGHT, elsewhere,
		  "is bound to");
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_activated_serves),
		cmocka_unit_test(test_implied),
		cmocka_unit_test(test_wrong_pid),
		cmocka_unit_test(test_bad_descriptor),
	};

	LM_ASSERT(argc > 1, "usage: fc_activation PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
