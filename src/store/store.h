/*
 * store.h - snapshots in HTTP object storage, the folder's API: push a
 * snapshot directory as content-addressed chunks, pull one back eagerly
 * into a directory, or restore one lazily through a page source over a
 * host-wide chunk cache (docs/fleet.md).
 *
 * Layout in a bucket (url.h):
 *   BUCKET/chunks/HH/<sha256 hex>   one chunk, compressed, shared by every
 *                                   snapshot in the bucket
 *   BUCKET/PREFIX/manifest.json     the snapshot (manifest.h), written last
 *   BUCKET/PREFIX/ws.lmws           its working set, if it has one
 *
 * Every call returns 0 or -errno with util_last_error() saying what was
 * wrong (URL, chunk, file).
 */
#ifndef LAZYMEM_STORE_H
#define LAZYMEM_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/source.h>

#include "store/http.h"

#define STORE_DEFAULT_CHUNK (256u << 10)	/* docs/fleet.md: measured */
#define STORE_DEFAULT_LEVEL 1
#define STORE_WS_NAME "ws.lmws"			/* the working set in a DIR */

struct store_opts {
	struct store_http_opts http;
	uint64_t chunk_size;		/* push: 0 -> STORE_DEFAULT_CHUNK */
	int level;			/* push: zstd level, 0 -> default */
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
};

struct store_push_result {
	uint64_t chunks_total, chunks_zero;
	uint64_t chunks_unique;		/* distinct non-zero contents */
	uint64_t chunks_new;		/* uploaded by this push */
	uint64_t chunks_reused;		/* already in the bucket */
	uint64_t bytes_memory;		/* non-zero chunks' bytes */
	uint64_t bytes_uploaded;	/* chunk bodies sent (compressed) */
	uint64_t bytes_stored;		/* the snapshot's chunks, as stored */
	uint64_t requests;
	double seconds;
};

/* Upload snapshot DIR to URL, only the chunks the bucket lacks. */
int store_push(const char *dir, const char *url, const struct store_opts *o,
	       struct store_push_result *res);

struct store_pull_result {
	uint64_t mem_size, chunks_fetched, bytes_fetched, requests;
	double fetch_seconds, seconds;
};

/* Download URL into DIR, a snapshot directory `snapshot verify` accepts. */
int store_pull(const char *url, const char *dir, const struct store_opts *o,
	       struct store_pull_result *res);

struct store_url;
struct store_manifest;
/* GET and parse BUCKET/PREFIX/manifest.json (manifest.h). */
int store_fetch_manifest(struct store_http *h, const struct store_url *u,
			 struct store_manifest *m);

#endif
