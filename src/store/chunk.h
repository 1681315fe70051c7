/*
 * chunk.h - one chunk of a snapshot's memory in object storage: its name
 * (the SHA-256 of its uncompressed content), its stored form (zstd, or raw
 * when zstd does not make it smaller) and the check that a stored form
 * decodes to the content its name promises.
 *
 * Decoding and checking (store_chunk_unpack, store_sha256) may run in a
 * SIGBUS handler: no malloc, no locks, given a decompression context made
 * beforehand with store_dctx_create.
 */
#ifndef LAZYMEM_STORE_CHUNK_H
#define LAZYMEM_STORE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_HASH_LEN 32
#define STORE_HEX_LEN 64

enum store_comp {
	STORE_COMP_RAW,		/* stored as is: zstd did not make it smaller */
	STORE_COMP_ZSTD,
};

struct store_dctx;

/* SHA-256 of [p, p+n). Async-signal-safe. */
void store_sha256(const void *p, size_t n, uint8_t out[STORE_HASH_LEN]);
/* Lowercase hex, NUL-terminated (65 bytes). */
void store_hex(const uint8_t h[STORE_HASH_LEN], char out[STORE_HEX_LEN + 1]);
/* 64 lowercase hex digits exactly -> 0, else -EINVAL. */
int store_unhex(const char *s, uint8_t out[STORE_HASH_LEN]);
bool store_is_zero(const void *p, size_t n);

/* Room a stored form of a len-byte chunk may need while packing. */
size_t store_chunk_bound(size_t len);
/*
 * The stored form of data into out (cap bytes, at least
 * store_chunk_bound(len)): zstd at level, kept only if smaller, else raw.
 * 0, or -EIO if zstd fails.
 */
int store_chunk_pack(const void *data, size_t len, int level, void *out,
		     size_t cap, size_t *out_len, enum store_comp *comp);

/* A decompression context whose memory is allocated here, once, so
 * unpacking never allocates. NULL on ENOMEM. */
struct store_dctx *store_dctx_create(void);
void store_dctx_destroy(struct store_dctx *d);
/*
 * Decode a stored form into out (exactly len bytes expected) and check it
 * against hash. 0, or -EBADMSG (undecodable, wrong length, or the content
 * is not the one hash names). Async-signal-safe.
 */
int store_chunk_unpack(struct store_dctx *d, const void *stored,
		       size_t stored_len, enum store_comp comp, void *out,
		       size_t len, const uint8_t hash[STORE_HASH_LEN]);

#endif
