/*
 * http.h - the store's transport: many HTTP requests at once over reused
 * connections (libcurl's multi interface), each with a connect, low-speed
 * and total timeout, retried with exponential backoff when the failure is
 * one that may pass (no connection, a timeout, a cut transfer, 5xx, 429),
 * never when it cannot (404, 403, other 4xx). Optionally signed with AWS
 * Signature V4 (curl's CURLOPT_AWS_SIGV4), for any S3-compatible store.
 *
 * One struct store_http is driven by one thread at a time (the caller of
 * store_http_poll); store_http_wakeup may be called from any thread.
 */
#ifndef LAZYMEM_STORE_HTTP_H
#define LAZYMEM_STORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_http_opts {
	unsigned parallel;		/* transfers at once; 0: 8 */
	unsigned connect_timeout_ms;	/* 0: 3000 */
	unsigned timeout_ms;		/* whole request; 0: 20000 */
	unsigned low_speed_s;		/* under 1 KiB/s this long fails; 0: 5 */
	unsigned retries;		/* after the first attempt; default 3 */
	bool no_retries;		/* retries = 0 really */
	unsigned backoff_ms;		/* first retry's delay, doubled; 0: 100 */
	/* SigV4: the provider string ("aws:amz:REGION:s3"), key and secret;
	 * NULL provider: unsigned requests. */
	const char *sigv4;
	const char *access_key, *secret_key;
	/* Tests: a CURLOPT_CONNECT_TO entry ("HOST:PORT:ADDR:PORT") and a
	 * fixed X-Amz-Date instead of the clock (AWS's test vectors). */
	const char *connect_to;
	const char *amz_date;
};

enum store_method { STORE_GET, STORE_PUT, STORE_HEAD };

struct store_req {
	enum store_method method;
	char url[640];
	bool urgent;			/* goes ahead of queued non-urgent ones */
	const void *body;		/* PUT */
	size_t body_len;
	size_t max_len;			/* GET: a longer body is refused */
	void *arg;			/* the caller's */
	/* results */
	uint8_t *data;			/* GET body (malloc'd, caller frees) */
	size_t len;
	long status;			/* last HTTP status, 0 if none */
	uint64_t content_length;	/* HEAD: the object's size */
	int err;			/* 0, -ENOENT (404), -ETIMEDOUT, -EIO, ... */
	char why[768];			/* with err: what happened, URL named */
	unsigned attempts;
	/* private to http.c */
	struct store_req *next;
	void *easy;
	void *hdrs;			
	size_t cap, put_off;
	uint64_t retry_at;
};

struct store_http;

int store_http_create(const struct store_http_opts *o,
		      struct store_http **out, char *why, size_t why_len);
/* Transfers still running are abandoned (their requests untouched but
 * for their private fields); queued ones are forgotten. */
void store_http_destroy(struct store_http *h);

/* Queue r (its results are reset). */
void store_http_add(struct store_http *h, struct store_req *r);
/* Finished requests are handed to done (success, or failure after the
 * retries). Runs transfers for at most wait_ms, returning at once when
 * none is left; returns how many requests are still queued, running or
 * waiting for a retry. */
typedef void (*store_http_done_fn)(struct store_req *r, void *arg);
unsigned store_http_poll(struct store_http *h, int wait_ms,
			 store_http_done_fn done, void *arg);
/* A queued request not yet started goes ahead of every non-urgent one
 * (a demand fault wanting what prefetch queued). */
void store_http_promote(struct store_http *h, struct store_req *r);
/* Sleep up to wait_ms with nothing to transfer, or until woken. */
void store_http_wait(struct store_http *h, int wait_ms);
/* Make a store_http_poll or store_http_wait in another thread return
 * early (async-signal-safe: a write to libcurl's wakeup pipe). */
void store_http_wakeup(struct store_http *h);
/* Add all n and poll until every one is done. */
void store_http_run(struct store_http *h, struct store_req **reqs, size_t n,
		    store_http_done_fn done, void *arg);
/* Requests started (each attempt counts): for statistics, from any thread. */
uint64_t store_http_requests(const struct store_http *h);

#endif
