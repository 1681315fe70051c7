/*
 * reclaim_codec.h - the codec micro-figure of "lazymem bench reclaim":
 * what a page costs to put into and take out of the in-memory store with
 * each codec, on the benchmark's own pages (reclaim_codec.c).
 */
#ifndef LAZYMEM_BENCH_RECLAIM_CODEC_H
#define LAZYMEM_BENCH_RECLAIM_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#define RECLAIM_NR_CODECS 3	/* lz4, zstd:1, zstd:3 */

/* One codec on one class of pages: best of a few passes, per page. */
struct reclaim_codec_fig {
	char codec[16];		/* as --codec takes it */
	bool compressible;	/* the 3x half, or the incompressible one */
	double put_ns, take_ns;
	double bytes;		/* data bytes held per page */
	bool verified;		/* every page came back exact */
	char err[160];		/* a store that could not be made */
};

/* fill(arg, p, page) writes page p (odd p: incompressible) of 4 KiB. */
typedef void reclaim_fill_fn(void *arg, uint64_t p, void *page);

/* Fill figs[2 * RECLAIM_NR_CODECS]; false if any failed or differed. */
bool reclaim_codec_measure(reclaim_fill_fn *fill, void *arg,
			   struct reclaim_codec_fig *figs);

#endif
