/*
 * sigbus.c - the self-resolve delivery for plain threads.
 *
 * With UFFD_FEATURE_SIGBUS a fault on a missing page does not sleep: the
 * faulting thread gets SIGBUS. Our handler finds the region the address
 * belongs to, resolves the fault right there on the faulting thread
 * (fault.c is async-signal-safe for that reason) and returns; the thread
 * retries its access and finds the page. No other thread is woken.
 *
 * The signal disposition is process-wide, so the registry of regions is the
 * one piece of process state in the library; this file owns it. Lookups in
 * the handler are lock-free reads of an array of pointers; the mutex only
 * orders registration against registration.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/region_internal.h"

#define SIGBUS_SLOTS 64

static struct sigbus_registry {
	pthread_mutex_t lock;
	struct sigaction prev;		/* restored when the last one goes */
	unsigned users;
	struct lm_region *_Atomic slot[SIGBUS_SLOTS];
} registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* snprintf is not async-signal-safe: format by hand for the last words. */
static size_t put_str(char *b, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		b[at++] = *s++;
	return at;
}

static size_t put_hex(char *b, size_t at, size_t cap, uint64_t v)
{
	char tmp[19] = "0x";
	int n = 2;

	for (int sh = 60; sh >= 0; sh -= 4) {
		unsigned d = (v >> sh) & 15;

		if (d || n > 2 || sh == 0)
			tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
	}
	tmp[n] = '\0';
	return put_str(b, at, cap, tmp);
}

static void fail_access(struct lm_region *r, uint64_t off, int err)
{
	char msg[256];
	size_t n = 0;

	if (r->on_fail)
		r->on_fail(r, off, err, r->on_fail_arg);
	/* The handler returned (or there was none): the access can never
	 * succeed, and returning would fault again forever. */
	n = put_str(msg, n, sizeof(msg), "lazymem: region '");
	n = put_str(msg, n, sizeof(msg), r->name);
	n = put_str(msg, n, sizeof(msg), "': page at offset ");
	n = put_hex(msg, n, sizeof(msg), off);
	n = put_str(msg, n, sizeof(msg), " cannot be fetched (errno ");
	n = put_hex(msg, n, sizeof(msg), (uint64_t)-err);
	n = put_str(msg, n, sizeof(msg), "); aborting\n");
	if (write(STDERR_FILENO, msg, n) < 0)
		abort();
	abort();
}

static void chain(int sig, siginfo_t *si, void *uctx)
{
	const struct sigaction *p = &registry.prev;

	if (p->sa_flags & SA_SIGINFO) {
		p->sa_sigaction(sig, si, uctx);
		return;
	}
	if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
		p->sa_handler(sig);
		return;
	}
	/* Not ours and nobody else's: let the retried access take the
	 * default action (a core dump at the right address). */
	signal(SIGBUS, SIG_DFL);
}

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	int saved_errno = errno;
	uintptr_t a = (uintptr_t)si->si_addr;

	for (unsigned i = 0; i < SIGBUS_SLOTS; i++) {
		struct lm_region *r = atomic_load_explicit(
			&registry.slot[i], memory_order_acquire);
		uintptr_t base;

		if (!r)
			continue;
		base = (uintptr_t)r->view[0].addr;
		if (a - base < r->size) {
			uint64_t off = (a - base) & ~(r->page_size - 1);
			/* SIGBUS says nothing of why: a write-protect fault
			 * is told from a missing page by the page's state. */
			int rc = lm__wp_fault(r, 0, off, LM_ORIGIN_SIGBUS);

			if (rc == 1)
				rc = lm__fault(r, 0, off, LM_ORIGIN_SIGBUS);

			if (rc < 0)
				fail_access(r, off, rc);
			errno = saved_errno;
			return;
		}
	}
	chain(sig, si, uctx);
	errno = saved_errno;
}

int lm__sigbus_register(struct lm_region *r)
{
	int err = 0;

	pthread_mutex_lock(&registry.lock);
	if (registry.users == 0) {
		struct sigaction sa = { .sa_sigaction = on_sigbus };

		/* NODEFER: a source may itself be lazily filled memory, so
		 * resolving one fault can take another. */
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &registry.prev) < 0) {
			err = lm_error(-errno, "region '%s': installing the "
				       "SIGBUS handler: %s", r->name,
				       strerror(errno));
			goto out;
		}
	}
	for (unsigned i = 0; i < SIGBUS_SLOTS; i++) {
		if (!atomic_load(&registry.slot[i])) {
			atomic_store_explicit(&registry.slot[i], r,
					      memory_order_release);
			r->sigbus_slot = (int)i;
			registry.users++;
			goto out;
		}
	}
	err = lm_error(-ENOSPC, "region '%s': more than %d self-resolving "
		       "regions in one process", r->name, SIGBUS_SLOTS);
	if (registry.users == 0)
		sigaction(SIGBUS, &registry.prev, NULL);
out:
	pthread_mutex_unlock(&registry.lock);
	return err;
}

void lm__sigbus_unregister(struct lm_region *r)
{
	if (r->sigbus_slot < 0)
		return;
	pthread_mutex_lock(&registry.lock);
	atomic_store(&registry.slot[r->sigbus_slot], NULL);
	r->sigbus_slot = -1;
	if (--registry.users == 0)
		sigaction(SIGBUS, &registry.prev, NULL);
	pthread_mutex_unlock(&registry.lock);
}
