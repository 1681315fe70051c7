/*
 * reclaim/pstore.h - the page stores reclaim evicts into (the vtable is
 * lazymem/reclaim.h's struct lm_page_store): one in memory, compressed,
 * and one in a file.
 *
 * Why here and not in the library: the stores are a policy's choice, not
 * the mechanism's; the core only needs the vtable, and the in-memory one
 * brings LZ4, which liblazymem does not otherwise link.
 */
#ifndef LAZYMEM_RECLAIM_PSTORE_H
#define LAZYMEM_RECLAIM_PSTORE_H

#include <stdint.h>

#include <lazymem/reclaim.h>

/* What a store holds and costs, for statistics and RSS figures. */
struct lm_pstore_usage {
	uint64_t pages;		/* pages held (zero pages included) */
	uint64_t zero_pages;	/* held as a flag, no bytes */
	uint64_t shared_pages;	/* held as a reference to an equal page */
	uint64_t data_bytes;	/* compressed (or raw) bytes of the pages */
	uint64_t mem_bytes;	/* memory it uses: data, headers, index */
	uint64_t disk_bytes;	/* file store: bytes allocated on disk */
	uint64_t put_failed;	/* pages refused (full, no memory, I/O) */
};

/*
 * In memory: zero pages as a flag, equal pages stored once (XXH3 of the
 * compressed bytes, then compared), each other page compressed with LZ4
 * (kept raw when that does not save). max_bytes: refuse pages (-ENOSPC)
 * beyond this much data, 0 for no limit. region_size / page_size: the
 * region it serves.
 */
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

/* Only for stores made above. */
void lm_pstore_usage(struct lm_page_store *s, struct lm_pstore_usage *u);

#endif
