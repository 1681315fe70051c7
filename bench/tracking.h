/*
 * tracking.h - the write-tracking mechanisms `lazymem bench tracking`
 * compares (tracking_mech.c, tracking_mprotect.c), behind one small
 * interface: open (memory filled and tracking armed), collect (the pages
 * written since the last collect as a bitmap, tracking re-armed), close.
 *
 * Every mechanism owns SIZE bytes of its own memory, split into slices of
 * contiguous pages, one per writer thread; a recording mechanism keeps one
 * record array per slice, appended to only by the slice's own writer (in
 * its signal handler), so the fault path shares nothing between threads.
 */
#ifndef LAZYMEM_BENCH_TRACKING_H
#define LAZYMEM_BENCH_TRACKING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#define TRK_PS 4096ull			/* the tracked page */
#define TRK_WORDS (TRK_PS / 8)
#define TRK_MAX_THREADS 64

enum trk_mech {
	TRK_NONE,	/* no tracking: the writes alone (the limit) */
	TRK_ASYNC,	/* async uffd-wp, collected with PAGEMAP_SCAN */
	TRK_SYNC,	/* sync uffd-wp, SIGBUS on the writing thread */
	TRK_MPROTECT,	/* PROT_READ + SIGSEGV handler, the classic one */
	NR_TRK
};

/* Mechanisms this machine cannot run: a row each, with the reason. */
enum trk_skipped { TRK_KVM_LOG, TRK_KVM_RING, TRK_SOFT_DIRTY, NR_TRK_SKIP };

/* One slice's record: the pages its writer faulted on since the last
 * collect, in fault order. */
struct trk_rec {
	uint64_t *pages;
	uint64_t n, cap;
	_Atomic int overflow;		/* more faults than pages: a bug */
};

struct trk {
	enum trk_mech mech;
	uint64_t *mem;			/* page p's words at p * TRK_WORDS */
	uint64_t size, nr_pages;
	unsigned nslices;
	uint64_t per_slice;		/* pages; the last slice takes the rest */
	struct trk_rec rec[TRK_MAX_THREADS];
	struct lm_source *src;		/* uffd-wp: the region's (zero) */
	struct lm_region *r;
	struct lm_wp_consumer consumer;	/* sync: records, declines the copy */
	_Atomic int fault_err;		/* mprotect: first failure in a handler */
	_Atomic int misuse;		/* sync: the library copied a page */
};

const char *trk_name(enum trk_mech m);
/* The slice page p belongs to. */
unsigned trk_slice_of(const struct trk *t, uint64_t p);
/* Slice s's first page and its page count. */
void trk_slice(const struct trk *t, unsigned s, uint64_t *first,
	       uint64_t *n);

/*
 * Map SIZE bytes for mechanism m, write every page once (word 0 = page
 * << 32, the last word the page's pattern) and arm the tracking. 0, or
 * -errno with why filled.
 */
int trk_open(struct trk *t, enum trk_mech m, uint64_t size,
	     unsigned nslices, char *why, size_t len);
/*
 * The pages written since open or the previous collect as bits of bitmap
 * (zeroed by the caller), *count of them (a page recorded twice counts
 * twice: the caller checks the count too), then tracking re-armed. The
 * whole call is the collection cost. 0, or -errno with why filled.
 */
int trk_collect(struct trk *t, uint64_t *bitmap, uint64_t *count,
		char *why, size_t len);
void trk_close(struct trk *t);

/* tracking_mprotect.c: mprotect + SIGSEGV (one tracker at a time). */
int trk_mprotect_arm(struct trk *t, char *why, size_t len);
int trk_mprotect_collect(struct trk *t, uint64_t *bitmap, uint64_t *count,
			 char *why, size_t len);
void trk_mprotect_disarm(struct trk *t);

/* Move slice records into bitmap and count; rec n back to 0. -EOVERFLOW
 * if a record overflowed. */
int trk_drain_records(struct trk *t, uint64_t *bitmap, uint64_t *count);

/* The skipped mechanisms: name, and why not run here (probed). */
const char *trk_skipped_name(enum trk_skipped s);
void trk_skipped_reason(enum trk_skipped s, char *buf, size_t len);

#endif
