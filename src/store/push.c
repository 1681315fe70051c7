/*
 * push.c - `lazymem snapshot push DIR URL`: a snapshot directory into
 * object storage as content-addressed chunks.
 *
 * Steps: check every page of DIR against its hash (a corrupt snapshot is
 * never uploaded); cut memory.img into chunks and name each by its
 * SHA-256 (zero chunks are only noted); ask the bucket which distinct
 * chunks it already has (HEAD, in parallel: their stored length comes
 * back with the answer, so the manifest needs no download); compress and
 * PUT only the others, a batch at a time so memory stays bounded; then
 * the working set, and the manifest last, so a manifest exists only for
 * a snapshot whose chunks are all there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lazymem/error.h>
#include <lazymem/snapshot.h>

#include "fcproto/wsfile.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/url.h"
#include "util/clock.h"
#include "util/error.h"

#define BATCH 64	/* chunks compressed, then uploaded, at a time */

struct push {
	const char *dir;
	struct store_url url;
	struct store_manifest m;
	const uint8_t *mem;
	uint64_t *uniq;		/* index of each distinct chunk's first use */
	uint64_t nr_uniq;
	uint64_t *rep;		/* per chunk: the index uniq names its content by */
	bool *need;		/* per distinct chunk: the bucket lacks it */
	int err;
	struct store_push_result *res;
};

static int read_file(const char *path, size_t max, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;

	if (fd < 0)
		return util_error(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
		close(fd);
		return util_error(-EINVAL, "%s: not a file of at most %zu "
				  "bytes", path, max);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		close(fd);
		return util_error(-EIO, "%s: cannot read it", path);
	}
	close(fd);
	buf[st.st_size] = '\0';
	*text = buf;
	*len = (size_t)st.st_size;
	return 0;
}

static int cmp_hash(const void *a, const void *b, void *arg)
{
	const struct store_chunk *c = arg;
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	int d = memcmp(c[x].hash, c[y].hash, STORE_HASH_LEN);

	return d ? d : (x > y) - (x < y);
}

/* Name every chunk; list the distinct non-zero ones. */
static int push__hash(struct push *p, const struct store_opts *o)
{
	struct store_manifest *m = &p->m;
	uint64_t *idx = malloc((m->nr_chunks ? m->nr_chunks : 1) * 8), n = 0;

	if (!idx)
		return util_error(-ENOMEM, "push: out of memory");
	for (uint64_t i = 0; i < m->nr_chunks; i++) {
		const uint8_t *c = p->mem + i * m->chunk_size;
		uint64_t len = store_chunk_len(m, i);

		if (store_is_zero(c, len)) {
			m->chunks[i].zero = true;
			p->res->chunks_zero++;
		} else {
			store_sha256(c, len, m->chunks[i].hash);
			idx[n++] = i;
			p->res->bytes_memory += len;
		}
		if (o->progress && (i % 256 == 0 || i + 1 == m->nr_chunks))
			o->progress((i + 1) * m->chunk_size, m->mem_size,
				    o->progress_arg);
	}
	qsort_r(idx, n, sizeof(*idx), cmp_hash, m->chunks);
	p->rep = malloc((m->nr_chunks ? m->nr_chunks : 1) * 8);
	if (!p->rep) {
		free(idx);
		return util_error(-ENOMEM, "push: out of memory");
	}
	/* compacted in place: uniq[k] is written only at or behind idx[k] */
	p->uniq = idx;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t c = idx[i];

		if (!p->nr_uniq || memcmp(m->chunks[c].hash,
					  m->chunks[p->uniq[p->nr_uniq - 1]].hash,
					  STORE_HASH_LEN))
			p->uniq[p->nr_uniq++] = c;
		p->rep[c] = p->uniq[p->nr_uniq - 1];
	}
	p->res->chunks_unique = p->nr_uniq;
	p->need = calloc(p->nr_uniq ? p->nr_uniq : 1, sizeof(bool));
	return p->need ? 0 : util_error(-ENOMEM, "push: out of memory");
}

static void on_head(struct store_req *r, void *arg)
{
	struct push *p = arg;
	uint64_t u = (uint64_t)(uintptr_t)r->arg;
	struct store_chunk *k = &p->m.chunks[p->uniq[u]];
	uint64_t len = store_chunk_len(&p->m, p->uniq[u]);

	if (r->err == -ENOENT) {
		p->need[u] = true;
		return;
	}
	if (r->err) {
		if (!p->err)
			p->err = util_error(r->err, "%s", r->why);
		return;
	}
	/* There: its size says how it was stored (raw only if zstd did not
	 * make it smaller). A size that fits neither is a damaged object:
	 * upload ours over it. */
	if (r->content_length == len)
		k->comp = STORE_COMP_RAW;
	else if (r->content_length && r->content_length < len)
		k->comp = STORE_COMP_ZSTD;
	else {
		p->need[u] = true;
		return;
	}
	k->stored_len = (uint32_t)r->content_length;
}

