/*
 * http.c - the store's HTTP engine over libcurl's multi interface (see
 * http.h for what it promises).
 *
 * Connections are reused by the multi handle's connection pool (one per
 * struct store_http); a share handle adds the DNS cache and TLS sessions,
 * so a second engine in the process (push's, a source's) resolves and
 * handshakes no more than needed. Requests wait in two queues, urgent
 * first, and at most `parallel` are running; a request that failed in a
 * way that may pass waits in the retry list until its backoff is over.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "store/chunk.h"
#include "store/http.h"
#include "util/clock.h"

struct store_http {
	struct store_http_opts o;
	CURLM *multi;
	CURLSH *share;
	struct curl_slist *connect_to;
	char userpwd[512];
	struct store_req *uq, *uq_tail, *q, *q_tail, *retry;
	unsigned running;
	CURL **idle;
	unsigned n_idle;
	struct store_req **run;		/* running requests, parallel slots */
	atomic_uint_fast64_t requests;	/* read by other threads: statistics */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int store_http_create(const struct store_http_opts *o,
		      struct store_http **out, char *why, size_t why_len)
{
	struct store_http *h;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(why, why_len, "libcurl: %s",
			 curl_easy_strerror(global_rc));
		return -EIO;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	h->o = *o;
	if (!h->o.parallel)
		h->o.parallel = 8;
	if (!h->o.connect_timeout_ms)
		h->o.connect_timeout_ms = 3000;
	if (!h->o.timeout_ms)
		h->o.timeout_ms = 20000;
	if (!h->o.low_speed_s)
		h->o.low_speed_s = 5;
	if (!h->o.retries && !h->o.no_retries)
		h->o.retries = 3;
	if (!h->o.backoff_ms)
		h->o.backoff_ms = 100;
	if (o->sigv4) {
		if (!o->access_key || !o->secret_key ||
		    strchr(o->access_key, ':')) {
			free(h);
			snprintf(why, why_len, "SigV4 signing needs an access "
				 "key (without ':') and a secret key "
				 "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
			return -EINVAL;
		}
		snprintf(h->userpwd, sizeof(h->userpwd), "%s:%s",
			 o->access_key, o->secret_key);
	}
	h->idle = calloc(h->o.parallel, sizeof(*h->idle));
	h->run = calloc(h->o.parallel, sizeof(*h->run));
	h->multi = curl_multi_init();
	h->share = curl_share_init();
	if (o->connect_to)
		h->connect_to = curl_slist_append(NULL, o->connect_to);
	if (!h->idle || !h->run || !h->multi || !h->share ||
	    (o->connect_to && !h->connect_to)) {
		store_http_destroy(h);
		snprintf(why, why_len, "libcurl: out of memory");
		return -ENOMEM;
	}
	/* One thread drives a store_http: the share needs no lock of its own. */
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)h->o.parallel);
	*out = h;
	return 0;
}

static void req_release(struct store_req *r)
{
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
}

