/*
 * lazymem/wp.h - write-protect tracking of a region, for live snapshots.
 *
 * A region created with write_protect set is registered with userfaultfd
 * in write-protect mode as well. lm_wp_protect() write-protects every page
 * in one UFFDIO_WRITEPROTECT sweep (with WP_UNPOPULATED, so pages never
 * populated are caught too); that is the snapshot's instant, and the
 * caller keeps its writers paused across the call. From then on:
 *
 *   LM_WP_SYNC   copy-before-write. The first write to a page raises a
 *                write-protect fault, resolved like a missing page: on the
 *                faulting thread in its SIGBUS handler (self delivery) or
 *                by a handler thread (handler delivery). The library asks
 *                the consumer for a buffer slot, copies the page's content
 *                at the instant into it, hands it back and lifts the
 *                protection. The snapshot writer saves the other pages
 *                with lm_wp_save_run(). The page-state map knows each
 *                page's write-protect state (protected / being saved /
 *                saved), so a page is copied out at most once, and a page
 *                the writer has saved is un-protected on its next write
 *                without a copy.
 *   LM_WP_ASYNC  the kernel lifts the protection itself on the first write
 *                (UFFD_FEATURE_WP_ASYNC) and remembers the page as written;
 *                lm_wp_collect() lists the pages written since the last
 *                call and protects them again (PAGEMAP_SCAN), which is
 *                what rounds of pre-copy to a file need.
 *
 * lm_wp_release() ends it: every page un-protected, the state cleared.
 * Only one protection runs per region at a time (-EBUSY otherwise).
 */
#ifndef LAZYMEM_WP_H
#define LAZYMEM_WP_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/fault.h>
#include <lazymem/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Where the sync mode puts the pages it copies before a write. Both calls
 * run on the thread that resolves the fault, possibly in its SIGBUS
 * handler: they must be async-signal-safe (atomics, futexes, no locks,
 * no malloc).
 */
struct lm_wp_consumer {
	/* A page-sized buffer for page `off`. It may block until one is
	 * free (that is the throttle: the faulting thread waits for the
	 * writer). NULL means the snapshot is being abandoned: the page is
	 * un-protected without a copy; a consumer that only tracks writes
	 * notes off and returns NULL (bench/tracking_mech.c). */
	void *(*slot_get)(void *arg, uint64_t off);
	/* The slot now holds page `off` as it was at the instant. */
	void (*slot_put)(void *arg, uint64_t off, void *slot);
	void *arg;
};

/*
 * The instant: write-protect every page. consumer is needed for LM_WP_SYNC
 * (copied) and ignored for LM_WP_ASYNC. -EBUSY if a protection already
 * runs on the region, -EINVAL if it was not created with write_protect,
 * -EIO if a page of it has failed (its content is unknown).
 */
int lm_wp_protect(struct lm_region *r, const struct lm_wp_consumer *c);

/*
 * LM_WP_SYNC, for the snapshot writer: save pages [off, off + n pages),
 * n <= 64, into buf (page i at i * page size). Pages still protected are
 * copied into buf, marked saved and un-protected (one ioctl per run);
 * pages already saved or being saved by a faulting thread are skipped.
 * *saved gets bit i for each page copied by this call. 0 or -errno.
 */
int lm_wp_save_run(struct lm_region *r, uint64_t off, unsigned n, void *buf,
		   uint64_t *saved);

/*
 * LM_WP_ASYNC: the pages written since lm_wp_protect() or the previous
 * call, as bits of bitmap (one per page, the caller's, zeroed; bits are
 * only set), each protected again. *count: how many. 0 or -errno.
 */
int lm_wp_collect(struct lm_region *r, uint64_t *bitmap, uint64_t *count);

/*
 * lm_wp_collect over [off, off + len) only (page-aligned; bits are still
 * page indexes of the whole region): a caller sampling the region a slice
 * at a time makes a continuously written page fault once per pass, not
 * once per call (reclaim's policy: docs/reclaim.md has why).
 */
int lm_wp_collect_range(struct lm_region *r, uint64_t off, uint64_t len,
			uint64_t *bitmap, uint64_t *count);

/*
 * End the protection: lift it from every page and clear the map's
 * write-protect state. A page being saved is waited for, so the consumer
 * must by now return NULL from slot_get (or have slots free). 0 or -errno
 * (the region stays protected: a later call may retry).
 */
int lm_wp_release(struct lm_region *r);

/* The write_protect the region was created with. */
enum lm_wp_mode lm_wp_mode(const struct lm_region *r);

/* True while a protection runs on the region (protect .. release). */
bool lm_wp_busy(const struct lm_region *r);

/*
 * For a thread that learns of a fault other than by SIGBUS or a message
 * (a vCPU's exit from KVM_RUN): if page off is present and write-protected
 * by a running LM_WP_SYNC snapshot, save it if nobody has and lift the
 * protection. 0: done, retry the access; 1: not a write-protect fault
 * (the page is missing: use lm_fault_begin); -errno.
 */
int lm_wp_fault(struct lm_region *r, uint64_t off, enum lm_fault_origin origin);

#ifdef __cplusplus
}
#endif
#endif