static void on_put(struct store_req *r, void *arg)
{
	struct push *p = arg;

	if (r->err && !p->err)
		p->err = util_error(r->err, "%s", r->why);
}

/* Which distinct chunks does the bucket lack? */
static int push__probe(struct push *p, struct store_http *h)
{
	struct store_req *reqs = calloc(p->nr_uniq ? p->nr_uniq : 1,
					sizeof(*reqs));
	struct store_req **ptrs = calloc(p->nr_uniq ? p->nr_uniq : 1,
					 sizeof(*ptrs));
	int err = 0;

	if (!reqs || !ptrs) {
		free(reqs);
		free(ptrs);
		return util_error(-ENOMEM, "push: out of memory");
	}
	for (uint64_t u = 0; u < p->nr_uniq && !err; u++) {
		char hex[STORE_HEX_LEN + 1];

		store_hex(p->m.chunks[p->uniq[u]].hash, hex);
		reqs[u].method = STORE_HEAD;
		reqs[u].arg = (void *)(uintptr_t)u;
		ptrs[u] = &reqs[u];
		if (store_url_chunk(&p->url, hex, reqs[u].url,
				    sizeof(reqs[u].url)))
			err = util_error(-ENAMETOOLONG, "push: URL too long");
	}
	if (!err)
		store_http_run(h, ptrs, p->nr_uniq, on_head, p);
	free(reqs);
	free(ptrs);
	return err ? err : p->err;
}

/* Compress and upload the missing chunks, BATCH at a time. */
static int push__upload(struct push *p, struct store_http *h,
			const struct store_opts *o)
{
	size_t bound = store_chunk_bound(p->m.chunk_size);
	uint8_t *buf = malloc(BATCH * bound);
	struct store_req reqs[BATCH];
	struct store_req *ptrs[BATCH];
	uint64_t u = 0;

	if (!buf)
		return util_error(-ENOMEM, "push: out of memory");
	while (u < p->nr_uniq && !p->err) {
		unsigned n = 0;

		for (; u < p->nr_uniq && n < BATCH; u++) {
			uint64_t i = p->uniq[u];
			struct store_chunk *k = &p->m.chunks[i];
			struct store_req *r = &reqs[n];
			char hex[STORE_HEX_LEN + 1];
			size_t len;

			if (!p->need[u])
				continue;
			memset(r, 0, sizeof(*r));
			if (store_chunk_pack(p->mem + i * p->m.chunk_size,
					     store_chunk_len(&p->m, i), o->level,
					     buf + n * bound, bound, &len,
					     &k->comp)) {
				free(buf);
				return util_error(-EIO, "push: zstd failed on "
						  "chunk %llu",
						  (unsigned long long)i);
			}
			k->stored_len = (uint32_t)len;
			store_hex(k->hash, hex);
			store_url_chunk(&p->url, hex, r->url, sizeof(r->url));
			r->method = STORE_PUT;
			r->body = buf + n * bound;
			r->body_len = len;
			ptrs[n++] = r;
			p->res->chunks_new++;
			p->res->bytes_uploaded += len;
		}
		store_http_run(h, ptrs, n, on_put, p);
		if (o->progress)
			o->progress(u, p->nr_uniq, o->progress_arg);
	}
	free(buf);
	return p->err;
}

static int put_object(struct push *p, struct store_http *h, const char *name,
		      const void *body, size_t len)
{
	struct store_req r = {
		.method = STORE_PUT, .body = body, .body_len = len,
	}, *ptr = &r;

	if (store_url_object(&p->url, name, r.url, sizeof(r.url)))
		return util_error(-ENAMETOOLONG, "push: URL too long");
	store_http_run(h, &ptr, 1, on_put, p);
	p->res->bytes_uploaded += len;
	return p->err;
}

/* DIR/ws.lmws, if the snapshot has a working set: checked, then sent. */
static int push__ws(struct push *p, struct store_http *h)
{
	char path[4200], why[512], *text;
	struct fc_ws ws;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/%s", p->dir, STORE_WS_NAME);
	if (access(path, F_OK))
		return 0;
	if (fc_ws_load(path, p->m.mem_size, &ws, why, sizeof(why)))
		return util_error(-EINVAL, "push: %s", why);
	fc_ws_free(&ws);
	err = read_file(path, 32 + p->m.mem_size / p->m.page_size * 8, &text,
			&len);
	if (err)
		return err;
	snprintf(p->m.ws_name, sizeof(p->m.ws_name), "%s", STORE_WS_NAME);
	p->m.ws_size = len;
	err = put_object(p, h, STORE_WS_NAME, text, len);
	free(text);
	return err;
}

