/*
 * url.h - where a snapshot lives: http(s)://host[:port]/bucket/prefix.
 *
 * Chunks are shared by every snapshot of a bucket, so that equal chunks
 * are stored once: BUCKET/chunks/HH/<64 hex>. A snapshot's own objects
 * (manifest.json, its working-set file) are under BUCKET/PREFIX/.
 */
#ifndef LAZYMEM_STORE_URL_H
#define LAZYMEM_STORE_URL_H

#include <stddef.h>

struct store_url {
	char base[256];		/* "http://host:port", no trailing slash */
	char bucket[128];
	char prefix[512];	/* one or more path segments, no end slash */
	char host[256];		/* host[:port] as written, for messages */
};

/* 0, or -EINVAL with why filled ("expected ..."). */
int store_url_parse(const char *s, struct store_url *u, char *why,
		    size_t why_len);
/* The URL of a chunk by its hex name / of a snapshot's object NAME.
 * -ENAMETOOLONG if it does not fit in len. */
int store_url_chunk(const struct store_url *u, const char *hex, char *buf,
		    size_t len);
int store_url_object(const struct store_url *u, const char *name, char *buf,
		     size_t len);

#endif
