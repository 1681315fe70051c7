/*
 * chunk.c - naming, packing and checking chunks (see chunk.h).
 *
 * SHA-256 comes from OpenSSL's libcrypto (SHA-NI on this CPU); the
 * low-level SHA256_Init/Update/Final are used, not the one-shot SHA256()
 * or EVP, because OpenSSL 3's one-shot and EVP digests fetch an algorithm
 * object and allocate, which a SIGBUS handler must not. zstd's static
 * decompression context (ZSTD_initStaticDCtx) is the same idea: its
 * memory is given to it once, so it cannot allocate later.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <zstd.h>

#include "store/chunk.h"

struct store_dctx {
	ZSTD_DCtx *z;		/* lives in mem */
	void *mem;
};

void store_sha256(const void *p, size_t n, uint8_t out[STORE_HASH_LEN])
{
	SHA256_CTX c;

	SHA256_Init(&c);
	SHA256_Update(&c, p, n);
	SHA256_Final(out, &c);
}

void store_hex(const uint8_t h[STORE_HASH_LEN], char out[STORE_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < STORE_HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[STORE_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int store_unhex(const char *s, uint8_t out[STORE_HASH_LEN])
{
	for (int i = 0; i < STORE_HASH_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return s[STORE_HEX_LEN] ? -EINVAL : 0;
}

bool store_is_zero(const void *p, size_t n)
{
	static const uint8_t zero[64];
	const uint8_t *b = p;

	if (n < 64)
		return !memcmp(b, zero, n);
	return !memcmp(b, zero, 64) && !memcmp(b, b + 64, n - 64);
}

size_t store_chunk_bound(size_t len)
{
	size_t z = ZSTD_compressBound(len);

	return z > len ? z : len;
}

int store_chunk_pack(const void *data, size_t len, int level, void *out,
		     size_t cap, size_t *out_len, enum store_comp *comp)
{
	size_t n = ZSTD_compress(out, cap, data, len, level);

	if (ZSTD_isError(n))
		return -EIO;
	if (n < len) {
		*out_len = n;
		*comp = STORE_COMP_ZSTD;
		return 0;
	}
	memcpy(out, data, len);	/* incompressible: stored raw */
	*out_len = len;
	*comp = STORE_COMP_RAW;
	return 0;
}

struct store_dctx *store_dctx_create(void)
{
	struct store_dctx *d = calloc(1, sizeof(*d));
	size_t sz = ZSTD_estimateDCtxSize();

	if (!d)
		return NULL;
	/* 8-byte aligned, as ZSTD_initStaticDCtx requires: malloc's is. */
	d->mem = malloc(sz);
	d->z = d->mem ? ZSTD_initStaticDCtx(d->mem, sz) : NULL;
	if (!d->z) {
		free(d->mem);
		free(d);
		return NULL;
	}
	return d;
}

void store_dctx_destroy(struct store_dctx *d)
{
	if (!d)
		return;
	free(d->mem);
	free(d);
}

int store_chunk_unpack(struct store_dctx *d, const void *stored,
		       size_t stored_len, enum store_comp comp, void *out,
		       size_t len, const uint8_t hash[STORE_HASH_LEN])
{
	uint8_t got[STORE_HASH_LEN];

	if (comp == STORE_COMP_RAW) {
		if (stored_len != len)
			return -EBADMSG;
		memcpy(out, stored, len);
	} else {
		size_t n = ZSTD_decompressDCtx(d->z, out, len, stored,
					       stored_len);

		if (ZSTD_isError(n) || n != len)
			return -EBADMSG;
	}
	store_sha256(out, len, got);
	return memcmp(got, hash, STORE_HASH_LEN) ? -EBADMSG : 0;
}
