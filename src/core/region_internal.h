/*
 * region_internal.h - the region object as the core sees it.
 *
 * A region has up to two registered views (mappings) of its memory:
 * view 0 is the one handed to the user (and to KVM), view 1 is the hybrid
 * mode's mapping for a VMM's own threads. Each view has a userfaultfd of
 * its own because the blocking/SIGBUS choice is per userfaultfd. With the
 * CONTINUE install there is also an unregistered alias where pages are
 * written before they are mapped in place.
 */
#ifndef LAZYMEM_CORE_REGION_INTERNAL_H
#define LAZYMEM_CORE_REGION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <lazymem/lazymem.h>
#include "core/pagemap.h"
#include "core/staging.h"

#define LM_MAX_VIEWS 2
#define LM_MAX_HANDLERS 64

struct lm_view {
	uint8_t *addr;
	int uffd;
	bool sigbus;		/* SIGBUS mode: no sleepers, no wake-ups */
};

/*
 * Statistics, split in per-thread shards summed on read (lm_region_stats).
 *
 * Why: with one set of counters every fault on every thread wrote the same
 * few cache lines (fault count, pages, bytes, the histogram's count and
 * max), so two faulting CPUs bounced them between their caches on every
 * fault. A thread gets a shard of its own the first time it faults in a
 * region (lm__shard: a per-thread cache of region id -> shard index) and
 * writes only that from then on; docs/benchmarks.md ("Shared writes per
 * fault") counts the lines before and after. Shards are bounded: threads
 * beyond the first LM_STAT_SHARDS - 1 share shard 0, which is still
 * correct (every counter is an atomic add), only shared again.
 *
 * Counters stay atomic adds even in an owned shard: a fault inside the
 * SIGBUS handler can interrupt its own thread's fault (SA_NODEFER, a
 * lazily filled source), and a load + store pair would lose a count. An
 * uncontended lock add on a line this CPU owns costs about 20 cycles; a
 * fault costs thousands.
 */
#define LM_STAT_SHARDS 64

struct lm_stats_shard {
	_Atomic uint64_t faults[LM_ORIGIN_COUNT];
	_Atomic uint64_t faults_waited, faults_present;
	_Atomic uint64_t pages_demand, pages_background, pages_zero;
	_Atomic uint64_t pages_around;
	_Atomic uint64_t pages_failed, bytes_read;
	_Atomic uint64_t faults_retried, pages_removed;
	/* write-protect faults (wp.c): taken, copied out, protection only
	 * lifted (saved already), waited for another thread's copy */
	_Atomic uint64_t wp_faults, wp_copied, wp_lifted, wp_waited;
	_Atomic uint64_t lat_max_ns;
	/* reclaim (evict.c): pages evicted, refused by the store, brought
	 * back by a fault; refault times (signal or message to install) */
	_Atomic uint64_t pages_evicted, evict_refused, pages_refaulted;
	_Atomic uint64_t refault_hist[LM_LAT_BUCKETS];
	/* huge pages (collapse.c): ranges collapsed, time, refusals by
	 * reason, passes skipped for a snapshot or an eviction */
	_Atomic uint64_t thp_collapsed, thp_collapse_ns;
	_Atomic uint64_t thp_failed_busy, thp_failed_again, thp_failed_nomem;
	_Atomic uint64_t thp_failed_other, thp_skipped;
	/* Demand faults begun minus ended through this shard. A fault may
	 * end on another thread than it began on (lm_fault_begin/commit), so
	 * one shard may wrap below zero; the sum over shards is exact. */
	_Atomic uint64_t demand_active;
	/* A staging buffer of the shard's own (copy install), so a fault
	 * takes no slot from the region's shared pool, whose bitmask every
	 * faulting thread writes twice per fault. Busy while held: a nested
	 * fault on the same thread, or a second thread sharing shard 0,
	 * falls back to the pool. */
	_Atomic uint32_t stage_busy;
	void *_Atomic stage;
	/* Fault-around window of the shard's thread (fault.c,
	 * around_window: a self-resolving thread, or a foreign space's
	 * handler thread) and the page its sequential stream faults next,
	 * plus one: 0, as a fresh shard has it, is no stream. */
	_Atomic uint32_t around_window;
	_Atomic uint64_t around_next;
	/* The thread it was handed to (the address of that thread's shard
	 * cache, unique among live threads), 0 for none: a thread whose
	 * cache entry another region took finds its shard again. */
	_Atomic uintptr_t owner;
	_Atomic uint64_t lat_hist[LM_LAT_BUCKETS];
} __attribute__((aligned(64)));

