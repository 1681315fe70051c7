/*
 * reclaim/pstore_codec.h - page compression for the in-memory store: LZ4,
 * or zstd with a pool of preallocated decompression contexts.
 *
 * Private to src/reclaim. Compression runs under the store's lock (one
 * output buffer, one zstd compression context); decompression runs on the
 * fault path, possibly in a SIGBUS handler, and takes no lock and
 * allocates nothing (pstore_codec.c says how the zstd pool does that).
 */
#ifndef LAZYMEM_RECLAIM_PSTORE_CODEC_H
#define LAZYMEM_RECLAIM_PSTORE_CODEC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "reclaim/pstore.h"

#define PSTORE_MAX_DCTX 64	/* the free set is one 64-bit word */

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

struct pstore_codec {
	enum lm_pstore_codec kind;
	int level;			/* zstd only */
	uint64_t page_size;
	uint8_t *out;			/* compression output (under lock) */
	size_t out_cap;
	struct ZSTD_CCtx_s *cctx;	/* zstd: compression (under lock) */
	void *dmem;			/* zstd: the contexts' memory */
	size_t dmem_bytes;
	struct ZSTD_DCtx_s *dctx[PSTORE_MAX_DCTX];
	unsigned nr_dctx;
	_Atomic uint64_t dfree;		/* bit i: dctx[i] is free */
	_Atomic uint64_t yields;	/* takes that found none free */
};

/*
 * Set up c for pages of page_size bytes. level: zstd's (0: the default),
 * must be 0 for LZ4. contexts: zstd decompression contexts (0: the
 * default, 2 x online CPUs, at least 4, at most 64). -EINVAL with a
 * message naming the bad value, -ENOMEM.
 */
int pstore_codec_init(struct pstore_codec *c, enum lm_pstore_codec kind,
		      int level, unsigned contexts, uint64_t page_size);
void pstore_codec_fini(struct pstore_codec *c);

/* Compress the page into c->out (under the store's lock): its length, or
 * 0 when it does not come out smaller than the page. */
uint32_t pstore_codec_compress(struct pstore_codec *c, const void *page);

/* The page compressed into len bytes at in, back into dst: 0, or -EIO
 * when it does not decompress to exactly a page. Lock-free,
 * async-signal-safe, no allocation. */
int pstore_codec_decompress(struct pstore_codec *c, const void *in,
			    uint32_t len, void *dst);

/* The highest zstd level this libzstd takes. */
int pstore_codec_zstd_max_level(void);

/* Memory it holds (output buffer, zstd contexts), for the usage figures. */
uint64_t pstore_codec_mem_bytes(const struct pstore_codec *c);

#endif
