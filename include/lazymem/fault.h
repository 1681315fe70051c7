/*
 * lazymem/fault.h - resolving a fault on the thread that took it.
 *
 * This is the fast path's public face, for threads that learn of a fault
 * other than by SIGBUS: a vCPU whose KVM_RUN returned because guest memory
 * was missing. The protocol is begin / commit:
 *
 *   struct lm_fault f;
 *   int rc = lm_fault_begin(r, off, LM_ORIGIN_VCPU, &f);
 *   if (rc == 1) {             this thread owns the page
 *       ... f.page holds the page's content, not yet visible through the
 *       ... registered mapping; the caller may read or modify it (to
 *       ... complete an emulated access) before publishing it
 *       lm_fault_commit(r, &f);
 *   } else if (rc == 0) {      present (another thread installed it)
 *   } else {                   -errno: the page cannot be fetched
 *   }
 *
 * Between begin and commit every other thread needing the page waits on it,
 * so the owner must commit or fail it promptly.
 */
#ifndef LAZYMEM_FAULT_H
#define LAZYMEM_FAULT_H

#include <stdbool.h>
#include <stdint.h>
#include <lazymem/region.h>

#ifdef __cplusplus
extern "C" {
#endif

enum lm_fault_origin {
	LM_ORIGIN_HANDLER,	/* a handler thread read it from the uffd */
	LM_ORIGIN_SIGBUS,	/* the faulting thread, in its SIGBUS handler */
	LM_ORIGIN_VCPU,		/* a vCPU thread, on its exit from KVM_RUN */
	LM_ORIGIN_BACKGROUND,	/* background fill */
	LM_ORIGIN_COUNT
};

struct lm_fault {
	uint64_t off;		/* page-aligned offset in the region */
	void *page;		/* the page's content, page_size bytes */
	uint64_t t0_ns;		/* when the fault began, for the histogram */
	enum lm_fault_origin origin;
	/* The fields below are the core's own; callers leave them alone. */
	int slot;		/* staging slot, -1 when page is the alias */
	unsigned view;		/* which registered mapping faulted */
	unsigned npages;	/* page plus the fault-around pages after it */
	bool zero;		/* installed as zeroes (counted as such) */
};

/* 1: caller owns the page (commit or fail it); 0: present; -errno. */
int lm_fault_begin(struct lm_region *r, uint64_t off,
		   enum lm_fault_origin origin, struct lm_fault *f);
/* Install f->page in the registered mapping(s) and wake waiters. */
int lm_fault_commit(struct lm_region *r, struct lm_fault *f);
/* Give up the page: it is failed visibly (poisoned) and waiters woken. */
void lm_fault_fail(struct lm_region *r, struct lm_fault *f, int err);

/* begin + commit in one call, for callers with no access to complete. */
int lm_region_fault(struct lm_region *r, uint64_t off,
		    enum lm_fault_origin origin);

#ifdef __cplusplus
}
#endif
#endif
