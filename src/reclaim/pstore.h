/*
 * reclaim/pstore.h - the page stores reclaim evicts into (the vtable is
 * lazymem/reclaim.h's struct lm_page_store): one in memory, compressed
 * (LZ4 or zstd), one in a file, and the two as tiers: compressible pages
 * in memory, the rest spilled to the file (zswap's arrangement).
 *
 * Why here and not in the library: the stores are a policy's choice, not
 * the mechanism's; the core only needs the vtable, and the in-memory one
 * brings LZ4 and zstd, which liblazymem does not otherwise link.
 */
#ifndef LAZYMEM_RECLAIM_PSTORE_H
#define LAZYMEM_RECLAIM_PSTORE_H

#include <stdint.h>

#include <lazymem/reclaim.h>

/* What a store holds and costs, for statistics and RSS figures. */
struct lm_pstore_usage {
	uint64_t pages;		/* pages held, every tier (zero ones too) */
	uint64_t zero_pages;	/* held as a flag, no bytes */
	uint64_t shared_pages;	/* held as a reference to an equal page */
	uint64_t data_bytes;	/* compressed (or raw) bytes of the pages;
				 * a tiered store: its memory tier's */
	uint64_t mem_bytes;	/* memory it uses: data, headers, index,
				 * codec contexts; a tiered store: the
				 * lower store's index too, never its disk */
	uint64_t disk_bytes;	/* file store, or a tiered store's lower
				 * one: bytes allocated on disk */
	uint64_t spilled_pages;	/* tiered: pages held in the lower store */
	uint64_t put_failed;	/* pages refused (full, no memory, I/O);
				 * tiered: refused by both tiers */
	uint64_t take_yields;	/* zstd: takes that waited for a free
				 * decompression context */
};

/* zstd's level when none is given: docs/reclaim.md has the figures that
 * chose it (level 3 compressed the benchmark's pages slower for about the
 * same size). */
#define LM_PSTORE_ZSTD_DEFAULT_LEVEL 1

enum lm_pstore_codec {
	LM_PSTORE_LZ4,		/* the default: about 1 us a page back */
	LM_PSTORE_ZSTD,		/* denser, slower (docs/reclaim.md) */
};

/*
 * The in-memory store's options; zeroes give the simple store (LZ4, no
 * limit, no lower tier).
 *
 * spill: a lower store (made by lm_pstore_file_create or this file's
 * other calls: lm_pstore_usage must work on it) for the pages memory
 * should not hold: a page compressing to more than spill_over_pct percent
 * of a page (kept raw counts as more), and a page the memory tier refuses
 * (over max_bytes: -ENOSPC, or out of memory). max_bytes then sizes the
 * memory tier instead of refusing. A page the lower store refuses too is
 * refused (it stays resident, counted in put_failed). take() forwards to
 * the lower store's take, which must be as signal-safe as ours (the file
 * store's pread + punch is).
 *
 * Ownership: the memory store takes the spill store from the call on. It
 * is destroyed with the memory store, or before the call returns if the
 * create fails: the caller destroys one object either way, and never the
 * spill store itself (it would leave slots pointing into a freed store).
 */
struct lm_pstore_memory_config {
	uint64_t max_bytes;	/* data bytes in memory, 0: no limit */
	enum lm_pstore_codec codec;
	int level;		/* zstd 1..ZSTD_maxCLevel(), 0: the
				 * default; lz4: 0 only */
	unsigned zstd_contexts;	/* decompression contexts, 1..64; 0:
				 * 2 x online CPUs, at least 4 */
	struct lm_page_store *spill;	/* lower store, owned; NULL: none */
	/* Spill a page compressing to more than this percent of a page,
	 * 1..100; 0: 75 (default), which keeps in memory only pages that
	 * save at least a quarter of their size: a page at 75-100% saves
	 * little memory for a decompression on every refault, while on disk
	 * it costs one state byte. 0 without a spill store. */
	unsigned spill_over_pct;
};


/*
 * In memory: zero pages as a flag, equal pages stored once (XXH3 of the
 * compressed bytes, then compared), each other page compressed (kept raw
 * when that does not save), or spilled to a lower store (above).
 * region_size / page_size: the region it serves. -EINVAL naming the bad
 * option, -ENOMEM.
 */
int lm_pstore_memory_create_with(uint64_t region_size, uint64_t page_size,
				 const struct lm_pstore_memory_config *c,
				 struct lm_page_store **out);

/* The simple form: LZ4, no lower store; max_bytes: refuse pages
 * (-ENOSPC) beyond this much data, 0 for no limit. */
int lm_pstore_memory_create(uint64_t region_size, uint64_t page_size,
			    uint64_t max_bytes, struct lm_page_store **out);

/*
 * In a file (created, or truncated, at path): page off at file offset off,
 * zero pages as a flag, a refaulted page's blocks given back (punched).
 * A write that fails (disk full, RLIMIT_FSIZE with SIGXFSZ ignored)
 * refuses the page, which stays resident.
 */
int lm_pstore_file_create(const char *path, uint64_t region_size,
			  uint64_t page_size, struct lm_page_store **out);

/* Both tiers: a memory store with options c over a file store at path
 * (created, or truncated) as its spill. c->spill must be NULL. */
int lm_pstore_tiered_create(const char *path, uint64_t region_size,
			    uint64_t page_size,
			    const struct lm_pstore_memory_config *c,
			    struct lm_page_store **out);

/* Only for stores made above. */
void lm_pstore_usage(struct lm_page_store *s, struct lm_pstore_usage *u);

/* A codec option's value: "lz4", "zstd" or "zstd:LEVEL". -EINVAL with a
 * message naming what (the option) and the value. */
int lm_pstore_parse_codec(const char *what, const char *arg,
			  enum lm_pstore_codec *codec, int *level);
/* "lz4" or "zstd". */
const char *lm_pstore_codec_name(enum lm_pstore_codec codec);

#endif
