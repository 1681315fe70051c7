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

/*
 * Install pages whose content the caller already holds, a run at a time.
 *
 * Why: a migration destination receives the source's background push in
 * frames of many pages. Through lm_region_fault each page costs a claim, a
 * read back and one ioctl; here each contiguous run of missing pages costs
 * one UFFDIO_COPY (or one UFFDIO_CONTINUE after writing the alias), as the
 * background fill does: about twice as fast on anon memory (`lazymem bench
 * postcopy` measures both ways).
 *
 * Pages [off, off + npages * page size) come from buf (npages pages), or
 * are zero pages when buf is NULL. Each page is decided by the page-state
 * map: a missing page is claimed and installed; a page present, being
 * fetched by another thread, or given back by a foreign region's owner is
 * skipped (never waited for, never installed twice); a failed page stays
 * failed. Installed pages are counted under origin (pages_background for
 * LM_ORIGIN_BACKGROUND, pages_demand otherwise) and their waiters woken.
 *
 * With the CONTINUE install, buf may be the region's alias at off: the
 * pages are then in the page cache already (a migration's pre-copy store)
 * and only mapped, never copied.
 *
 * A caller that must record which pages it provided before any thread can
 * see them (the destination's "have" bitmap, which a faulting thread may
 * check once its page is present) sets run->on_claimed: it is called with
 * each run this call claimed, before the run is installed. *run holds
 * inputs as well as outputs: start from a zeroed one
 * (struct lm_install_run run = { 0 }), or on_claimed is whatever the stack
 * held (a bench once jumped to it).
 *
 * Returns 0 when no page of the range is failed; -EIO if a page had failed
 * earlier, or the install's -errno for a page failed now (the page is
 * poisoned, as any failed fault); -EAGAIN for a foreign region whose owner
 * has an event pending (pages not installed were given back: retry after
 * the event is read); -EINVAL / -EFAULT for bad arguments. lm_last_error()
 * names the page or argument. The out fields of *run are filled whenever
 * the arguments are valid: which pages this call installed and which are
 * failed; the others were skipped.
 */
#define LM_INSTALL_RUN_MAX 64u

struct lm_install_run {
	/* in, optional: pages [off, off + npages * page size) claimed */
	void (*on_claimed)(void *arg, uint64_t off, unsigned npages);
	void *arg;
	/* out */
	uint64_t installed;	/* bit i: page i installed by this call */
	uint64_t failed;	/* bit i: page i is failed (earlier or now) */
	unsigned nr_installed;	/* bits set in installed */
};

int lm_region_install_run(struct lm_region *r, uint64_t off, unsigned npages,
			  const void *buf, enum lm_fault_origin origin,
			  struct lm_install_run *run);

#ifdef __cplusplus
}
#endif
#endif
