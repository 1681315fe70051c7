/*
 * pull.c - `lazymem snapshot pull URL DIR`: a chunked snapshot downloaded
 * whole (the eager baseline of a lazy restore) into a snapshot directory
 * of the ordinary format.
 *
 * The memory is assembled in an anonymous mapping (zero chunks are never
 * touched, so they cost nothing) while the distinct chunks arrive, each
 * fetched once however often it is used, decoded and checked against its
 * SHA-256; a chunk that fails the check is fetched once more, then the
 * pull fails naming its URL. lm_snap_save then writes memory.img (zero
 * pages as holes) and pages.xxh, and meta.json is the manifest's text
 * verbatim, written last through a rename like every snapshot's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lazymem/error.h>
#include <lazymem/snapshot.h>

#include "store/manifest.h"
#include "store/store.h"
#include "store/url.h"
#include "util/clock.h"
#include "util/error.h"

struct pull {
	struct store_url url;
	struct store_manifest m;
	struct store_http *h;
	struct store_dctx *dctx;
	uint8_t *mem;
	uint64_t *first;	/* chunk index -> first index of its content */
	uint8_t *tries;		/* per chunk: fetches that failed the check */
	uint64_t done, todo;
	int err;
	const struct store_opts *o;
	struct store_pull_result *res;
};

static void on_ignore(struct store_req *r, void *arg)
{
	(void)r;
	(void)arg;
}

/* GET and parse BUCKET/PREFIX/manifest.json. */
int store_fetch_manifest(struct store_http *h, const struct store_url *u,
			 struct store_manifest *m)
{
	struct store_req r = {
		.method = STORE_GET, .max_len = STORE_MANIFEST_MAX,
	}, *ptr = &r;
	int err;

	if (store_url_object(u, STORE_MANIFEST_NAME, r.url, sizeof(r.url)))
		return util_error(-ENAMETOOLONG, "store URL too long");
	store_http_run(h, &ptr, 1, on_ignore, NULL);
	if (r.err) {
		free(r.data);
		return util_error(r.err, "%s%s", r.why, r.err == -ENOENT ?
				  " (no snapshot pushed there)" : "");
	}
	err = store_manifest_parse((const char *)r.data, r.len, m);
	free(r.data);
	if (err) {
		char msg[400];

		snprintf(msg, sizeof(msg), "%s", util_last_error());
		return util_error(err, "%s: %s", r.url, msg);
	}
	return 0;
}

static void on_chunk(struct store_req *r, void *arg)
{
	struct pull *p = arg;
	uint64_t i = (uint64_t)(uintptr_t)r->arg;
	const struct store_chunk *k = &p->m.chunks[i];
	uint64_t len = store_chunk_len(&p->m, i);
	int err = r->err;

	if (!err)
		err = store_chunk_unpack(p->dctx, r->data, r->len, k->comp,
					 p->mem + i * p->m.chunk_size, len,
					 k->hash);
	free(r->data);
	r->data = NULL;
	if (err == -EBADMSG && !p->tries[i]++) {
		store_http_add(p->h, r);	/* once more, then it fails */
		return;
	}
	if (err) {
		if (!p->err)
			p->err = err == -EBADMSG ?
				util_error(err, "chunk %llu (%s): %zu bytes that "
					   "do not decode to the content its "
					   "name promises, twice",
					   (unsigned long long)i, r->url, r->len) :
				util_error(err, "chunk %llu: %s",
					   (unsigned long long)i, r->why);
		return;
	}
	p->res->chunks_fetched++;
	p->res->bytes_fetched += r->len;
	if (p->o->progress)
		p->o->progress(++p->done, p->todo, p->o->progress_arg);
}

static int pull__fetch(struct pull *p)
{
	struct store_manifest *m = &p->m;
	struct store_req *reqs = calloc(m->nr_chunks, sizeof(*reqs));
	uint64_t n = 0;

	p->first = malloc(m->nr_chunks * sizeof(*p->first));
	p->tries = calloc(m->nr_chunks, 1);
	if (!reqs || !p->first || !p->tries) {
		free(reqs);
		return util_error(-ENOMEM, "pull: out of memory");
	}
	/* One request per distinct content, made for the first chunk that
	 * has it: an open-addressed table of first uses, keyed by hash. */
	uint64_t cap = 1, *tab;

	while (cap < m->nr_chunks * 2)
		cap <<= 1;
	tab = malloc(cap * sizeof(*tab));
	if (!tab) {
		free(reqs);
		return util_error(-ENOMEM, "pull: out of memory");
	}
	memset(tab, 0xff, cap * sizeof(*tab));
	for (uint64_t i = 0; i < m->nr_chunks; i++) {
		struct store_req *r = &reqs[n];
		char hex[STORE_HEX_LEN + 1];
		uint64_t s;

		p->first[i] = i;
		if (m->chunks[i].zero)
			continue;
		memcpy(&s, m->chunks[i].hash, 8);
		for (s &= cap - 1; tab[s] != UINT64_MAX; s = (s + 1) & (cap - 1))
			if (!memcmp(m->chunks[tab[s]].hash, m->chunks[i].hash,
				    STORE_HASH_LEN))
				break;
		if (tab[s] != UINT64_MAX) {
			p->first[i] = tab[s];
			continue;
		}
		tab[s] = i;
		store_hex(m->chunks[i].hash, hex);
		store_url_chunk(&p->url, hex, r->url, sizeof(r->url));
		r->method = STORE_GET;
		r->max_len = m->chunks[i].stored_len;
		r->arg = (void *)(uintptr_t)i;
		n++;
	}
	free(tab);
	p->todo = n;
	for (uint64_t j = 0; j < n; j++)
		store_http_add(p->h, &reqs[j]);
	while (store_http_poll(p->h, 200, on_chunk, p))
		;
	free(reqs);
	if (p->err)
		return p->err;
	for (uint64_t i = 0; i < m->nr_chunks; i++)
		if (p->first[i] != i)
			memcpy(p->mem + i * m->chunk_size,
			       p->mem + p->first[i] * m->chunk_size,
			       store_chunk_len(m, i));
	return 0;
}

