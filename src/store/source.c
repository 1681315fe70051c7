/*
 * source.c - the page source over a chunked snapshot (see source.h): the
 * faulting thread's read from the cache, and the fetcher thread that
 * fills the cache from the store.
 *
 * Per chunk one atomic state word, NONE -> PENDING (the fetcher has it)
 * -> READY (in the cache, or in memory when the cache could not take it)
 * or FAILED; READY goes back to NONE when a read finds the file evicted.
 * A read that misses sets the chunk's urgent flag, puts its index in a
 * lock-free ring (each chunk is in it at most once at a time, so the ring
 * needs one slot per chunk) and wakes the fetcher through libcurl's
 * wakeup pipe (a write(2)); then it futex-waits on the state word.
 * The fetcher keeps at most `parallel` prefetch requests in libcurl's
 * queue, so an urgent request never waits behind more than those.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/cache.h"
#include "store/source.h"
#include "store/store.h"
#include "store/url.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/futex.h"

enum { S_NONE, S_PENDING, S_READY, S_FAILED };

#define NSLOTS 32
#define MAX_MSGS 32

/* A faulting thread's scratch: the stored form and the decoded chunk. */
struct slot {
	atomic_int busy;
	_Atomic int64_t held;		/* chunk whose content is in out, or -1 */
	uint8_t *stored, *out;
	struct store_dctx *d;
};

struct fetch {
	struct store_req r;
	uint32_t chunk;
	bool prefetch;
	int claim_fd;
};

struct src {
	struct lm_source base;
	struct store_url url;
	struct store_manifest m;
	struct store_source_opts o;
	struct store_cache *cache;
	struct store_http *h;
	struct fc_ws ws;
	uint64_t wait_ns;
	_Atomic uint32_t *state;
	atomic_uchar *urgent;
	_Atomic int *err;
	uint8_t *_Atomic *mem;
	/* the urgent ring */
	_Atomic uint32_t *ring;
	atomic_uint_fast64_t ring_tail;
	uint64_t ring_head;
	/* fetcher only */
	uint8_t *tries;
	struct fetch **inflight;	/* per chunk, or NULL */
	uint32_t *order;		/* prefetch order */
	uint64_t n_order, cursor;
	unsigned pf_running;
	uint32_t *elsewhere;		/* claimed by another process */
	uint32_t *takeover;
	uint64_t *else_since, n_else;
	struct store_dctx *fdctx;
	uint8_t *fbuf;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop, pf_done;
	struct slot slots[NSLOTS];
	atomic_uint slot_next;
	/* statistics */
	atomic_uint_fast64_t hits, misses, fetched, bytes, shared, twice, uncached,
		failed;
	/* failure messages, by chunk */
	pthread_mutex_t msg_lock;
	unsigned nmsgs;
	struct { uint64_t chunk; char msg[700]; } msgs[MAX_MSGS];
};

static void wake(struct src *s, uint32_t i, uint32_t st)
{
	atomic_store(&s->state[i], st);
	lm_futex_wake_all(&s->state[i]);
}

/* ---------------- the faulting thread ---------------- */

static struct slot *slot_get(struct src *s, uint64_t chunk)
{
	for (;;) {
		for (int i = 0; i < NSLOTS; i++) {
			int z = 0;

			if (atomic_load(&s->slots[i].held) == (int64_t)chunk &&
			    atomic_compare_exchange_strong(&s->slots[i].busy,
							   &z, 1))
				return &s->slots[i];
		}
		/* a new chunk takes the slots in turn, so the last NSLOTS
		 * chunks decoded stay decoded */
		unsigned start = atomic_fetch_add(&s->slot_next, 1);

		for (unsigned j = 0; j < NSLOTS; j++) {
			struct slot *sl = &s->slots[(start + j) % NSLOTS];
			int z = 0;

			if (atomic_compare_exchange_strong(&sl->busy, &z, 1))
				return sl;
		}
		sched_yield();
	}
}

static void slot_put(struct slot *sl)
{
	atomic_store(&sl->busy, 0);
}

/* Chunk i's bytes [from, from+len) into dst if it can be had without
 * waiting: 0, -ENOENT (not here), -EBADMSG (the cache's copy is bad). */
