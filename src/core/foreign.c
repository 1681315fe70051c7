/*
 * foreign.c - a foreign space: a userfaultfd of another process adopted
 * with the ranges it covers, and the thread that serves it.
 *
 * Set-up makes one adopted region per range (its own page-state map and
 * statistics, reading a slice of the shared source). The handler thread
 * reads messages from the userfaultfd: a page fault goes to the region
 * whose range holds the address and through the ordinary fault path
 * (fault.c); an event changes page states (REMOVE, UNMAP) or is passed on
 * (FORK). A fault whose install the kernel refuses with EAGAIN (an event
 * is pending, the other process is inside madvise or munmap) is queued and
 * retried after the next read, which returns that event: the same thread
 * must read it, so the fault path never spins on EAGAIN for these regions.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/foreign_internal.h"
#include "core/uffd.h"

#define MSG_BATCH 16

struct retry_queue {
	uint64_t *addr;
	size_t n, cap;
};

static int find_range(const struct lm_foreign *f, uint64_t addr)
{
	for (unsigned k = 0; k < f->nr; k++) {
		const struct lm_region *r = f->region[k];

		if (addr - (uintptr_t)r->view[0].addr < r->size)
			return (int)k;
	}
	return -1;
}

static void report_fail(struct lm_foreign *f, uint64_t addr, int err)
{
	if (f->ops && f->ops->fail)
		f->ops->fail(f, addr, err, f->arg);
	else
		fprintf(stderr, "lazymem: foreign '%s': fault at 0x%llx cannot "
			"be served: %s\n", f->name, (unsigned long long)addr,
			strerror(-err));
}

/* 0 served, -EAGAIN retry after reading events, other -errno failed. */
static int serve_fault(struct lm_foreign *f, uint64_t addr)
{
	int k = find_range(f, addr);
	struct lm_region *r;
	uint64_t off;
	int rc;

	if (k < 0) {
		/* Registered but not announced to us: say so first (the
		 * owner may kill the faulter), then poison the page so that
		 * the access fails instead of hanging forever. */
		report_fail(f, addr, -EFAULT);
		lm_uffd_poison(f->uffd, (void *)(uintptr_t)(addr & ~4095ull),
			       4096, true);
		return -EFAULT;
	}
	r = f->region[k];
	off = (addr - (uintptr_t)r->view[0].addr) & ~(r->page_size - 1);
	rc = lm__fault(r, 0, off, LM_ORIGIN_HANDLER);
	if (rc == -EAGAIN)
		return rc;
	if (rc < 0) {
		report_fail(f, addr, rc);
		return rc;
	}
	if (f->ops && f->ops->fault)
		f->ops->fault(f, f->src_off[k] + off, f->arg);
	return 0;
}

static void queue_retry(struct lm_foreign *f, struct retry_queue *q,
			uint64_t addr)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 64;
		uint64_t *a = realloc(q->addr, cap * sizeof(*a));

		if (!a) {
			report_fail(f, addr, -ENOMEM);
			return;
		}
		q->addr = a;
		q->cap = cap;
	}
	q->addr[q->n++] = addr;
}

/* Pages fully inside [start, end) of every range go back to missing and
 * read as zero from now on. */
static void remove_range(struct lm_foreign *f, uint64_t start, uint64_t end)
{
	for (unsigned k = 0; k < f->nr; k++) {
		struct lm_region *r = f->region[k];
		uint64_t base = (uintptr_t)r->view[0].addr, ps = r->page_size;
		uint64_t lo = LM_MAX(start, base), hi = LM_MIN(end, base + r->size);

		if (lo >= hi)
			continue;
		lo = (lo - base + ps - 1) & ~(ps - 1);
		hi = (hi - base) & ~(ps - 1);
		for (uint64_t off = lo; off < hi; off += ps)
			/* Present pages removed no longer count as done. */
			if (lm_pagemap_remove(&r->map, off >> r->page_shift))
				lm__page_undone(r, off >> r->page_shift);
		if (hi > lo)
			lm__count(r, pages_removed,
				  (hi - lo) >> r->page_shift);
	}
}

