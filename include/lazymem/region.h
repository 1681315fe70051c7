/*
 * lazymem/region.h - a range of memory that fills itself lazily.
 *
 * A region is guest (or any) memory registered with userfaultfd plus a
 * page-state map. Each page starts missing; the first access to it is a
 * fault that one thread resolves by reading the page from the region's
 * source and installing it, while any other thread needing the same page
 * waits for that one. How a fault reaches a resolving thread is the
 * delivery:
 *
 *   LM_DELIVERY_HANDLER  classic: the faulting thread sleeps in the kernel,
 *                        handler threads read the userfaultfd and resolve;
 *   LM_DELIVERY_SELF     the userfaultfd is in SIGBUS mode: the faulting
 *                        thread gets SIGBUS and resolves its own fault in
 *                        the signal handler (or, for a vCPU, on its exit
 *                        from KVM_RUN through lazymem/fault.h).
 *
 * How a page is installed is the install mode:
 *
 *   LM_INSTALL_COPY      UFFDIO_COPY / UFFDIO_ZEROPAGE into a MISSING
 *                        registration (any backing);
 *   LM_INSTALL_CONTINUE  the page is written through an unregistered alias
 *                        mapping of the memfd, then mapped in place with
 *                        UFFDIO_CONTINUE (MINOR registration; memfd and
 *                        hugetlb backings only).
 *
 * Faults and installs are per 4 KiB page. With `thp` set, a 2 MiB range
 * whose every page is present is collapsed into one transparent huge page
 * afterwards (MADV_COLLAPSE), off the faulting threads: docs/thp.md.
 */
#ifndef LAZYMEM_REGION_H
#define LAZYMEM_REGION_H

#include <stdbool.h>
#include <stdint.h>
#include <lazymem/source.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lm_region;
struct lm_page_store;

enum lm_backing {
	LM_BACKING_ANON,	/* private anonymous memory */
	LM_BACKING_MEMFD,	/* shared memory (memfd), 4 KiB pages */
	LM_BACKING_HUGETLB,	/* memfd on hugetlbfs, 2 MiB pages */
};

enum lm_install {
	LM_INSTALL_COPY,
	LM_INSTALL_CONTINUE,
};

enum lm_delivery {
	LM_DELIVERY_HANDLER,
	LM_DELIVERY_SELF,
};

/* Write-protect tracking for live snapshots (lazymem/wp.h). */
enum lm_wp_mode {
	LM_WP_NONE,	/* not registered for write-protect faults */
	LM_WP_SYNC,	/* copy-before-write, resolved like the fill */
	LM_WP_ASYNC,	/* the kernel records written pages (WP_ASYNC) */
};

/*
 * Transparent huge pages after the fill (docs/thp.md). Faults stay per
 * 4 KiB page either way (userfaultfd takes a missing page before the
 * kernel could allocate a huge one); what changes is what happens once a
 * 2 MiB-aligned range has every page present.
 */
enum lm_thp {
	LM_THP_OFF,	/* 4 KiB pages for good (MADV_NOHUGEPAGE) */
	/* THP-capable mapping (2 MiB aligned, MADV_HUGEPAGE); full ranges
	 * are collapsed when the caller asks, lm_region_collapse(). */
	LM_THP_COLLAPSE,
	/* The same, plus a collapser thread under SCHED_IDLE, woken as
	 * 4 MiB chunks complete, collapsing while no demand fault runs. */
	LM_THP_AUTO,
};

/* Called when a page cannot be fetched. From a SIGBUS handler it must not
 * return into the faulting access (siglongjmp, or exit); if it returns, or if
 * none is set, lazymem prints the region, page offset and error on stderr
 * and aborts, because the access can never succeed. */
typedef void (*lm_fail_fn)(struct lm_region *r, uint64_t off, int err,
			   void *arg);

