/*
 * tracking_mprotect.c - the classic userspace write tracker, for `lazymem
 * bench tracking`: the memory is made PROT_READ; a first write faults into
 * the writing thread's SIGSEGV handler, which appends the page to its
 * slice's record and makes that one page writable again; collect reads the
 * records and makes the whole memory PROT_READ again (one call, which also
 * merges the VMAs the per-page mprotects split).
 *
 * Why it is a contender: it needs nothing from the kernel but mprotect, so
 * it is what a tracker falls back to; what it costs is a signal and an
 * mprotect per first write, each mprotect taking the process's mmap lock
 * for writing and splitting the mapping (one VMA per isolated writable
 * page: a sparse round can run into vm.max_map_count, and the round fails
 * by name if it does).
 *
 * A signal handler gets no argument, so the tracker it serves is found
 * through the one process-wide object of this file, as the library finds
 * its regions in sigbus.c; a fault outside the tracked memory goes to the
 * handler that was there before (a real crash stays one).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tracking.h"

static struct mp_registry {
	struct trk *_Atomic active;
	struct sigaction prev;
} registry;

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
	/* Nobody else's either: the retried access takes the default
	 * action, a core dump at the right address. */
	signal(SIGSEGV, SIG_DFL);
}

/* The page could not be made writable (ENOMEM: too many VMAs). The writer
 * must still get on, so its whole slice is opened; the round then fails
 * with the first errno. Opening less memory cannot fail that way. */
static void open_slice(struct trk *t, unsigned s, int err)
{
	static const char msg[] = "lazymem: bench tracking: mprotect in the "
				  "SIGSEGV handler failed twice; aborting\n";
	uint64_t first, n;
	int none = 0;

	atomic_compare_exchange_strong(&t->fault_err, &none, err);
	trk_slice(t, s, &first, &n);
	if (mprotect(t->mem + first * TRK_WORDS, n * TRK_PS,
		     PROT_READ | PROT_WRITE) == 0)
		return;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static void on_sigsegv(int sig, siginfo_t *si, void *uctx)
{
	int saved_errno = errno;
	struct trk *t = atomic_load_explicit(&registry.active,
					     memory_order_acquire);
	uintptr_t a = (uintptr_t)si->si_addr, base;

	base = t ? (uintptr_t)t->mem : 0;
	if (t && si->si_code == SEGV_ACCERR && a - base < t->size) {
		uint64_t p = (a - base) / TRK_PS;
		unsigned s = trk_slice_of(t, p);
		struct trk_rec *rec = &t->rec[s];

		if (rec->n < rec->cap)
			rec->pages[rec->n++] = p;
		else
			atomic_store(&rec->overflow, 1);
		if (mprotect(t->mem + p * TRK_WORDS, TRK_PS,
			     PROT_READ | PROT_WRITE))
			open_slice(t, s, errno);
	} else {
		chain(sig, si, uctx);
	}
	errno = saved_errno;
}

int trk_mprotect_arm(struct trk *t, char *why, size_t len)
{
	struct sigaction sa = { .sa_sigaction = on_sigsegv };
	struct trk *none = NULL;

	if (!atomic_compare_exchange_strong(&registry.active, &none, t)) {
		snprintf(why, len, "an mprotect tracker is already armed in "
			 "this process");
		return -EBUSY;
	}
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &registry.prev) < 0) {
		int e = errno;

		snprintf(why, len, "installing the SIGSEGV handler: %s",
			 strerror(e));
		atomic_store(&registry.active, NULL);
		return -e;
	}
	if (mprotect(t->mem, t->size, PROT_READ) < 0) {
		int e = errno;

		snprintf(why, len, "mprotect PROT_READ of %llu bytes: %s",
			 (unsigned long long)t->size, strerror(e));
		trk_mprotect_disarm(t);
		return -e;
	}
	return 0;
}

int trk_mprotect_collect(struct trk *t, uint64_t *bitmap, uint64_t *count,
			 char *why, size_t len)
{
	int err = atomic_exchange(&t->fault_err, 0);

	if (err) {
		snprintf(why, len, "mprotect of one page in the SIGSEGV "
			 "handler: %s (each isolated writable page is a VMA "
			 "of its own: see vm.max_map_count)", strerror(err));
		return -err;
	}
	err = trk_drain_records(t, bitmap, count);
	if (err) {
		snprintf(why, len, "a slice took more write faults than it "
			 "has pages (a page faulted twice)");
		return err;
	}
	if (mprotect(t->mem, t->size, PROT_READ) < 0) {
		int e = errno;

		snprintf(why, len, "mprotect PROT_READ of %llu bytes: %s",
			 (unsigned long long)t->size, strerror(e));
		return -e;
	}
	return 0;
}

void trk_mprotect_disarm(struct trk *t)
{
	struct trk *me = t;

	mprotect(t->mem, t->size, PROT_READ | PROT_WRITE);
	if (atomic_compare_exchange_strong(&registry.active, &me, NULL))
		sigaction(SIGSEGV, &registry.prev, NULL);
}
