/*
 * lazymem/reclaim.h - taking cold pages out of a running region and
 * bringing them back on the next touch.
 *
 * A region created with a page store (lm_region_config.store) can evict
 * present pages: lm_region_evict() takes a run of them out of the memory
 * and hands each to the store; the next access faults like a missing page
 * and is resolved from the store, on the faulting thread (SIGBUS, a vCPU
 * exit through lazymem/fault.h) or by a handler thread, like any other
 * fill. How a page leaves depends on the backing:
 *
 *   anon   UFFDIO_MOVE of the run (up to 64 pages per ioctl) into a staging
 *          area of the region's own, then into the store. The move is
 *          atomic against the region's accessors: a write lands before it
 *          (and moves with the page) or faults after it.
 *   memfd  the run is write-protected (uffd-wp on shmem), copied, punched
 *          out of the memfd and un-protected; a write in the middle faults
 *          and waits for the eviction to end, then gets the stored page.
 *
 * During its eviction a page is owned by the evicting thread in the
 * page-state map, exactly as during a fetch: a fault on it waits on the
 * page's word and then reads it from the store. If the store refuses a
 * page (full, out of memory), the page stays resident and the refusal is
 * counted; the accessor never sees another content.
 *
 * While a copy-before-write live snapshot (LM_WP_SYNC) runs on the region,
 * lm_region_evict() refuses with -EBUSY: a page it has not saved yet is
 * never evicted (docs/reclaim.md says why this and not the other way).
 */
#ifndef LAZYMEM_RECLAIM_H
#define LAZYMEM_RECLAIM_H

#include <stdint.h>

#include <lazymem/region.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lm_page_store;

struct lm_page_store_ops {
	/* Keep a copy of the page at region offset off (page_size bytes).
	 * Called by an evicting thread, never in a signal handler. 0 or
	 * -errno: the page then stays resident. */
	int (*put)(struct lm_page_store *s, uint64_t off, const void *page);
	/* Copy page off back into dst and forget it. Called on the fault
	 * path, possibly in a SIGBUS handler: async-signal-safe (no malloc,
	 * no lock a signal could interrupt). 0 or -errno (the page fails). */
	int (*take)(struct lm_page_store *s, uint64_t off, void *dst);
	/* Release the store and the struct itself. */
	void (*destroy)(struct lm_page_store *s);
};

struct lm_page_store {
	const struct lm_page_store_ops *ops;
	char desc[96];		/* for messages: "memory lz4", "file /x" */
};

/* What one lm_region_evict() call did, bit i for page i of the run. */
struct lm_evict_result {
	uint64_t evicted;	/* now in the store, no longer resident */
	uint64_t refused;	/* the store refused it: still resident */
	unsigned nr_evicted, nr_refused;
	/* pages skipped: not present, being fetched, or marked by a
	 * running write-protect snapshot */
	unsigned nr_skipped;
};

/*
 * Evict pages [off, off + npages pages) of r, npages 1..64, into the
 * region's store. Pages not present are skipped. 0 when every page was
 * either evicted, skipped or refused by the store (see *res), -EINVAL
 * (no store, bad run), -EBUSY (a LM_WP_SYNC live snapshot runs), or the
 * first kernel error (those pages stay resident).
 */
int lm_region_evict(struct lm_region *r, uint64_t off, unsigned npages,
		    struct lm_evict_result *res);

void lm_page_store_destroy(struct lm_page_store *s);

#ifdef __cplusplus
}
#endif
#endif