static int read_here(struct src *s, uint64_t i, uint64_t from, void *dst,
		     size_t len)
{
	const struct store_chunk *k = &s->m.chunks[i];
	uint64_t clen = store_chunk_len(&s->m, i);
	struct slot *sl = slot_get(s, i);
	const uint8_t *stored;
	ssize_t n;
	int err = 0;

	if (atomic_load(&sl->held) != (int64_t)i) {
		uint8_t *mem = atomic_load(&s->mem[i]);
		char hex[STORE_HEX_LEN + 1];

		if (mem) {
			stored = mem;
			n = k->stored_len;
		} else {
			store_hex(k->hash, hex);
			n = store_cache_read(s->cache, hex, sl->stored,
					     s->m.chunk_size);
			stored = sl->stored;
		}
		if (n < 0) {
			err = -ENOENT;	/* the slot keeps what it held */
		} else {
			atomic_store(&sl->held, -1);
			err = store_chunk_unpack(sl->d, stored, (size_t)n,
						 k->comp, sl->out, clen, k->hash);
			if (!err)
				atomic_store(&sl->held, (int64_t)i);
		}
	}
	if (!err)
		memcpy(dst, sl->out + from, len);
	slot_put(sl);
	return err;
}

static void ask(struct src *s, uint32_t i)
{
	unsigned char z = 0;

	if (!atomic_compare_exchange_strong(&s->urgent[i], &z, 1))
		return;		/* already asked */
	uint64_t pos = atomic_fetch_add(&s->ring_tail, 1);

	atomic_store(&s->ring[pos % s->m.nr_chunks], i + 1);
	store_http_wakeup(s->h);
}

static int read_chunk(struct src *s, uint32_t i, uint64_t from, void *dst,
		      size_t len)
{
	uint64_t deadline = lm_now_ns() + s->wait_ns;
	bool missed = false;
	int bad = 0;

	for (;;) {
		uint32_t st = atomic_load(&s->state[i]);
		uint64_t now;
		int err;

		if (st == S_FAILED)
			return atomic_load(&s->err[i]);
		err = read_here(s, i, from, dst, len);
		if (!err) {
			atomic_fetch_add(missed ? &s->misses : &s->hits, 1);
			return 0;
		}
		if (err == -EBADMSG && ++bad > 1)
			return -EBADMSG;	/* refetched, still bad */
		if (err == -EBADMSG || st == S_READY) {
			/* evicted, or a bad copy: the fetcher gets it again */
			uint32_t r = S_READY;

			if (err == -EBADMSG)
				atomic_store(&s->state[i], S_NONE);
			else
				atomic_compare_exchange_strong(&s->state[i],
							       &r, S_NONE);
			continue;
		}
		missed = true;
		ask(s, i);
		now = lm_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = {
			.tv_sec = (time_t)((deadline - now) / 1000000000ull),
			.tv_nsec = (long)((deadline - now) % 1000000000ull),
		};
		lm_futex_wait(&s->state[i], st, &ts);
	}
}

