/*
 * cache.h - the host's chunk cache: a directory of chunks in their stored
 * (compressed) form, named by hash, shared by every process restoring on
 * this host, bounded in size with least-recently-used eviction.
 *
 *   DIR/HH/<64 hex>          a chunk, checked before it was renamed here
 *   DIR/HH/<64 hex>.claim    "this process is fetching it" (O_EXCL, held
 *                            with flock: a dead claimer's claim is stale)
 *   DIR/.lock                flock'd by whoever scans to evict
 *
 * Two processes needing one absent chunk fetch it once: the one that
 * makes the claim fetches, the other waits for the file. A hit marks the
 * file's access time, which eviction sorts by.
 *
 * store_cache_read is async-signal-safe (open, pread, futimens, close);
 * the rest runs on ordinary threads.
 */
#ifndef LAZYMEM_STORE_CACHE_H
#define LAZYMEM_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_CACHE_DEFAULT_SIZE (1ull << 30)

struct store_cache;

/* $XDG_CACHE_HOME/lazymem/chunks, else /var/cache/lazymem/chunks. */
void store_cache_default_dir(char *buf, size_t len);
/* Create DIR if needed and measure what it holds. 0 or -errno
 * (util_error names the directory). */
int store_cache_open(const char *dir, uint64_t max_bytes,
		     struct store_cache **out);
void store_cache_close(struct store_cache *c);

/* The chunk's stored form into buf (at most cap bytes): its length, or
 * -ENOENT when absent, -EMSGSIZE when larger than cap. */
ssize_t store_cache_read(struct store_cache *c, const char *hex, void *buf,
			 size_t cap);
bool store_cache_has(struct store_cache *c, const char *hex);

/* Claim chunk hex for fetching: 1 claimed (*fd holds it), 0 another live
 * process holds the claim, -errno on error. */
int store_cache_claim(struct store_cache *c, const char *hex, int *fd);
void store_cache_release(struct store_cache *c, const char *hex, int fd);
/*
 * Add a checked stored form. A full disk (ENOSPC, EDQUOT) evicts and
 * tries once more; 0, 1 when the chunk was there already (another
 * process fetched it too: the claims failed to prevent a second fetch;
 * the copy there is kept, the content is the same by its name), or
 * -ENOSPC / -errno (the caller then keeps the chunk in memory: never a
 * lost page). Evicts when over the bound.
 */
int store_cache_put(struct store_cache *c, const char *hex, const void *data,
		    size_t len);
/* Bytes the cache held at the last scan plus what this process added. */
uint64_t store_cache_bytes(const struct store_cache *c);
/* Scan now and evict least-recently-used chunks down to the bound. */
int store_cache_evict(struct store_cache *c, uint64_t target);

#endif
