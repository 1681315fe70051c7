/*
 * vmsnap_internal.h - private to src/vmsnap: what a restore holds, shared
 * by restore.c (the restore itself) and ws.c (the recording source, the
 * working-set prefetcher and the recorded working set).
 */
#ifndef LAZYMEM_VMSNAP_INTERNAL_H
#define LAZYMEM_VMSNAP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lazymem/snapshot.h>

#include "fcproto/wsfile.h"
#include "vmsnap/vmsnap.h"

/*
 * RAM's view of the snapshot source: RAM offset o is memory.img offset
 * base + o. With recording on, every page read (or found zero) is appended
 * in the order the region asked for it: first touch first, since the
 * region fetches each page exactly once.
 */
struct ram_source {
	struct lm_source base;
	struct lm_source *inner;
	uint64_t base_off, page_size;
	uint64_t *rec;			/* NULL: not recording */
	uint64_t rec_cap;
	atomic_uint_fast64_t rec_n;
	/* The one page the prefetcher hands over from the working-set image
	 * (already checked there): the page's RAM offset, or UINT64_MAX. Only
	 * the thread that claimed that page reads it, and the prefetcher
	 * waits for that claim before it moves on, so the data stays put. */
	_Atomic uint64_t staged_off;
	const uint8_t *_Atomic staged_data;
};

/* ws.c: RAM's source, recording the first touch of each page. */
extern const struct lm_source_ops ram_source_ops;

/* Everything restore holds; released in one place. */
struct restore {
	const struct lm_restore_opts *o;
	struct lm_snap_meta m;
	bool have_meta;
	struct lm_source *snap;
	struct ram_source *ram;
	struct lm_vm *vm;
	const struct lm_snap_region *rreg, *rram;
	uint64_t gen, gps, reserved_size, ws_pages, seed;
	/* prefetch */
	struct fc_ws ws;
	struct lm_snap_meta ws_meta;	/* the working-set image, if any */
	struct lm_source *ws_img;
	pthread_t pf_thread;
	bool pf_running;
	atomic_bool pf_stop;
	atomic_uint_fast64_t pf_pages;
	uint64_t pf_t0, pf_t1;		/* prefetch thread start, end (ns) */
	int pf_fd;
};

/* ws.c: the working-set prefetcher, started once the vCPUs run and
 * stopped (joined) before the restore lets go of anything. */
int ws__start_prefetch(struct restore *r);
void ws__stop_prefetch(struct restore *r);
/* ws.c: write the n pages recorded as o->record_ws and its image. */
int ws__record(struct restore *r, uint64_t n);

#endif
