/*
 * source.h - a page source over a chunked snapshot in object storage:
 * what a lazy restore from a URL reads its memory through.
 *
 * Reads are served from the host's chunk cache (cache.h): the chunk's
 * file is read, decoded and checked against its SHA-256 on the faulting
 * thread, with buffers and decompression contexts made at open (no
 * malloc, no libcurl: it may be a SIGBUS handler). A chunk not yet in the
 * cache is asked of the fetcher thread, ahead of any prefetch, and the
 * faulting thread waits on a futex for it, at most wait_ms. The fetcher
 * runs libcurl: the recorded working set's chunks first (in chunk order),
 * then every other non-zero chunk; zero chunks are never fetched.
 *
 * A chunk that cannot be had (404, the server down or too slow past its
 * retries, corrupt twice) fails the reads that need it with -EIO,
 * -ETIMEDOUT, -ENOENT or -EBADMSG; store_source_chunk_error says which
 * URL and chunk, and why.
 */
#ifndef LAZYMEM_STORE_SOURCE_H
#define LAZYMEM_STORE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lazymem/source.h>

#include "fcproto/wsfile.h"
#include "store/http.h"
#include "store/manifest.h"

struct store_source_opts {
	struct store_http_opts http;
	const char *cache_dir;		/* NULL: store_cache_default_dir */
	uint64_t cache_size;		/* 0: 1 GiB */
	bool no_prefetch;		/* fetch only what reads ask for */
	unsigned wait_ms;		/* a read's bound on one chunk; 0: the
					 * requests' timeouts and retries */
};

struct store_source_stats {
	uint64_t hits;			/* chunk reads the cache answered */
	uint64_t misses;		/* chunk reads that waited for a fetch */
	uint64_t chunks_fetched;	/* from the store, by this process */
	uint64_t bytes_fetched;
	uint64_t chunks_shared;		/* fetched by another process */
	uint64_t chunks_twice;		/* fetched here, but another process
					 * had put it in the cache meanwhile */
	uint64_t chunks_uncached;	/* kept in memory: the cache was full */
	uint64_t chunks_failed;
	uint64_t requests;		/* HTTP requests (attempts) */
	bool prefetch_done;		/* every non-zero chunk is in (or failed) */
};

/* Fetch URL's manifest (and working set) and start the fetcher. 0 or
 * -errno with util_last_error() naming the URL. */
int store_source_open(const char *url, const struct store_source_opts *o,
		      struct lm_source **out);
/* The manifest (the snapshot's meta.json inside it, chunks). */
const struct store_manifest *store_source_manifest(struct lm_source *s);
/* The recorded working set (n == 0 if the snapshot has none). */
const struct fc_ws *store_source_ws(struct lm_source *s);
void store_source_stats(struct lm_source *s, struct store_source_stats *st);
/* Why reads at off fail: 0 and a message naming the chunk and its URL,
 * or -ENOENT when that chunk has not failed. */
int store_source_chunk_error(struct lm_source *s, uint64_t off, char *buf,
			     size_t len);
/* Wait until prefetch has every non-zero chunk in (or failed): 0, or
 * -ETIMEDOUT. */
int store_source_wait_prefetched(struct lm_source *s, int timeout_ms);

#endif