/* Under the write lock, right after the read that returned them. */
static void apply_removals(struct lm_foreign *f, const struct uffd_msg *m,
			   size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].event == UFFD_EVENT_REMOVE ||
		    m[i].event == UFFD_EVENT_UNMAP)
			remove_range(f, m[i].arg.remove.start,
				     m[i].arg.remove.end);
}

static void handle_event(struct lm_foreign *f, const struct uffd_msg *m)
{
	atomic_fetch_add(&f->events, 1);
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		break;		/* applied by apply_removals */
	case UFFD_EVENT_FORK:
		if (f->ops && f->ops->fork)
			f->ops->fork(f, (int)m->arg.fork.ufd, f->arg);
		else
			close((int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMAP:
		/* The ranges moved; following them would race every reader
		 * of the range table. Say so; the owner decides. */
		report_fail(f, m->arg.remap.from, -EOPNOTSUPP);
		break;
	default:
		report_fail(f, 0, -EPROTO);
		break;
	}
}

static void handle_messages(struct lm_foreign *f, const struct uffd_msg *m,
			    size_t n, struct retry_queue *q)
{
	for (size_t i = 0; i < n; i++) {
		if (m[i].event != UFFD_EVENT_PAGEFAULT) {
			handle_event(f, &m[i]);
			continue;
		}
		atomic_fetch_add_explicit(&f->fault_msgs, 1,
					  memory_order_relaxed);
		if (serve_fault(f, m[i].arg.pagefault.address) == -EAGAIN)
			queue_retry(f, q, m[i].arg.pagefault.address);
	}
}

static void retry_all(struct lm_foreign *f, struct retry_queue *q)
{
	size_t keep = 0;

	for (size_t i = 0; i < q->n; i++)
		if (serve_fault(f, q->addr[i]) == -EAGAIN)
			q->addr[keep++] = q->addr[i];
	q->n = keep;
}

static void *foreign_main(void *arg)
{
	struct lm_foreign *f = arg;
	struct pollfd pfd[2] = {
		{ .fd = f->uffd, .events = POLLIN },
		{ .fd = f->stop_fd, .events = POLLIN },
	};
	struct uffd_msg msg[MSG_BATCH];
	struct retry_queue q = { 0 };

	for (;;) {
		ssize_t n;
		int read_errno;

		/* Reading completes the events read; the removals they carry
		 * are applied before any batched install may look again. */
		pthread_rwlock_wrlock(&f->events_lock);
		n = read(f->uffd, msg, sizeof(msg));
		/* now: the retries below issue ioctls that set errno (EEXIST
		 * from a copy that lost a race), and a read's EAGAIN taken for
		 * that once stopped this thread with a madvise waiting on it */
		read_errno = errno;
		if (n > 0)
			apply_removals(f, msg, (size_t)n / sizeof(msg[0]));
		pthread_rwlock_unlock(&f->events_lock);
		if (n > 0)
			handle_messages(f, msg, (size_t)n / sizeof(msg[0]), &q);
		if (q.n)
			retry_all(f, &q);
		if (n > 0)
			continue;
		if (n < 0 && read_errno != EAGAIN && read_errno != EINTR) {
			fprintf(stderr, "lazymem: foreign '%s': reading the "
				"userfaultfd: %s; no longer served\n", f->name,
				strerror(read_errno));
			break;
		}
		/* With faults waiting for an event that is not readable yet
		 * (the kernel flags the change before it queues the event),
		 * look again soon. */
		if (poll(pfd, 2, q.n ? 1 : -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
	}
	free(q.addr);
	return NULL;
}

/*
 * The descriptor must be a userfaultfd its owner initialized (UFFDIO_API:
 * until then poll says POLLERR and read fails) and non-blocking: the
 * handler thread reads it until empty and must never sleep in read(), or
 * it could not be stopped. A blocking one is switched (the flag is shared
 * with the owner's descriptor, which only we read).
 */
static int check_uffd(int uffd, const char *name)
{
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	int fl = fcntl(uffd, F_GETFL);

	if (fl < 0)
		return lm_error(-errno, "foreign '%s': userfaultfd %d: %s",
				name, uffd, strerror(errno));
	/* First: the kernel's poll says POLLERR for a blocking one too. */
	if (!(fl & O_NONBLOCK) && fcntl(uffd, F_SETFL, fl | O_NONBLOCK) < 0)
		return lm_error(-errno, "foreign '%s': cannot make the "
				"userfaultfd non-blocking: %s", name,
				strerror(errno));
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)))
		return lm_error(-EINVAL, "foreign '%s': the userfaultfd was "
				"never initialized (no UFFDIO_API by its "
				"owner)", name);
	return 0;
}