static int write_file(const char *dir, const char *name, const void *data,
		      size_t len)
{
	char path[4200], tmp[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return util_error(-errno, "%s: %s", tmp, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len || fdatasync(fd) < 0) {
		int e = errno ? errno : EIO;

		close(fd);
		unlink(tmp);
		return util_error(-e, "%s: %s", tmp, strerror(e));
	}
	close(fd);
	if (rename(tmp, path) < 0)
		return util_error(-errno, "%s: %s", path, strerror(errno));
	return 0;
}

/* The working set, if the snapshot has one, as DIR/ws.lmws. */
static int pull__ws(struct pull *p, const char *dir)
{
	struct store_req r = {
		.method = STORE_GET, .max_len = p->m.ws_size,
	}, *ptr = &r;
	int err;

	if (!p->m.ws_name[0])
		return 0;
	store_url_object(&p->url, p->m.ws_name, r.url, sizeof(r.url));
	store_http_run(p->h, &ptr, 1, on_ignore, NULL);
	if (!r.err && r.len != p->m.ws_size)
		r.err = util_error(-EBADMSG, "%s: %zu bytes, the manifest says "
				   "%llu", r.url, r.len,
				   (unsigned long long)p->m.ws_size);
	else if (r.err)
		util_error(r.err, "%s", r.why);
	err = r.err ? r.err : write_file(dir, STORE_WS_NAME, r.data, r.len);
	free(r.data);
	p->res->bytes_fetched += r.len;
	return err;
}

static int pull__run(struct pull *p, const char *dir)
{
	struct store_manifest *m = &p->m;
	uint64_t t0;
	int err = store_fetch_manifest(p->h, &p->url, m);

	if (err)
		return err;
	p->res->mem_size = m->mem_size;
	p->mem = mmap(NULL, m->mem_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->mem == MAP_FAILED) {
		p->mem = NULL;
		return util_error(-errno, "pull: %llu bytes of memory: %s",
				  (unsigned long long)m->mem_size,
				  strerror(errno));
	}
	t0 = lm_now_ns();
	err = pull__fetch(p);
	p->res->fetch_seconds = (double)(lm_now_ns() - t0) / 1e9;
	if (err)
		return err;
	if (lm_snap_save(dir, &m->meta, p->mem, NULL, NULL))
		return util_error(-EIO, "pull: %s", lm_last_error());
	if ((err = pull__ws(p, dir)))
		return err;
	/* meta.json exactly as pushed (lm_snap_save wrote the same content
	 * from the parsed form; this keeps it byte for byte). */
	return write_file(dir, "meta.json", m->meta_json, strlen(m->meta_json));
}

int store_pull(const char *url, const char *dir, const struct store_opts *o,
	       struct store_pull_result *res)
{
	struct pull p = { .o = o, .res = res };
	uint64_t t0 = lm_now_ns();
	char why[512];
	int err;

	memset(res, 0, sizeof(*res));
	if (store_url_parse(url, &p.url, why, sizeof(why)))
		return util_error(-EINVAL, "%s", why);
	err = store_http_create(&o->http, &p.h, why, sizeof(why));
	if (err)
		return util_error(err, "%s", why);
	p.dctx = store_dctx_create();
	err = p.dctx ? pull__run(&p, dir) :
		       util_error(-ENOMEM, "pull: out of memory");
	res->requests = store_http_requests(p.h);
	res->seconds = (double)(lm_now_ns() - t0) / 1e9;
	store_http_destroy(p.h);
	store_dctx_destroy(p.dctx);
	if (p.mem)
		munmap(p.mem, p.m.mem_size);
	free(p.first);
	free(p.tries);
	store_manifest_free(&p.m);
	return err;
}
