/*
 * fc_test.h - what the fc-handler tests share: a memory file with a known
 * pattern (and holes), the handler daemon run as a child process (the
 * real `lazymem fc-handler`, its output captured), and guests made by the
 * Firecracker-like client in src/fcproto/client.c touching memory from
 * threads and checking every byte against the file.
 */
#ifndef LAZYMEM_FC_TEST_H
#define LAZYMEM_FC_TEST_H

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "lm_test.h"
#include "fcproto/client.h"

#define T_SALT 0x1234
#define T_HOLE_EVERY 8		/* page k with k % 8 == 5 is a hole */

static const char *t_lazymem;	/* the lazymem binary, argv[1] */

struct t_daemon {
	pid_t pid;
	char dir[64];
	char sock[100], mem[100], out[100], err[100];
	uint64_t mem_size;
};

static inline uint64_t t_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Expected byte content of the memory file at off (words). */
static inline uint64_t t_word(uint64_t off, uint64_t page_size)
{
	(void)page_size;
	if ((off / 4096) % T_HOLE_EVERY == 5)
		return 0;
	return t_pattern(off / 8, T_SALT);
}

/* Make dir/mem: size bytes of the pattern, every 8th 4 KiB block a hole. */
static inline void t_make_mem(struct t_daemon *d, uint64_t size)
{
	char tmpl[] = "/tmp/lazymem-fc-XXXXXX";
	uint64_t *page = malloc(4096);
	int fd;

	LM_ASSERT(mkdtemp(tmpl), "mkdtemp");
	snprintf(d->dir, sizeof(d->dir), "%s", tmpl);
	snprintf(d->sock, sizeof(d->sock), "%s/fc.sock", d->dir);
	snprintf(d->mem, sizeof(d->mem), "%s/mem", d->dir);
	snprintf(d->out, sizeof(d->out), "%s/out", d->dir);
	snprintf(d->err, sizeof(d->err), "%s/err", d->dir);
	fd = open(d->mem, O_CREAT | O_RDWR | O_TRUNC, 0600);
	LM_ASSERT(fd >= 0, "create %s", d->mem);
	LM_ASSERT(ftruncate(fd, (off_t)size) == 0, "ftruncate");
	for (uint64_t off = 0; off < size; off += 4096) {
		if ((off / 4096) % T_HOLE_EVERY == 5)
			continue;
		for (unsigned k = 0; k < 512; k++)
			page[k] = t_word(off + k * 8, 4096);
		LM_ASSERT(pwrite(fd, page, 4096, (off_t)off) == 4096, "pwrite");
	}
	close(fd);
	free(page);
	d->mem_size = size;
}

static inline bool t_connectable(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

/* Start `lazymem fc-handler --socket S --mem-file M extra...` and wait
 * until it listens. */
static inline void t_daemon_start(struct t_daemon *d, const char *const *extra)
{
	const char *argv[32] = { t_lazymem, "fc-handler", "--socket", d->sock,
				 "--mem-file", d->mem };
	int n = 6;

	for (; extra && *extra; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	unlink(d->sock);
	d->pid = fork();
	LM_ASSERT(d->pid >= 0, "fork");
	if (d->pid == 0) {
		int o = open(d->out, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		int e = open(d->err, O_CREAT | O_WRONLY | O_TRUNC, 0600);

		/* A test killed by its timeout takes its daemon along. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);

		dup2(o, 1);
		dup2(e, 2);
		execv(t_lazymem, (char *const *)argv);
		_exit(127);
	}
	for (uint64_t t0 = t_now_ms(); !t_connectable(d->sock);) {
		int st;

		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = -1;
			fail_msg("fc-handler exited at start (status 0x%x)", st);
		}
		LM_ASSERT(t_now_ms() - t0 < 10000, "fc-handler never listened");
		usleep(5000);
	}
}

/* SIGTERM, wait; returns the exit status. */
static inline int t_daemon_stop(struct t_daemon *d)
{
	int st = -1;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, &st, 0);
	d->pid = -1;
	return st;
}

/* Whole content of one of the daemon's output files (malloc'd). */
static inline char *t_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *b = calloc(1, 1 << 20);
	size_t n;

	if (!f)
		return b;
	n = fread(b, 1, (1 << 20) - 1, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

/* Wait (up to ms) until the file contains needle. */
static inline bool t_wait_for(const char *path, const char *needle, int ms)
{
	for (uint64_t t0 = t_now_ms(); t_now_ms() - t0 < (uint64_t)ms;) {
		char *b = t_slurp(path);
		bool hit = strstr(b, needle) != NULL;

		free(b);
		if (hit)
			return true;
		usleep(10000);
	}
	return false;
}

/* Stop the daemon, which must exit 0 (a sanitizer report or a leak in
 * it fails the test, with its log), and remove the files. */
static inline void t_cleanup(struct t_daemon *d)
{
	char cmd[256];
	bool running = d->pid > 0;
	int st = t_daemon_stop(d);

	if (running && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		char *err = t_slurp(d->err);

		fail_msg("fc-handler exited with status 0x%x; its log:\n%s", st,
			 err);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		print_message("cannot remove %s\n", d->dir);
}

/* ---- guests ---- */

struct t_toucher {
	const struct fc_guest *g;
	uint64_t first, end;	/* byte range to touch */
	unsigned seed, stride;
	uint64_t sum;
};

/* Read one word of every 4 KiB block of [first, end), in a scrambled
 * order, so threads contend and faults arrive out of order. */
static inline void *t_touch_main(void *arg)
{
	struct t_toucher *t = arg;
	uint64_t n = (t->end - t->first) / 4096, s = 2 * t->seed + 1;

	while (n && n % s == 0)
		s += 2;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = (i * s + t->seed) % n;

		t->sum += *(volatile uint64_t *)(volatile void *)(t->g->mem + t->first + p * 4096
						 + (i % 512) * 8);
	}
	return NULL;
}

static inline void t_touch(const struct fc_guest *g, uint64_t off,
			   uint64_t len, unsigned threads)
{
	pthread_t tid[16];
	struct t_toucher t[16];

	for (unsigned i = 0; i < threads; i++) {
		t[i] = (struct t_toucher){ .g = g, .first = off,
					   .end = off + len, .seed = i };
		LM_ASSERT(pthread_create(&tid[i], NULL, t_touch_main, &t[i]) == 0,
			  "pthread_create");
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
}

/* First offset in [off, off+len) whose content is not the file's (or not
 * zero when zero is set), or -1. */
static inline int64_t t_verify(const struct fc_guest *g, uint64_t off,
			       uint64_t len, bool zero)
{
	const uint64_t *w = (const uint64_t *)(const void *)(g->mem + off);

	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != (zero ? 0 : t_word(off + i * 8, g->page_size)))
			return (int64_t)(off + i * 8);
	return -1;
}

#endif