static int check_ranges(const struct lm_foreign_config *c, const char *name)
{
	if (!c->nr_ranges || c->nr_ranges > LM_FOREIGN_MAX_RANGES)
		return lm_error(-EINVAL, "foreign '%s': %u ranges; expected "
				"1..%d", name, c->nr_ranges,
				LM_FOREIGN_MAX_RANGES);
	if (!c->source)
		return lm_error(-EINVAL, "foreign '%s': no source", name);
	for (unsigned i = 0; i < c->nr_ranges; i++) {
		const struct lm_foreign_range *a = &c->ranges[i];

		if (a->src_off > c->source->size ||
		    a->size > c->source->size - a->src_off)
			return lm_error(-EINVAL, "foreign '%s': range %u "
					"[source offset %llu, size %llu] does "
					"not fit '%s' (%llu bytes)", name, i,
					(unsigned long long)a->src_off,
					(unsigned long long)a->size,
					c->source->desc,
					(unsigned long long)c->source->size);
		for (unsigned j = 0; j < i; j++) {
			const struct lm_foreign_range *b = &c->ranges[j];

			if (a->addr < b->addr + b->size &&
			    b->addr < a->addr + a->size)
				return lm_error(-EINVAL, "foreign '%s': ranges "
						"%u and %u overlap in memory",
						name, j, i);
			if (a->src_off < b->src_off + b->size &&
			    b->src_off < a->src_off + a->size)
				return lm_error(-EINVAL, "foreign '%s': ranges "
						"%u and %u overlap in the "
						"source", name, j, i);
		}
	}
	return 0;
}

/* The space, its regions and slices; no thread yet. */
static int build(const struct lm_foreign_config *c, struct lm_foreign **out)
{
	const char *name = c->name ? c->name : "foreign";
	struct lm_foreign *f;
	int err = check_ranges(c, name);

	if (!err)
		err = check_uffd(c->uffd, name);

	if (err) {
		close(c->uffd);
		return err;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		close(c->uffd);
		return lm_error(-ENOMEM, "foreign '%s': out of memory", name);
	}
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->cfg = *c;
	memcpy(f->range, c->ranges, c->nr_ranges * sizeof(*c->ranges));
	f->cfg.ranges = f->range;
	f->cfg.name = f->name;
	f->uffd = c->uffd;
	f->ops = c->ops;
	f->arg = c->arg;
	{
		pthread_rwlockattr_t a;

		/* Writer first: the handler thread must not starve behind
		 * a stream of prefetch installs. */
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&f->events_lock, &a);
		pthread_rwlockattr_destroy(&a);
		f->lock_ready = true;
	}
	f->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (f->stop_fd < 0) {
		err = lm_error(-errno, "foreign '%s': eventfd: %s", name,
			       strerror(errno));
		goto fail;
	}
	for (unsigned i = 0; i < c->nr_ranges; i++) {
		const struct lm_foreign_range *a = &c->ranges[i];
		char rname[64];

		snprintf(rname, sizeof(rname), "%.40s/%u", name, i);
		err = lm_source_slice_create(c->source, a->src_off, a->size,
					     &f->slice[i]);
		if (!err)
			err = lm__region_adopt(rname, f->uffd, a->addr, a->size,
					       a->page_size, f->slice[i],
					       &f->region[i]);
		if (err) {
			lm_source_destroy(f->slice[i]);
			f->slice[i] = NULL;
			goto fail;
		}
		f->region[i]->events_lock = &f->events_lock;
		if (c->image)
			f->region[i]->image = (const uint8_t *)c->image +
					      a->src_off;
		if (c->exact)
			f->region[i]->fault_around = 1;
		f->src_off[i] = a->src_off;
		f->nr++;
	}
	*out = f;
	return 0;