static int src_read(struct lm_source *b, uint64_t off, void *dst, size_t len)
{
	struct src *s = (struct src *)b;
	uint8_t *d = dst;

	if (off > s->m.mem_size || len > s->m.mem_size - off)
		return -EINVAL;
	while (len) {
		uint64_t i = off / s->m.chunk_size, from = off % s->m.chunk_size;
		size_t n = s->m.chunk_size - from < len ?
			   (size_t)(s->m.chunk_size - from) : len;
		int err = 0;

		if (s->m.chunks[i].zero)
			memset(d, 0, n);
		else
			err = read_chunk(s, (uint32_t)i, from, d, n);
		if (err)
			return err;
		d += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int src_is_zero(struct lm_source *b, uint64_t off, size_t len)
{
	struct src *s = (struct src *)b;

	if (off > s->m.mem_size || len > s->m.mem_size - off || !len)
		return 0;
	for (uint64_t i = off / s->m.chunk_size;
	     i <= (off + len - 1) / s->m.chunk_size; i++)
		if (!s->m.chunks[i].zero)
			return 0;
	return 1;
}

/* ---------------- the fetcher thread ---------------- */

static void note_failure(struct src *s, uint32_t i, int err, const char *why)
{
	pthread_mutex_lock(&s->msg_lock);
	if (s->nmsgs < MAX_MSGS) {
		s->msgs[s->nmsgs].chunk = i;
		snprintf(s->msgs[s->nmsgs].msg, sizeof(s->msgs[0].msg),
			 "chunk %u: %.600s", i, why);
		s->nmsgs++;
	}
	pthread_mutex_unlock(&s->msg_lock);
	atomic_store(&s->err[i], err);
	atomic_fetch_add(&s->failed, 1);
	wake(s, i, S_FAILED);
}

static void fetch_free(struct src *s, struct fetch *f)
{
	if (f->claim_fd >= 0) {
		char hex[STORE_HEX_LEN + 1];

		store_hex(s->m.chunks[f->chunk].hash, hex);
		store_cache_release(s->cache, hex, f->claim_fd);
	}
	if (f->prefetch)
		s->pf_running--;
	s->inflight[f->chunk] = NULL;
	free(f->r.data);
	free(f);
}

/* Start getting chunk i: from the cache if it is there already, from
 * another process's fetch if one holds the claim, else from the store. */
static void start(struct src *s, uint32_t i, bool prefetch)
{
	char hex[STORE_HEX_LEN + 1];
	struct fetch *f;
	int fd = -1, c;

	store_hex(s->m.chunks[i].hash, hex);
	if (store_cache_has(s->cache, hex)) {
		wake(s, i, S_READY);
		return;
	}
	c = store_cache_claim(s->cache, hex, &fd);
	if (c == 0) {
		s->elsewhere[s->n_else] = i;
		s->else_since[s->n_else++] = lm_now_ns();
		atomic_store(&s->state[i], S_PENDING);
		return;
	}
	if (c == 1 && store_cache_has(s->cache, hex)) {
		/* it arrived between the look and the claim */
		store_cache_release(s->cache, hex, fd);
		wake(s, i, S_READY);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		if (fd >= 0)
			store_cache_release(s->cache, hex, fd);
		note_failure(s, i, -ENOMEM, "out of memory");
		return;
	}
	f->chunk = i;
	f->prefetch = prefetch;
	f->claim_fd = c == 1 ? fd : -1;	/* c < 0: no claim, fetch anyway */
	f->r.method = STORE_GET;
	f->r.max_len = s->m.chunks[i].stored_len;
	f->r.urgent = !prefetch;
	f->r.arg = f;
	store_url_chunk(&s->url, hex, f->r.url, sizeof(f->r.url));
	atomic_store(&s->state[i], S_PENDING);
	s->inflight[i] = f;
	if (prefetch)
		s->pf_running++;
	store_http_add(s->h, &f->r);
}

static void on_done(struct store_req *r, void *arg)
{
	struct src *s = arg;
	struct fetch *f = r->arg;
	uint32_t i = f->chunk;
	const struct store_chunk *k = &s->m.chunks[i];
	char hex[STORE_HEX_LEN + 1], why[800];
	int err = r->err;

	if (!err)
		err = store_chunk_unpack(s->fdctx, r->data, r->len, k->comp,
					 s->fbuf, store_chunk_len(&s->m, i),
					 k->hash);
	if (err == -EBADMSG && !r->err && !s->tries[i]++) {
		store_http_add(s->h, r);	/* once more */
		return;
	}
	if (err) {
		if (r->err)
			snprintf(why, sizeof(why), "%.700s", r->why);
		else
			snprintf(why, sizeof(why), "%.600s: %zu bytes that do not "
				 "decode to the content its name promises, "
				 "twice", r->url, r->len);
		fetch_free(s, f);
		note_failure(s, i, err, why);
		return;
	}
	atomic_fetch_add(&s->fetched, 1);
	atomic_fetch_add(&s->bytes, r->len);
	store_hex(k->hash, hex);
	err = store_cache_put(s->cache, hex, r->data, r->len);
	if (err == 1)
		atomic_fetch_add(&s->twice, 1);
	else if (err) {
		if (atomic_fetch_add(&s->uncached, 1) == 0)
			fprintf(stderr, "lazymem: warning: chunk cache %s: "
				"%s; keeping chunks in memory instead\n",
				s->o.cache_dir, strerror(-err));
		atomic_store(&s->mem[i], r->data);
		r->data = NULL;
	}
	fetch_free(s, f);
	wake(s, i, S_READY);
}

static void drain_ring(struct src *s)
{
	for (;;) {
		_Atomic uint32_t *slot = &s->ring[s->ring_head % s->m.nr_chunks];
		uint32_t v = atomic_load(slot);
		uint32_t i;

		if (!v)
			return;
		atomic_store(slot, 0);
		s->ring_head++;
		i = v - 1;
		atomic_store(&s->urgent[i], 0);
		switch (atomic_load(&s->state[i])) {
		case S_NONE:
			start(s, i, false);
			break;
		case S_PENDING:
			if (s->inflight[i])
				store_http_promote(s->h, &s->inflight[i]->r);
			break;
		default:
			/* READY again (a read raced an eviction), FAILED */
			lm_futex_wake_all(&s->state[i]);
		}
	}
}

static void top_up(struct src *s)
{
	while (s->pf_running < s->o.http.parallel && s->cursor < s->n_order) {
		uint32_t i = s->order[s->cursor++];

		if (atomic_load(&s->state[i]) == S_NONE)
			start(s, i, true);
	}
	if (s->cursor == s->n_order && !s->pf_running && !s->n_else &&
	    !atomic_load(&s->pf_done))
		atomic_store(&s->pf_done, true);
}

/* Chunks another process is fetching: there yet? If its claim went away
 * without the file, or it takes longer than a request may, fetch here. */
static void check_elsewhere(struct src *s)
{
	uint64_t now = lm_now_ns(), keep = 0, n_take = 0;

	for (uint64_t j = 0; j < s->n_else; j++) {
		uint32_t i = s->elsewhere[j];
		char hex[STORE_HEX_LEN + 1];

		store_hex(s->m.chunks[i].hash, hex);
		if (store_cache_has(s->cache, hex)) {
			atomic_fetch_add(&s->shared, 1);
			wake(s, i, S_READY);
		} else if (now - s->else_since[j] > s->wait_ns / 2) {
			s->takeover[n_take++] = i;
		} else {
			s->elsewhere[keep] = i;
			s->else_since[keep++] = s->else_since[j];
		}
	}
	s->n_else = keep;
	for (uint64_t j = 0; j < n_take; j++) {
		atomic_store(&s->state[s->takeover[j]], S_NONE);
		start(s, s->takeover[j], false);	/* may list it again */
	}
}

static void *fetcher(void *arg)
{
	struct src *s = arg;

	while (!atomic_load(&s->stop)) {
		drain_ring(s);
		if (!s->o.no_prefetch)
			top_up(s);
		if (s->n_else)
			check_elsewhere(s);
		if (!store_http_poll(s->h, s->n_else ? 5 : 100, on_done, s) &&
		    !s->n_else && !atomic_load(&s->stop))
			store_http_wait(s->h, 100);	/* idle until asked */
	}
	return NULL;
}

/* ---------------- set-up and teardown ---------------- */

static void src_destroy(struct lm_source *b)
{
	struct src *s = (struct src *)b;

	if (s->thread_started) {
		atomic_store(&s->stop, true);
		store_http_wakeup(s->h);
		pthread_join(s->thread, NULL);
	}
	store_http_destroy(s->h);	/* abandons running transfers */
	for (uint64_t i = 0; s->inflight && i < s->m.nr_chunks; i++)
		if (s->inflight[i])
			fetch_free(s, s->inflight[i]);
	for (uint64_t i = 0; s->mem && i < s->m.nr_chunks; i++)
		free(atomic_load(&s->mem[i]));
	for (int i = 0; i < NSLOTS; i++) {
		free(s->slots[i].stored);
		free(s->slots[i].out);
		store_dctx_destroy(s->slots[i].d);
	}
	store_dctx_destroy(s->fdctx);
	free(s->fbuf);
	store_cache_close(s->cache);
	free((void *)s->state);
	free((void *)s->urgent);
	free((void *)s->err);
	free((void *)s->mem);
	free((void *)s->ring);
	free(s->tries);
	free(s->inflight);
	free(s->order);
	free(s->elsewhere);
	free(s->takeover);
	free(s->else_since);
	fc_ws_free(&s->ws);
	pthread_mutex_destroy(&s->msg_lock);
	store_manifest_free(&s->m);
	free(s);
}

static const struct lm_source_ops src_ops = {
	.read = src_read,
	.is_zero = src_is_zero,
	.destroy = src_destroy,
};

static void ignore(struct store_req *r, void *arg)
{
	(void)r;
	(void)arg;
}

/* The working set, if the snapshot has one: fetched and checked by the
 * working-set file's own loader (through a memfd, not the disk). */
static int load_ws(struct src *s)
{
	struct store_req r = { .method = STORE_GET, .max_len = s->m.ws_size },
			 *rp = &r;
	char path[64], why[512];
	int fd, err;

	if (!s->m.ws_name[0])
		return 0;
	store_url_object(&s->url, s->m.ws_name, r.url, sizeof(r.url));
	store_http_run(s->h, &rp, 1, ignore, NULL);
	if (r.err) {
		free(r.data);
		return util_error(r.err, "working set: %s", r.why);
	}
	fd = memfd_create("lazymem-ws", MFD_CLOEXEC);
	if (fd < 0 || write(fd, r.data, r.len) != (ssize_t)r.len) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		free(r.data);
		return util_error(err, "working set: memfd: %s", strerror(-err));
	}
	free(r.data);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	err = fc_ws_load(path, s->m.mem_size, &s->ws, why, sizeof(why));
	close(fd);
	if (err)
		return util_error(err, "working set %s: %s", r.url, why);
	return 0;
}

/* Prefetch order: the working set's chunks in chunk order, then every
 * other non-zero chunk, but only when the snapshot fits in half the
 * cache: prefetching into a cache smaller than that evicts what demand
 * reads need (measured: a 16 MiB snapshot through a 1 MiB cache fetched
 * 2299 chunks for 36 with full prefetch). */
static int plan(struct src *s)
{
	uint64_t n = s->m.nr_chunks, stored = 0;
	uint8_t *in_ws = calloc(n, 1);
	int passes;

	for (uint64_t i = 0; i < n; i++)
		stored += s->m.chunks[i].zero ? 0 : s->m.chunks[i].stored_len;
	passes = stored <= (s->o.cache_size ? s->o.cache_size :
			    STORE_CACHE_DEFAULT_SIZE) / 2 ? 2 : 1;

	s->order = malloc(n * sizeof(*s->order));
	if (!in_ws || !s->order) {
		free(in_ws);
		return util_error(-ENOMEM, "store source: out of memory");
	}
	for (size_t j = 0; j < s->ws.n; j++)
		in_ws[s->ws.off[j] / s->m.chunk_size] = 1;
	for (int pass = 0; pass < passes; pass++)
		for (uint64_t i = 0; i < n; i++)
			if (!s->m.chunks[i].zero && in_ws[i] == (pass == 0))
				s->order[s->n_order++] = (uint32_t)i;
	free(in_ws);
	return 0;
}

static int src_alloc(struct src *s)
{
	uint64_t n = s->m.nr_chunks;

	s->state = calloc(n, sizeof(*s->state));
	s->urgent = calloc(n, sizeof(*s->urgent));
	s->err = calloc(n, sizeof(*s->err));
	s->mem = calloc(n, sizeof(*s->mem));
	s->ring = calloc(n, sizeof(*s->ring));
	s->tries = calloc(n, 1);
	s->inflight = calloc(n, sizeof(*s->inflight));
	s->elsewhere = calloc(n, sizeof(*s->elsewhere));
	s->takeover = calloc(n, sizeof(*s->takeover));
	s->else_since = calloc(n, sizeof(*s->else_since));
	s->fdctx = store_dctx_create();
	s->fbuf = malloc(s->m.chunk_size);
	if (!s->state || !s->urgent || !s->err || !s->mem || !s->ring ||
	    !s->tries || !s->inflight || !s->elsewhere || !s->takeover ||
	    !s->else_since || !s->fdctx || !s->fbuf)
		return util_error(-ENOMEM, "store source: out of memory");
	for (int i = 0; i < NSLOTS; i++) {
		struct slot *sl = &s->slots[i];

		atomic_store(&sl->held, -1);
		sl->stored = malloc(s->m.chunk_size);
		sl->out = malloc(s->m.chunk_size);
		sl->d = store_dctx_create();
		if (!sl->stored || !sl->out || !sl->d)
			return util_error(-ENOMEM, "store source: out of "
					  "memory");
	}
	return 0;
}

int store_source_open(const char *url, const struct store_source_opts *o,
		      struct lm_source **out)
{
	struct src *s = calloc(1, sizeof(*s));
	char why[512], cdir[3600];
	uint64_t per;
	int err;

	if (!s)
		return util_error(-ENOMEM, "store source: out of memory");
	pthread_mutex_init(&s->msg_lock, NULL);
	s->o = *o;
	if (!s->o.http.parallel)
		s->o.http.parallel = 8;
	if (store_url_parse(url, &s->url, why, sizeof(why))) {
		err = util_error(-EINVAL, "%s", why);
		goto fail;
	}
	if ((err = store_http_create(&s->o.http, &s->h, why, sizeof(why)))) {
		err = util_error(err, "%s", why);
		goto fail;
	}
	if (!o->cache_dir)
		store_cache_default_dir(cdir, sizeof(cdir));
	else
		snprintf(cdir, sizeof(cdir), "%s", o->cache_dir);
	if ((err = store_cache_open(cdir, o->cache_size, &s->cache)))
		goto fail;
	s->o.cache_dir = NULL;	/* not kept: the caller's string */
	if ((err = store_fetch_manifest(s->h, &s->url, &s->m)) ||
	    (err = load_ws(s)) || (err = src_alloc(s)) || (err = plan(s)))
		goto fail;
	/* A read waits for every attempt of its request and the backoffs in
	 * between, and a little more; never forever. */
	per = (uint64_t)(o->http.timeout_ms ? o->http.timeout_ms : 20000);
	s->wait_ns = o->wait_ms ? (uint64_t)o->wait_ms * 1000000ull :
		     ((per + 2000) * ((o->http.no_retries ? 0 :
				       o->http.retries ? o->http.retries : 3) + 1) +
		      2000) * 1000000ull;
	s->base.ops = &src_ops;
	s->base.size = s->m.mem_size;
	snprintf(s->base.desc, sizeof(s->base.desc), "store %.85s", url);
	if ((err = pthread_create(&s->thread, NULL, fetcher, s))) {
		err = util_error(-err, "store source: fetcher thread: %s",
				 strerror(err));
		goto fail;
	}
	s->thread_started = true;
	*out = &s->base;
	return 0;
fail:
	src_destroy(&s->base);
	return err;
}

const struct store_manifest *store_source_manifest(struct lm_source *b)
{
	return &((struct src *)b)->m;
}

const struct fc_ws *store_source_ws(struct lm_source *b)
{
	return &((struct src *)b)->ws;
}

void store_source_stats(struct lm_source *b, struct store_source_stats *st)
{
	struct src *s = (struct src *)b;

	st->hits = atomic_load(&s->hits);
	st->misses = atomic_load(&s->misses);
	st->chunks_fetched = atomic_load(&s->fetched);
	st->bytes_fetched = atomic_load(&s->bytes);
	st->chunks_shared = atomic_load(&s->shared);
	st->chunks_twice = atomic_load(&s->twice);
	st->chunks_uncached = atomic_load(&s->uncached);
	st->chunks_failed = atomic_load(&s->failed);
	st->requests = store_http_requests(s->h);
	st->prefetch_done = atomic_load(&s->pf_done);
}

int store_source_chunk_error(struct lm_source *b, uint64_t off, char *buf,
			     size_t len)
{
	struct src *s = (struct src *)b;
	uint64_t i = off / s->m.chunk_size;
	int err = -ENOENT;

	pthread_mutex_lock(&s->msg_lock);
	for (unsigned j = 0; j < s->nmsgs; j++)
		if (s->msgs[j].chunk == i) {
			snprintf(buf, len, "%s", s->msgs[j].msg);
			err = 0;
			break;
		}
	pthread_mutex_unlock(&s->msg_lock);
	return err;
}

int store_source_wait_prefetched(struct lm_source *b, int timeout_ms)
{
	struct src *s = (struct src *)b;
	uint64_t end = lm_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (!atomic_load(&s->pf_done)) {
		if (lm_now_ns() > end)
			return -ETIMEDOUT;
		usleep(2000);
	}
	return 0;
}