void store_http_destroy(struct store_http *h)
{
	if (!h)
		return;
	for (unsigned i = 0; h->run && i < h->o.parallel; i++) {
		struct store_req *r = h->run[i];

		if (!r)
			continue;
		curl_multi_remove_handle(h->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
		req_release(r);
	}
	free(h->run);
	for (unsigned i = 0; i < h->n_idle; i++)
		curl_easy_cleanup(h->idle[i]);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	if (h->share)
		curl_share_cleanup(h->share);
	curl_slist_free_all(h->connect_to);
	free(h->idle);
	free(h);
}

uint64_t store_http_requests(const struct store_http *h)
{
	return atomic_load(&h->requests);
}

static void push_tail(struct store_req **head, struct store_req **tail,
		      struct store_req *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

static void enqueue(struct store_http *h, struct store_req *r)
{
	if (r->urgent)
		push_tail(&h->uq, &h->uq_tail, r);
	else
		push_tail(&h->q, &h->q_tail, r);
}

void store_http_add(struct store_http *h, struct store_req *r)
{
	free(r->data);
	r->data = NULL;
	r->len = r->cap = 0;
	r->status = 0;
	r->content_length = 0;
	r->err = 0;
	r->why[0] = '\0';
	r->attempts = 0;
	enqueue(h, r);
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct store_req *r = arg;
	size_t len = size * n;

	if (r->len + len > r->max_len)
		return 0;	/* larger than any object we asked for */
	if (r->len + len > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 65536;
		uint8_t *d;

		while (cap < r->len + len)
			cap *= 2;
		if (cap > r->max_len)
			cap = r->max_len;
		d = realloc(r->data, cap);
		if (!d)
			return 0;
		r->data = d;
		r->cap = cap;
	}
	memcpy(r->data + r->len, p, len);
	r->len += len;
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	struct store_req *r = arg;
	size_t len = r->body_len - r->put_off;

	if (len > size * n)
		len = size * n;
	memcpy(p, (const uint8_t *)r->body + r->put_off, len);
	r->put_off += len;
	return len;
}

static const char *method_name(enum store_method m)
{
	return m == STORE_GET ? "GET" : m == STORE_PUT ? "PUT" : "HEAD";
}

/* Headers this attempt sends: the S3 payload hash when signing (S3
 * refuses signed requests without it), a fixed date for test vectors, and
 * no "Expect: 100-continue" (a round trip per PUT for nothing). */
static int req_headers(struct store_http *h, struct store_req *r)
{
	struct curl_slist *l = NULL, *n;
	char line[128];

	req_release(r);
	if (r->method == STORE_PUT && !(l = curl_slist_append(l, "Expect:")))
		return -ENOMEM;
	if (h->o.amz_date) {
		snprintf(line, sizeof(line), "X-Amz-Date: %s", h->o.amz_date);
		if (!(n = curl_slist_append(l, line)))
			goto nomem;
		l = n;
	}
	if (h->o.sigv4 && strstr(h->o.sigv4, ":s3")) {
		uint8_t sum[STORE_HASH_LEN];
		char hex[STORE_HEX_LEN + 1];

		store_sha256(r->method == STORE_PUT ? r->body : "",
			     r->method == STORE_PUT ? r->body_len : 0, sum);
		store_hex(sum, hex);
		snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
		if (!(n = curl_slist_append(l, line)))
			goto nomem;
		l = n;
	}
	r->hdrs = l;
	return 0;
nomem:
	curl_slist_free_all(l);
	return -ENOMEM;
}

static int start(struct store_http *h, struct store_req *r)
{
	CURL *e = h->n_idle ? h->idle[--h->n_idle] : curl_easy_init();

	if (!e || req_headers(h, r)) {
		if (e)
			curl_easy_cleanup(e);
		return -ENOMEM;
	}
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)h->o.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)h->o.low_speed_s);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (h->connect_to)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
	if (r->hdrs)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	if (h->o.sigv4) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, h->o.sigv4);
		curl_easy_setopt(e, CURLOPT_USERPWD, h->userpwd);
	}
	switch (r->method) {
	case STORE_GET:
		r->len = 0;
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
		break;
	case STORE_HEAD:
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		break;
	case STORE_PUT:
		r->put_off = 0;
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, r);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)r->body_len);
		break;
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return -ENOMEM;
	}
	r->easy = e;
	for (unsigned i = 0; i < h->o.parallel; i++)
		if (!h->run[i]) {
			h->run[i] = r;
			break;
		}
	r->attempts++;
	atomic_fetch_add(&h->requests, 1);
	h->running++;
	return 0;
}

static struct store_req *pop(struct store_req **head, struct store_req **tail)
{
	struct store_req *r = *head;

	if (r && !(*head = r->next))
		*tail = NULL;
	return r;
}

