/*
 * handler.c - the classic delivery: threads that read fault messages from a
 * blocking userfaultfd and resolve them while the faulting thread sleeps.
 *
 * This is the way QEMU, Firecracker's example handler and CRIU serve
 * post-copy faults, kept both as the baseline lazymem is measured against
 * and as the path for accessors that cannot take SIGBUS (a VMM's own
 * threads in hybrid mode, kernel accesses through copy_from_user).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/region_internal.h"
#include "core/uffd.h"

/* Messages read per read(2): a burst of faults costs one system call. */
#define MSG_BATCH 16

static void serve_messages(struct lm_region *r, unsigned view,
			   const struct uffd_msg *m, size_t n)
{
	uintptr_t base = (uintptr_t)r->view[view].addr;

	for (size_t i = 0; i < n; i++) {
		if (m[i].event != UFFD_EVENT_PAGEFAULT)
			continue;
		/* Errors are recorded and the page poisoned by the fault
		 * path; the sleeper wakes into SIGBUS. Nothing more to do. */
		uint64_t off = m[i].arg.pagefault.address - base;

		if ((m[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) &&
		    lm__wp_fault(r, view, off, LM_ORIGIN_HANDLER) != 1)
			continue;
		lm__fault(r, view, off, LM_ORIGIN_HANDLER);
	}
}

static void *handler_main(void *arg)
{
	struct lm_region *r = arg;
	unsigned view = r->handlers.view;
	int uffd = r->view[view].uffd;
	struct pollfd pfd[2] = {
		{ .fd = uffd, .events = POLLIN },
		{ .fd = r->handlers.stop_fd, .events = POLLIN },
	};
	struct uffd_msg msg[MSG_BATCH];

	for (;;) {
		/* Read first and poll only when there is nothing: under a
		 * stream of faults this saves a system call per fault. */
		ssize_t n = read(uffd, msg, sizeof(msg));

		if (n > 0) {
			serve_messages(r, view, msg,
				       (size_t)n / sizeof(msg[0]));
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "lazymem: region '%s': reading "
				"userfaultfd: %s; handler thread exits\n",
				r->name, strerror(errno));
			break;
		}
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
	}
	return NULL;
}

int lm__handlers_start(struct lm_region *r, unsigned view, unsigned n,
		       const int *cpus)
{
	struct lm_handlers *h = &r->handlers;

	h->view = view;
	h->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (h->stop_fd < 0)
		return lm_error(-errno, "region '%s': eventfd: %s", r->name,
				strerror(errno));
	for (unsigned i = 0; i < n; i++) {
		pthread_attr_t attr;
		int err;

		pthread_attr_init(&attr);
		if (cpus && cpus[i] >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(cpus[i], &set);
			pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		err = pthread_create(&h->thread[i], &attr, handler_main, r);
		pthread_attr_destroy(&attr);
		if (err)
			return lm_error(-err, "region '%s': starting handler "
					"thread %u: %s", r->name, i,
					strerror(err));
		h->nr++;
	}
	return 0;
}

void lm__handlers_stop(struct lm_region *r)
{
	struct lm_handlers *h = &r->handlers;
	uint64_t one = 1;

	if (h->stop_fd < 0)
		return;
	if (h->nr && write(h->stop_fd, &one, sizeof(one)) != sizeof(one))
		fprintf(stderr, "lazymem: region '%s': cannot stop handler "
			"threads: %s\n", r->name, strerror(errno));
	for (unsigned i = 0; i < h->nr; i++)
		pthread_join(h->thread[i], NULL);
	h->nr = 0;
	close(h->stop_fd);
	h->stop_fd = -1;
}
