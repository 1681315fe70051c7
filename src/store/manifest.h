/*
 * manifest.h - a chunked snapshot's manifest (BUCKET/PREFIX/manifest.json):
 * the snapshot's meta.json verbatim, the chunk size, and per chunk its
 * SHA-256 name, stored length and compression, or "zero" (never stored).
 *
 *   {"format": "lazymem-chunks", "version": 1, "hash": "sha256",
 *    "chunk_size": 262144, "page_size": 4096, "mem_size": N,
 *    "meta_json": "<meta.json's text>",
 *    "working_set": {"name": "ws.lmws", "size": S},      (optional)
 *    "chunks": [["<64 hex>", STORED_LEN, "zstd"|"raw"], "zero", ...]}
 *
 * It comes from the network, so the parser trusts nothing (fuzzed by
 * fuzz/store_manifest.c): every number range-checked, the meta.json
 * inside parsed and checked against the manifest, the chunk list exactly
 * as long as the memory needs.
 */
#ifndef LAZYMEM_STORE_MANIFEST_H
#define LAZYMEM_STORE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lazymem/snapshot.h>

#include "store/chunk.h"

#define STORE_MANIFEST_NAME "manifest.json"
#define STORE_MANIFEST_MAX (64u << 20)
#define STORE_CHUNK_MIN (64u << 10)
#define STORE_CHUNK_MAX (4u << 20)

struct store_chunk {
	uint8_t hash[STORE_HASH_LEN];
	bool zero;			/* all zeroes: not stored, not fetched */
	enum store_comp comp;
	uint32_t stored_len;
};

struct store_manifest {
	uint64_t chunk_size, page_size, mem_size, nr_chunks;
	struct store_chunk *chunks;
	char *meta_json;		/* meta.json's text, verbatim */
	struct lm_snap_meta meta;	/* ... and parsed */
	bool have_meta;
	char ws_name[32];		/* "" when there is no working set */
	uint64_t ws_size;
};

/* 0, or -EINVAL / -EPROTO / -ENOMEM with util_last_error() saying why. */
int store_manifest_parse(const char *text, size_t len,
			 struct store_manifest *m);
/* The manifest's text (malloc'd), or NULL. */
char *store_manifest_format(const struct store_manifest *m);
void store_manifest_free(struct store_manifest *m);

/* Bytes of chunk i (the last one may be short). */
static inline uint64_t store_chunk_len(const struct store_manifest *m,
				       uint64_t i)
{
	uint64_t off = i * m->chunk_size;

	return m->mem_size - off < m->chunk_size ? m->mem_size - off
						 : m->chunk_size;
}

#endif