static int push__run(struct push *p, const struct store_opts *o,
		     struct store_http *h)
{
	struct store_manifest *m = &p->m;
	uint64_t bad = 0, first = 0;
	char path[4200], *text;
	size_t len;
	int fd, err;

	if (lm_snap_open(p->dir, &m->meta))
		return util_error(-EINVAL, "push: %s", lm_last_error());
	m->have_meta = true;
	if (lm_snap_verify(p->dir, &m->meta, &bad, &first, NULL, NULL))
		return util_error(-EBADMSG, "push: %s (nothing uploaded)",
				  lm_last_error());
	snprintf(path, sizeof(path), "%s/meta.json", p->dir);
	if ((err = read_file(path, 1u << 26, &m->meta_json, &len)))
		return err;
	m->page_size = m->meta.page_size;
	m->mem_size = m->meta.mem_size;
	m->chunk_size = o->chunk_size ? o->chunk_size : STORE_DEFAULT_CHUNK;
	if (m->chunk_size < STORE_CHUNK_MIN || m->chunk_size > STORE_CHUNK_MAX ||
	    (m->chunk_size & (m->chunk_size - 1)) || m->chunk_size % m->page_size)
		return util_error(-EINVAL, "push: chunk size %llu: a power of "
				  "two from 64 KiB to 4 MiB, a multiple of the "
				  "page size, expected",
				  (unsigned long long)m->chunk_size);
	m->nr_chunks = (m->mem_size + m->chunk_size - 1) / m->chunk_size;
	m->chunks = calloc(m->nr_chunks, sizeof(*m->chunks));
	if (!m->chunks)
		return util_error(-ENOMEM, "push: out of memory");
	p->res->chunks_total = m->nr_chunks;
	snprintf(path, sizeof(path), "%s/memory.img", p->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return util_error(-errno, "%s: %s", path, strerror(errno));
	p->mem = mmap(NULL, m->mem_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p->mem == MAP_FAILED) {
		p->mem = NULL;
		return util_error(-errno, "%s: mmap: %s", path, strerror(errno));
	}
	madvise((void *)p->mem, m->mem_size, MADV_SEQUENTIAL);
	if ((err = push__hash(p, o)) || (err = push__probe(p, h)) ||
	    (err = push__upload(p, h, o)) || (err = push__ws(p, h)))
		return err;
	for (uint64_t u = 0; u < p->nr_uniq; u++)
		p->res->chunks_reused += !p->need[u];
	for (uint64_t u = 0; u < p->nr_uniq; u++)
		p->res->bytes_stored += m->chunks[p->uniq[u]].stored_len;
	/* a chunk whose content another one holds is stored as that one */
	for (uint64_t i = 0; i < m->nr_chunks; i++)
		if (!m->chunks[i].zero && p->rep[i] != i) {
			m->chunks[i].comp = m->chunks[p->rep[i]].comp;
			m->chunks[i].stored_len = m->chunks[p->rep[i]].stored_len;
		}
	text = store_manifest_format(m);
	if (!text)
		return util_error(-ENOMEM, "push: out of memory");
	err = put_object(p, h, STORE_MANIFEST_NAME, text, strlen(text));
	free(text);
	return err;
}

int store_push(const char *dir, const char *url, const struct store_opts *o,
	       struct store_push_result *res)
{
	struct push p = { .dir = dir, .res = res };
	struct store_opts opts = *o;
	struct store_http *h = NULL;
	uint64_t t0 = lm_now_ns();
	char why[512];
	int err;

	memset(res, 0, sizeof(*res));
	if (!opts.level)
		opts.level = STORE_DEFAULT_LEVEL;
	if (store_url_parse(url, &p.url, why, sizeof(why)))
		return util_error(-EINVAL, "%s", why);
	err = store_http_create(&o->http, &h, why, sizeof(why));
	if (err)
		return util_error(err, "%s", why);
	err = push__run(&p, &opts, h);
	res->requests = store_http_requests(h);
	res->seconds = (double)(lm_now_ns() - t0) / 1e9;
	store_http_destroy(h);
	if (p.mem)
		munmap((void *)p.mem, p.m.mem_size);
	free(p.uniq);
	free(p.rep);
	free(p.need);
	store_manifest_free(&p.m);
	return err;
}