/* Failures that may pass on another attempt. */
static bool transient(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static int errno_of(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

/* One attempt is over: done, or back in the retry list. */
static void finish(struct store_http *h, struct store_req *r, CURLcode c,
		   store_http_done_fn done, void *arg)
{
	CURL *e = r->easy;
	bool again = false;
	long st = 0;

	curl_multi_remove_handle(h->multi, e);
	r->easy = NULL;
	h->running--;
	for (unsigned i = 0; i < h->o.parallel; i++)
		if (h->run[i] == r)
			h->run[i] = NULL;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	r->status = st;
	if (c == CURLE_OK && st >= 200 && st < 300) {
		curl_off_t cl = -1;

		curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		r->content_length = cl > 0 ? (uint64_t)cl : 0;
		r->err = 0;
	} else if (c == CURLE_OK) {
		r->err = st == 404 ? -ENOENT : st == 401 || st == 403 ?
			 -EACCES : st >= 500 || st == 429 ? -EIO : -EPROTO;
		again = st >= 500 || st == 429;
		snprintf(r->why, sizeof(r->why), "%s %.500s: HTTP %ld",
			 method_name(r->method), r->url, st);
	} else {
		r->err = errno_of(c);
		again = transient(c);
		snprintf(r->why, sizeof(r->why), "%s %.500s: %.200s",
			 method_name(r->method), r->url, curl_easy_strerror(c));
	}
	if (h->n_idle < h->o.parallel)
		h->idle[h->n_idle++] = e;
	else
		curl_easy_cleanup(e);
	if (r->err && again && r->attempts <= h->o.retries) {
		uint64_t delay = (uint64_t)h->o.backoff_ms << (r->attempts - 1);

		r->retry_at = lm_now_ns() + delay * 1000000ull;
		r->next = h->retry;
		h->retry = r;
		return;
	}
	req_release(r);
	if (r->err && r->attempts > 1) {
		size_t n = strlen(r->why);

		snprintf(r->why + n, sizeof(r->why) - n, " (%u attempts)",
			 r->attempts);
	}
	done(r, arg);
}

/* Move retries that are due to the queues; the ms until the next one. */
static int promote(struct store_http *h)
{
	uint64_t now = lm_now_ns(), next = UINT64_MAX;
	struct store_req **pp = &h->retry;

	while (*pp) {
		struct store_req *r = *pp;

		if (r->retry_at <= now) {
			*pp = r->next;
			enqueue(h, r);
		} else {
			if (r->retry_at < next)
				next = r->retry_at;
			pp = &r->next;
		}
	}
	return next == UINT64_MAX ? -1 : (int)((next - now) / 1000000 + 1);
}

static void step(struct store_http *h, store_http_done_fn done, void *arg)
{
	struct store_req *r;
	CURLMsg *m;
	int still, left;

	while (h->running < h->o.parallel &&
	       ((r = pop(&h->uq, &h->uq_tail)) || (r = pop(&h->q, &h->q_tail))))
		if (start(h, r)) {
			r->err = -ENOMEM;
			snprintf(r->why, sizeof(r->why), "%s %.500s: out of "
				 "memory", method_name(r->method), r->url);
			req_release(r);
			done(r, arg);
		}
	curl_multi_perform(h->multi, &still);
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &r);
		finish(h, r, m->data.result, done, arg);
	}
}

static unsigned pending(const struct store_http *h)
{
	unsigned n = h->running;

	for (const struct store_req *r = h->uq; r; r = r->next)
		n++;
	for (const struct store_req *r = h->q; r; r = r->next)
		n++;
	for (const struct store_req *r = h->retry; r; r = r->next)
		n++;
	return n;
}

unsigned store_http_poll(struct store_http *h, int wait_ms,
			 store_http_done_fn done, void *arg)
{
	uint64_t end = lm_now_ns() + (uint64_t)(wait_ms > 0 ? wait_ms : 0) *
			1000000ull;

	for (;;) {
		int next = promote(h), t;
		uint64_t now;

		step(h, done, arg);
		/* finishing may have freed slots for queued requests */
		if (h->running < h->o.parallel && (h->uq || h->q))
			continue;
		if (!pending(h))
			return 0;	/* nothing to wait for (store_http_wait) */
		now = lm_now_ns();
		if (now >= end)
			break;
		t = (int)((end - now) / 1000000);
		if (next >= 0 && next < t)
			t = next;
		curl_multi_poll(h->multi, NULL, 0, t > 0 ? t : 1, NULL);
		step(h, done, arg);
		break;
	}
	return pending(h);
}

void store_http_promote(struct store_http *h, struct store_req *r)
{
	struct store_req **pp = &h->q, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != r)
			continue;
		*pp = r->next;
		if (h->q_tail == r)
			h->q_tail = prev;
		r->urgent = true;
		push_tail(&h->uq, &h->uq_tail, r);
		return;
	}
	r->urgent = true;	/* running or waiting to retry: its next go */
}

void store_http_wait(struct store_http *h, int wait_ms)
{
	curl_multi_poll(h->multi, NULL, 0, wait_ms, NULL);
}

void store_http_wakeup(struct store_http *h)
{
	curl_multi_wakeup(h->multi);
}

void store_http_run(struct store_http *h, struct store_req **reqs, size_t n,
		    store_http_done_fn done, void *arg)
{
	for (size_t i = 0; i < n; i++)
		store_http_add(h, reqs[i]);
	while (store_http_poll(h, 200, done, arg))
		;
}