fail:
	lm_foreign_destroy(f);
	return err;
}

/* Start the handler thread and background fill. */
static int start(struct lm_foreign *f)
{
	int err = pthread_create(&f->thread, NULL, foreign_main, f);

	if (err)
		return lm_error(-err, "foreign '%s': handler thread: %s",
				f->name, strerror(err));
	f->running = true;
	for (unsigned i = 0; f->cfg.background && i < f->nr; i++) {
		err = lm__background_start(f->region[i]);
		if (err)
			return err;
	}
	return 0;
}

int lm_foreign_create(const struct lm_foreign_config *c,
		      struct lm_foreign **out)
{
	int err = build(c, out);

	if (err)
		return err;
	err = start(*out);
	if (err) {
		lm_foreign_destroy(*out);
		*out = NULL;
	}
	return err;
}

int lm_foreign_fork(const struct lm_foreign *parent, int child_uffd,
		    const struct lm_foreign_ops *ops, void *arg,
		    struct lm_foreign **out)
{
	struct lm_foreign_config c = parent->cfg;
	char name[64];
	int err;

	snprintf(name, sizeof(name), "%.50s-child", parent->name);
	c.name = name;
	c.uffd = child_uffd;
	c.ops = ops;
	c.arg = arg;
	/* No background fill of the child: it shares nothing with the
	 * parent's progress, and its pages are the parent's copies. */
	c.background = false;
	err = build(&c, out);
	if (err)
		return err;
	/* What the parent's owner removed is zero in the child as well;
	 * marked before the child's handler thread reads any fault (the
	 * child may run as soon as the fork event was read). */
	for (unsigned k = 0; k < parent->nr; k++) {
		const struct lm_region *pr = parent->region[k];
		struct lm_region *cr = (*out)->region[k];

		for (uint64_t i = 0; i < pr->nr_pages; i++)
			if (lm_pagemap_removed(&pr->map, i))
				atomic_fetch_or(&cr->map.w[i], LM_PS_REMOVED);
	}
	err = start(*out);
	if (err) {
		lm_foreign_destroy(*out);
		*out = NULL;
	}
	return err;
}

void lm_foreign_stop(struct lm_foreign *f)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < f->nr; i++)
		lm__background_stop(f->region[i]);
	if (f->running) {
		if (write(f->stop_fd, &one, sizeof(one)) != sizeof(one))
			fprintf(stderr, "lazymem: foreign '%s': cannot stop "
				"the handler thread: %s\n", f->name,
				strerror(errno));
		pthread_join(f->thread, NULL);
		f->running = false;
	}
}

void lm_foreign_destroy(struct lm_foreign *f)
{
	if (!f)
		return;
	lm_foreign_stop(f);
	for (unsigned i = 0; i < f->nr; i++) {
		lm_region_destroy(f->region[i]);
		lm_source_destroy(f->slice[i]);
	}
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	if (f->lock_ready)
		pthread_rwlock_destroy(&f->events_lock);
	close(f->uffd);
	free(f);
}

void lm_foreign_stats(const struct lm_foreign *f, struct lm_stats *out)
{
	struct lm_stats one;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < f->nr; i++) {
		lm_region_stats(f->region[i], &one);
		lm_stats_merge(out, &one);
	}
}

unsigned lm_foreign_nr_ranges(const struct lm_foreign *f) { return f->nr; }

struct lm_region *lm_foreign_region(const struct lm_foreign *f, unsigned i)
{
	return i < f->nr ? f->region[i] : NULL;
}

uint64_t lm_foreign_fault_msgs(const struct lm_foreign *f)
{
	return atomic_load(&f->fault_msgs);
}

uint64_t lm_foreign_events(const struct lm_foreign *f)
{
	return atomic_load(&f->events);
}
