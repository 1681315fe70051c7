/*
 * net_util.h - what the network tests share: a source (page server) run in
 * a thread or a forked process, toucher threads standing in for vCPUs, and
 * a destination region over the network page source.
 */
#ifndef LAZYMEM_TEST_NET_UTIL_H
#define LAZYMEM_TEST_NET_UTIL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "lm_test.h"
#include "net/net.h"
#include "util/error.h"

/* ThreadSanitizer cannot follow fork() in a threaded process. */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#ifndef T_TSAN
#define T_TSAN 0
#endif

struct t_src {
	struct lm_net_server_config cfg;
	struct lm_net_server *s;
	pthread_t thread;
	int rc;
	_Atomic int connected;
	pid_t pid;
	int pipe[2];		/* t_src_fork: the address, to the child */
	char msg[512];		/* the source thread's util_last_error() */
};

static void *t_src_main(void *arg)
{
	struct t_src *t = arg;

	t->rc = lm_net_server_create(&t->cfg, &t->s);
	if (!t->rc)
		t->rc = lm_net_server_connect(t->s);
	atomic_store(&t->connected, t->rc ? -1 : 1);
	if (!t->rc)
		t->rc = lm_net_server_serve(t->s);
	if (t->rc) {
		snprintf(t->msg, sizeof(t->msg), "%s", util_last_error());
		print_message("source: %s\n", t->msg);
	}
	return NULL;
}

/* The source in a thread of this process. */
static inline void t_src_thread(struct t_src *t)
{
	atomic_store(&t->connected, 0);
	t->pid = 0;
	pthread_create(&t->thread, NULL, t_src_main, t);
}

/*
 * The source in a child process: exits 0 when the destination said DONE.
 * Forked *before* this process starts any thread (the destination's
 * threads come later): fork in a threaded process leaves the child with
 * whatever locks other threads held (a sanitizer's allocator, say), which
 * hung one run in ten under ASan. The child waits for the destination's
 * address on a pipe (t_src_go). Under TSan, a thread instead.
 */
static inline void t_src_fork(struct t_src *t)
{
	t->pid = 0;
	if (T_TSAN || pipe(t->pipe) < 0)
		return;
	t->pid = fork();
	if (t->pid == 0) {
		char addr[128];
		ssize_t n;

		close(t->pipe[1]);
		n = read(t->pipe[0], addr, sizeof(addr) - 1);
		if (n <= 0)
			_exit(2);
		addr[n] = '\0';
		t->cfg.to = addr;
		t_src_main(t);
		_exit(t->rc ? 1 : 0);
	}
	close(t->pipe[0]);
}

/* Start the source (forked or not) towards addr. */
static inline void t_src_go(struct t_src *t, const char *addr)
{
	if (t->pid > 0) {
		if (write(t->pipe[1], addr, strlen(addr)) < 0)
			fail_msg("cannot tell the source where to go");
		close(t->pipe[1]);
		return;
	}
	t->cfg.to = addr;
	t_src_thread(t);
}

/* 0 when the source finished well. */
static inline int t_src_join(struct t_src *t)
{
	int st = 0;

	if (t->pid > 0) {
		waitpid(t->pid, &st, 0);
		return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
	}
	pthread_join(t->thread, NULL);
	lm_net_server_destroy(t->s);
	return t->rc;
}

struct t_toucher {
	uint8_t *base;
	uint64_t first, n, page_size, seed;
	pthread_t thread;
};

/* Read one word of each page of [first, first + n) in a scrambled order. */
static void *t_touch_main(void *arg)
{
	struct t_toucher *t = arg;
	uint64_t step = 7919 % t->n ? 7919 : 7927;

	for (uint64_t k = 0; k < t->n; k++) {
		uint64_t p = t->first + (k * step + t->seed) % t->n;

		(void)*(volatile uint64_t *)(void *)(t->base + p * t->page_size);
	}
	return NULL;
}

static inline void t_touch(uint8_t *base, uint64_t pages, uint64_t ps,
			   unsigned nthreads)
{
	struct t_toucher t[8];

	for (unsigned i = 0; i < nthreads; i++) {
		t[i] = (struct t_toucher){ .base = base,
					   .first = pages / nthreads * i,
					   .n = pages / nthreads,
					   .page_size = ps, .seed = i * 13 };
		pthread_create(&t[i].thread, NULL, t_touch_main, &t[i]);
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i].thread, NULL);
}

static inline void *t_map(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline void t_layout(struct lm_net_layout *l, uint64_t size)
{
	char why[256];

	LM_ASSERT(lm_net_layout_init(l, 4096, &size, 1, why, sizeof(why)) == 0,
		  "%s", why);
}

#endif