/* f->slot of a fault staged in its shard's own buffer (not a pool slot). */
#define LM_SLOT_SHARD LM_STAGING_SLOTS

struct lm_handlers {
	pthread_t thread[LM_MAX_HANDLERS];
	unsigned nr;
	int stop_fd;		/* eventfd: readable means exit */
	unsigned view;		/* the blocking view they serve */
};

struct lm_background {
	pthread_t thread;
	bool configured;	/* lm_region_config.background */
	bool running;
	_Atomic bool stop;
	/* Set from start until the fill's loop ends: the collapser
	 * (collapse.c) starts no collapse meanwhile. */
	_Atomic bool filling;
	void *batch;		/* COPY install: a run of pages is read here */
	size_t batch_size;
};

/* Write-protect tracking (wp.c), for live snapshots. */
struct lm_wp {
	enum lm_wp_mode mode;
	_Atomic bool busy;		/* a protection runs (protect..release) */
	/* Installs of missing pages keep them protected (UFFDIO_COPY
	 * MODE_WP) while set: a page filled after the instant must still
	 * fault on its first write. */
	_Atomic bool active;
	struct lm_wp_consumer consumer;	/* sync: set before active */
	int pagemap_fd;			/* async: /proc/self/pagemap */
};

/* Reclaim (evict.c): the page store and the eviction's staging area. */
struct lm_reclaim {
	struct lm_page_store *store;	/* NULL: no eviction */
	/* anon: 64 pages registered with view 0's userfaultfd, where
	 * UFFDIO_MOVE puts a run (its destination must be registered with
	 * the same userfaultfd); memfd: a plain buffer the run is copied to */
	uint8_t *stage;
	/* anon: where the kernel copies a moved run for the store to
	 * read (evict.c: read_moved says why) */
	uint8_t *bounce;
	pthread_mutex_t lock;		/* one eviction at a time uses stage */
	/* Evictions in progress: a sync snapshot's protect waits for
	 * them to end, and no eviction starts while one runs. */
	_Atomic unsigned evicting;
};

#define LM_EVICT_RUN 64

/* Huge pages after the fill (collapse.c). */
#define LM_THP_SHIFT 21			/* 2 MiB ranges */

struct lm_thp_state {
	enum lm_thp mode;
	uint64_t nr_ranges;		/* whole 2 MiB ranges in the region */
	/* One bit per range: a huge page now (collapsed by us, or found
	 * one). Cleared when a page of it is evicted. */
	_Atomic uint64_t *huge;
	/* Collapses in progress: a live snapshot's protect waits for them
	 * to end, and none starts while one runs (the same announce-then-
	 * look handshake as evictions). */
	_Atomic unsigned collapsing;
	pthread_mutex_t pass;		/* one collapse pass at a time */
	/* LM_THP_AUTO: the collapser thread. chunks is a futex word the
	 * completing install bumps when a 4 MiB chunk becomes complete;
	 * it wakes the thread only while `sleeping` says it waits. */
	pthread_t thread;
	bool running;
	_Atomic bool stop;
	_Atomic uint32_t chunks;
	_Atomic uint32_t sleeping;
};

struct lm_region {
	char name[64];
	uint64_t size, page_size, nr_pages;
	unsigned page_shift;
	unsigned fault_around;		/* pages per demand fault, >= 1 */
	enum lm_backing backing;
	enum lm_install install;
	enum lm_delivery delivery;
	int memfd;
	uint8_t *alias;
	struct lm_view view[LM_MAX_VIEWS];
	unsigned nr_views;
	struct lm_source *src;
	lm_fail_fn on_fail;
	void *on_fail_arg;

	struct lm_pagemap map;
	struct lm_staging staging;
	struct lm_handlers handlers;
	struct lm_background bg;
	/* LM_STAT_SHARDS shards (mmapped: untouched ones cost nothing);
	 * shards_used: how many were handed out beyond shard 0. */
	struct lm_stats_shard *shards;
	_Atomic unsigned shards_used;
	uint64_t id;			/* unique per region, never 0 */

