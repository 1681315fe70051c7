/*
 * lazymem/foreign.h - serving the memory of another process.
 *
 * A VMM such as Firecracker maps guest memory in its own process,
 * registers it with a userfaultfd (MISSING mode, usually with
 * UFFD_FEATURE_EVENT_REMOVE) and hands that file descriptor to a page-fault
 * handler. A foreign space adopts such a userfaultfd: each range of the
 * other process's memory becomes a region with its own page-state map and
 * statistics, one handler thread reads the userfaultfd and resolves faults
 * with UFFDIO_COPY / UFFDIO_ZEROPAGE into the other process, and the
 * events the userfaultfd delivers are honoured:
 *
 *   REMOVE, UNMAP   the pages of the range go back to missing and read as
 *                   zero from then on (a balloon gave them back); they are
 *                   never prefetched again;
 *   FORK            the child's new userfaultfd is handed to ops->fork,
 *                   which can serve it with lm_foreign_fork;
 *   REMAP           not supported: reported through ops->fail.
 *
 * While such an event is pending the kernel refuses installs with EAGAIN;
 * the handler thread reads the pending events and retries, and background
 * or prefetch installs give their pages back and try again later.
 */
#ifndef LAZYMEM_FOREIGN_H
#define LAZYMEM_FOREIGN_H

#include <stddef.h>
#include <stdint.h>
#include <lazymem/region.h>
#include <lazymem/stats.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lm_foreign;

#define LM_FOREIGN_MAX_RANGES 64

struct lm_foreign_range {
	uint64_t addr;		/* start in the other process */
	uint64_t size;		/* bytes, a multiple of page_size */
	uint64_t page_size;	/* 4096, or 2 MiB (hugetlbfs) */
	uint64_t src_off;	/* where the range starts in the source */
};

/* Called from the foreign space's handler thread; keep them short. */
struct lm_foreign_ops {
	/* A fault on the page at source offset src_off was served (also
	 * for a page already present: the same page may be reported more
	 * than once). The first call marks the first fault. */
	void (*fault)(struct lm_foreign *f, uint64_t src_off, void *arg);
	/* A fault at addr could not be served: err is -errno (-EFAULT: not
	 * in any range; -EOPNOTSUPP: an event lazymem cannot follow). The
	 * page was poisoned if it could be, so the faulting access gets
	 * SIGBUS instead of hanging. */
	void (*fail)(struct lm_foreign *f, uint64_t addr, int err, void *arg);
	/* The other process forked; child_uffd (now owned by the callee)
	 * serves the child's copy of the ranges. NULL: it is closed. */
	void (*fork)(struct lm_foreign *f, int child_uffd, void *arg);
};

struct lm_foreign_config {
	const char *name;		/* for messages */
	int uffd;			/* taken over, even on failure */
	const struct lm_foreign_range *ranges;
	unsigned nr_ranges;		/* 1 .. LM_FOREIGN_MAX_RANGES */
	struct lm_source *source;	/* borrowed; may serve many spaces */
	/* Optional: the source's bytes mapped read-only in this process
	 * (a MAP_SHARED mapping of the memory file). Installs then copy
	 * straight from it, one copy instead of a read and a copy; the
	 * source is still asked about holes and used on errors. */
	const void *image;
	bool background;		/* stream every page in, demand first */
	/* Fault-around: along a sequential stream of the other process's
	 * faults, each demand fault installs twice the pages of the last
	 * (2, 4, 8, up to 16 pages, 64 KiB), and one page on a fault
	 * elsewhere (4 KiB pages; 2 MiB pages one at a time, always). exact
	 * turns it off, so that every
	 * page the other process touches faults and is reported (for
	 * recording a working set). */
	bool exact;
	const struct lm_foreign_ops *ops;	/* optional */
	void *arg;
};

/*
 * Adopt the userfaultfd and start serving it. Ranges must be page-aligned,
 * must not overlap (in the other process or in the source) and must lie
 * inside the source. -EINVAL with lm_last_error() naming the range.
 */
int lm_foreign_create(const struct lm_foreign_config *c,
		      struct lm_foreign **out);

/* Stop the handler thread and background fill; the statistics are final
 * and stay readable. Faults then pending are left unserved. */
void lm_foreign_stop(struct lm_foreign *f);

/* Stop (if not yet), free the regions and close the userfaultfd. */
void lm_foreign_destroy(struct lm_foreign *f);

/*
 * Install the pages at these source offsets (page-aligned, in any order)
 * if they are still missing and not removed: claimed, read with one source
 * read per run of adjacent pages, installed with UFFDIO_COPY without
 * waking, then one UFFDIO_WAKE per range. Counted as background pages.
 * Returns the pages installed, or -EAGAIN (an event is pending: call again
 * shortly; pages not installed were given back), or -errno.
 */
int lm_foreign_prefetch(struct lm_foreign *f, const uint64_t *src_offs,
			size_t n);

/*
 * For ops->fork: a space serving the forked child's userfaultfd with the
 * parent's ranges, source and options (ops and arg given anew). Pages the
 * parent's owner had removed read as zero in the child too; pages present
 * in the parent are the child's copies and do not fault. Start it from
 * the fork callback: the child's faults wait until it runs.
 */
int lm_foreign_fork(const struct lm_foreign *parent, int child_uffd,
		    const struct lm_foreign_ops *ops, void *arg,
		    struct lm_foreign **out);

/* The statistics of all ranges merged (lm_stats_merge). */
void lm_foreign_stats(const struct lm_foreign *f, struct lm_stats *out);

unsigned lm_foreign_nr_ranges(const struct lm_foreign *f);
/* The region serving range i (for lm_region_stats and friends). */
struct lm_region *lm_foreign_region(const struct lm_foreign *f, unsigned i);
/* Fault messages read, and events (REMOVE, UNMAP, FORK, REMAP) seen. */
uint64_t lm_foreign_fault_msgs(const struct lm_foreign *f);
uint64_t lm_foreign_events(const struct lm_foreign *f);

#ifdef __cplusplus
}
#endif
#endif