struct lm_region_config {
	const char *name;		/* for messages and statistics */
	uint64_t size;			/* bytes, a multiple of the page size */
	/* 0: the backing's own. Otherwise it must equal it (a caller that
	 * expects 2 MiB pages on a 4 KiB backing is refused, not surprised). */
	uint64_t page_size;
	enum lm_backing backing;
	enum lm_install install;
	enum lm_delivery delivery;
	unsigned handler_threads;	/* HANDLER: how many (0 means 1) */
	const int *handler_cpus;	/* HANDLER: optional CPU per thread */
	/*
	 * CONTINUE only: a second mapping, registered for MINOR faults in
	 * blocking mode and served by handler threads, for the accessors that
	 * cannot take the SIGBUS path (a VMM's own threads): the hybrid mode.
	 */
	bool vmm_view;
	bool background;		/* stream every missing page in */
	/*
	 * With background: create the region without starting the fill;
	 * lm_region_background_start() starts it. Why: a restore's first
	 * access then does not wait for the fill's thread to be created
	 * (about 0.1 ms on a nested host); start the accessors, then the
	 * fill.
	 */
	bool background_deferred;
	/*
	 * Fault-around: a demand fault also claims up to this many pages in
	 * all (itself included) that follow it and are still missing, and
	 * installs them with the same source read and the same ioctl. 0 or 1
	 * is off. It pays where access is sequential and each fault is dear
	 * (a signal, a vCPU exit); it wastes reads where access is random.
	 * At most 64 pages and 4 MiB. With the SELF delivery it is the
	 * largest window of an adaptive one per faulting thread: doubled
	 * while the thread's faults follow each other (1, 2, 4, ... pages),
	 * back to 1 page on a fault elsewhere.
	 */
	unsigned fault_around;
	struct lm_source *source;	/* borrowed; size >= region size */
	lm_fail_fn on_fail;
	void *on_fail_arg;
	/*
	 * Register for write-protect faults too, for live snapshots
	 * (lazymem/wp.h). Needs the copy install, no VMM view and no
	 * background fill; any backing (hugetlb: tracked and copied per
	 * 2 MiB page). Refused with the missing userfaultfd features named
	 * when the kernel lacks them.
	 */
	enum lm_wp_mode write_protect;
	/*
	 * A page store: pages may be evicted into it and come back on the
	 * next touch (lazymem/reclaim.h). Borrowed; destroy it after the
	 * region. Needs the copy install, no VMM view, no background fill,
	 * an anon backing (the kernel's UFFD_FEATURE_MOVE) or a memfd one
	 * (write_protect none or sync: an async one lets a write through an
	 * eviction unseen). NULL: no eviction.
	 */
	struct lm_page_store *store;
	/*
	 * Huge pages once ranges are full (enum lm_thp). Anon or memfd
	 * backing, 4 KiB pages; memfd only without write_protect or a
	 * store (a huge shmem page under write-protection or a hole
	 * punched in it is split or zeroed by the kernel behind the
	 * page-state map's back). With it, zero pages are installed as
	 * copied zeroes: a UFFDIO_ZEROPAGE page keeps its range from
	 * collapsing (EBUSY, measured).
	 */
	enum lm_thp thp;
};

/*
 * Create the region: map it, register it with a new userfaultfd and start
 * handler threads and background fill as configured. On failure returns
 * -errno and lm_last_error() names what was wrong.
 */
int lm_region_create(const struct lm_region_config *cfg,
		     struct lm_region **out);

/*
 * Start the background fill of a region created with background and
 * background_deferred. 0 if it runs (again: a second call does nothing);
 * -EINVAL if the region was created without background fill.
 */
int lm_region_background_start(struct lm_region *r);

/* Stop threads, unregister, unmap. Threads must no longer touch the region. */
void lm_region_destroy(struct lm_region *r);

/* The registered mapping: accesses here fault and are resolved lazily. */
void *lm_region_addr(const struct lm_region *r);
/* The hybrid mode's second registered mapping, or NULL. */
void *lm_region_vmm_addr(const struct lm_region *r);
/* The unregistered alias (CONTINUE mode) or NULL. Writes here are invisible
 * to the registered mappings until the page is installed. */
void *lm_region_alias(const struct lm_region *r);
/* The backing memfd, or -1 for anonymous memory. */
int lm_region_memfd(const struct lm_region *r);
uint64_t lm_region_size(const struct lm_region *r);
uint64_t lm_region_page_size(const struct lm_region *r);
const char *lm_region_name(const struct lm_region *r);

/* Pages present so far (installed from any path). */
uint64_t lm_region_pages_present(const struct lm_region *r);

/*
 * Wait until every page is present or failed, or timeout_ms passes (-1:
 * forever). 0 when complete, -ETIMEDOUT, or the first page error (-errno).
 */
int lm_region_wait_complete(struct lm_region *r, int timeout_ms);

/* First page error seen: 0 if none, else -errno with *off set. */
int lm_region_error(const struct lm_region *r, uint64_t *off);

/*
 * Collapse every 2 MiB range of the region whose pages are all present
 * and that is not a huge page yet into one transparent huge page
 * (MADV_COLLAPSE), on the calling thread; ranges a live snapshot or an
 * eviction is using are skipped. Takes about 1-5 ms per range on this
 * project's machines (docs/thp.md), during which a fault elsewhere in the
 * region may wait for the kernel's lock: call it where no one faults, or
 * let LM_THP_AUTO do it. *collapsed (may be NULL) gets the ranges
 * collapsed by this call; failures are counted in the statistics
 * (thp_failed_*), not returned. -EINVAL if the region was created with
 * thp off.
 */
int lm_region_collapse(struct lm_region *r, uint64_t *collapsed);

/* The page size a backing uses on this machine. */
uint64_t lm_backing_page_size(enum lm_backing b);

const char *lm_backing_name(enum lm_backing b);
const char *lm_install_name(enum lm_install m);
const char *lm_delivery_name(enum lm_delivery d);
const char *lm_wp_mode_name(enum lm_wp_mode m);
const char *lm_thp_name(enum lm_thp t);

#ifdef __cplusplus
}
#endif
#endif