	/*
	 * Completion: pages present or failed, counted per chunk of
	 * LM_DONE_CHUNK pages with each chunk's count on a cache line of its
	 * own (mmapped, touched as chunks fill). One region-wide count of
	 * pages done was a line every fault of every thread wrote; now
	 * threads faulting different chunks write different lines, and only
	 * a chunk's last page writes chunks_done.
	 */
	struct lm_done_chunk *done;
	uint64_t nr_chunks;
	_Atomic uint64_t chunks_done;	/* chunks whose every page is done */
	_Atomic uint32_t complete;	/* futex word: 1 when all chunks are */
	_Atomic int first_err;
	_Atomic uint64_t first_err_off;
	int sigbus_slot;		/* index in the SIGBUS registry, or -1 */
	/*
	 * Adopted from another process (foreign.c): view 0's address is in
	 * that process and never dereferenced here, the userfaultfd belongs
	 * to the foreign space, installs return -EAGAIN instead of retrying
	 * (the events that clear it are read by the same thread), and pages
	 * can be removed (LM_PS_REMOVED).
	 */
	bool foreign;
	const uint8_t *image;		/* foreign: the source mapped, or NULL */
	/* Foreign: held for reading by batched installs, for writing while
	 * events are read and applied (prefetch.c says why). */
	pthread_rwlock_t *events_lock;
	struct lm_wp wp;
	struct lm_reclaim reclaim;
	struct lm_thp_state thp;
	/* Zeroes to UFFDIO_COPY from where UFFDIO_ZEROPAGE will not do (a
	 * live snapshot's protected installs, a huge-page region's zero
	 * pages): read-only, never written, so it costs no memory. NULL
	 * when neither is configured. */
	void *zero;
	uint64_t zero_size;
};

/* A page its foreign owner gave back (balloon): it reads as zero from now
 * on and is never filled from the source again. Always false for regions
 * lazymem maps itself. */
static inline bool lm__page_removed(const struct lm_region *r, uint64_t idx)
{
	return r->foreign && lm_pagemap_removed(&r->map, idx);
}

#define LM_DONE_CHUNK_SHIFT 10
#define LM_DONE_CHUNK (1ull << LM_DONE_CHUNK_SHIFT)	/* pages */

struct lm_done_chunk {
	_Atomic uint64_t n;
} __attribute__((aligned(64)));

/* fault.c: pages [first, first+n) are done (present or failed), or, for
 * lm__pages_undone, no longer (a foreign owner removed them). */
void lm__pages_note_done(struct lm_region *r, uint64_t first, uint64_t n);
void lm__page_undone(struct lm_region *r, uint64_t idx);

/* stats.c: the shard the calling thread writes. */
struct lm_stats_shard *lm__shard_slow(struct lm_region *r);
int lm__stats_init(struct lm_region *r);
void lm__stats_fini(struct lm_region *r);
/* Demand faults in progress, summed over the shards. */
int64_t lm__demand_active(const struct lm_region *r);

/* Direct-mapped by region id: two regions whose ids agree mod 16 take each
 * other's entry, and the miss (lm__shard_slow) finds the thread's shard
 * again by its owner; only a scan of the shards in use, never a new one. */
struct lm__shard_cache {
	uint64_t id;			/* region id, 0: empty */
	unsigned shard;
};
#define LM_SHARD_CACHE 16
/* initial-exec: no __tls_get_addr (which may call malloc) in a signal
 * handler; the 256 bytes come from glibc's static TLS surplus. */
extern __thread struct lm__shard_cache lm__shard_cache[LM_SHARD_CACHE]
	__attribute__((tls_model("initial-exec")));

static inline struct lm_stats_shard *lm__shard(struct lm_region *r)
{
	const struct lm__shard_cache *c =
		&lm__shard_cache[r->id % LM_SHARD_CACHE];

	if (__builtin_expect(c->id == r->id, 1))
		return &r->shards[c->shard];
	return lm__shard_slow(r);
}

/* Add n to counter `field` of the calling thread's shard. */
#define lm__count(r, field, n)                                              \
	atomic_fetch_add_explicit(&lm__shard(r)->field, (uint64_t)(n),      \
				  memory_order_relaxed)

/* fault.c: the fault path proper, used by every delivery. */
int lm__fault_begin(struct lm_region *r, unsigned view, uint64_t off,
		    enum lm_fault_origin origin, struct lm_fault *f,
		    bool want_page);
int lm__fault(struct lm_region *r, unsigned view, uint64_t off,
	      enum lm_fault_origin origin);
/* A run of pages installed at once (background fill); see fault.c. */
void lm__pages_done(struct lm_region *r, uint64_t first, uint64_t n,
		    uint32_t state, enum lm_fault_origin origin, bool zero);
void lm__record_error(struct lm_region *r, uint64_t off, int err);
/* Install claimed pages [off, off+len) from buf (NULL: zero pages; CONTINUE:
 * the alias already holds them) in view `view`, or, for CONTINUE, in every
 * view when all_views. EEXIST is success (the page is there: sleepers are
 * woken); foreign regions return -EAGAIN while an event is pending. */
int lm__install_range(struct lm_region *r, unsigned view, bool all_views,
		      uint64_t off, const uint8_t *buf, uint64_t len);
/* Map [off, off+len) of the alias into every view (CONTINUE install). */
int lm__continue_all(struct lm_region *r, uint64_t off, uint64_t len);

/* region.c: a region over memory of another process (foreign.c). */
int lm__region_adopt(const char *name, int uffd, uint64_t addr,
		     uint64_t size, uint64_t page_size, struct lm_source *src,
		     struct lm_region **out);

/* prefetch.c: install pages [first, first+n), all claimed by the caller,
 * reading them into buf (n pages) with one source read and one
 * UFFDIO_COPY without waking; wake: one UFFDIO_WAKE over them at the end.
 * 0, or -EAGAIN (foreign: an event is pending; pages not installed were
 * given back MISSING), or the first page error (those pages failed). */
int lm__install_claimed(struct lm_region *r, uint64_t first, uint64_t n,
			void *buf, bool wake);

/* Each page's outcome in a run of at most 64: bit j is page first + j. */
struct lm__run_outcome {
	uint64_t installed, failed;
};
/* lm__install_claimed with the content given (lm_region_install_run):
 * data holds the n pages, or is NULL for zero pages; page: one page of
 * scratch. Counted under origin; out gets each page's outcome. */
int lm__install_claimed_given(struct lm_region *r, uint64_t first, uint64_t n,
			      const void *data, enum lm_fault_origin origin,
			      void *page, struct lm__run_outcome *out);

/* wp.c: a fault that may be a write-protect one (see lm_wp_fault). */
int lm__wp_fault(struct lm_region *r, unsigned view, uint64_t off,
		 enum lm_fault_origin origin);
int lm__wp_init(struct lm_region *r, enum lm_wp_mode mode);
void lm__wp_fini(struct lm_region *r);
/* The userfaultfd features and register mode a write-protect mode needs. */
uint64_t lm__wp_features(const struct lm_region *r);
uint64_t lm__wp_register_mode(const struct lm_region *r);

/* handler.c */
int lm__handlers_start(struct lm_region *r, unsigned view, unsigned n,
		       const int *cpus);
void lm__handlers_stop(struct lm_region *r);

/* sigbus.c */
int lm__sigbus_register(struct lm_region *r);
void lm__sigbus_unregister(struct lm_region *r);

/* background.c */
int lm__background_start(struct lm_region *r);
void lm__background_stop(struct lm_region *r);

/* stats.c */
void lm__stats_latency(struct lm_region *r, uint64_t ns);
void lm__stats_refault(struct lm_region *r, uint64_t ns);

/* evict.c */
uint64_t lm__reclaim_features(const struct lm_region *r);
uint64_t lm__reclaim_register_mode(const struct lm_region *r);
int lm__reclaim_init(struct lm_region *r, struct lm_page_store *s);
void lm__reclaim_fini(struct lm_region *r);
/* A sync snapshot's protect: wait until no eviction runs (bounded: an
 * eviction waits on nothing but its own ioctls and the store). */
void lm__reclaim_quiesce(struct lm_region *r);

/* collapse.c */
int lm__thp_init(struct lm_region *r, enum lm_thp mode);
int lm__thp_start(struct lm_region *r);
void lm__thp_fini(struct lm_region *r);
/* What the collapser waits for happened: a chunk of LM_DONE_CHUNK pages
 * became complete, or the background fill ended (fault path: one atomic
 * add, a futex wake only if the collapser sleeps). */
void lm__thp_wake(struct lm_region *r);
/* Page idx is no longer present (evicted): its range is not huge now. */
void lm__thp_page_gone(struct lm_region *r, uint64_t idx);
/* A live snapshot's protect: wait until no collapse runs. */
void lm__thp_quiesce(struct lm_region *r);

#endif
