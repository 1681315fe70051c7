/*
 * pstore_mem.c - the in-memory page store: compressed (LZ4 or zstd,
 * pstore_codec.c), zero pages as a flag, equal pages stored once, and an
 * optional lower store the pages memory should not hold spill to.
 *
 * Per page of the region one slot word: 0 (not held), ZERO, LOWER (held
 * by the lower store), or a pointer to a blob (the page's compressed
 * bytes, reference-counted, in a hash table keyed by XXH3 of those bytes).
 * take() runs on the fault path, possibly in a SIGBUS handler, so it takes
 * no lock and frees nothing: it exchanges the slot to 0, then decompresses
 * and drops its reference, or forwards to the lower store's take. A blob
 * whose count fell to 0 stays in the table (a later put of an equal page
 * revives it) until put() trims the table, under the store's lock, which
 * only put and trim take. A blob's count can reach 0 only after the last
 * take has read it, so trim never frees bytes a take is reading.
 *
 * Why a lower tier: half of a typical guest's cold pages do not compress
 * (the workload, bench/reclaim.c), and held raw in memory they
 * cost as much as resident ones; on disk they cost a state byte each.
 * docs/reclaim.md has the figures ("Tiered").
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "reclaim/pstore_codec.h"
#include "reclaim/pstore_internal.h"
#include "util/error.h"

#define SLOT_ZERO ((uintptr_t)1)
#define SLOT_LOWER ((uintptr_t)2)	/* blobs are 8-byte aligned: never */
#define SPILL_OVER_PCT 75		/* pstore.h says why */
#define TRIM_EVERY 4096		/* puts between trims of dead blobs */

struct blob {
	struct blob *next;	/* hash chain (under the lock) */
	uint64_t hash;
	_Atomic uint32_t refs;	/* slots pointing here */
	uint32_t clen;		/* bytes in data; page_size: raw */
	uint8_t data[];
};

struct mem_store {
	struct pstore_base base;
	uint64_t page_size, nr_pages, max_bytes;
	_Atomic uintptr_t *slot;
	struct blob **bucket;
	uint64_t nr_buckets;		/* a power of two */
	pthread_mutex_t lock;
	struct pstore_codec codec;	/* compression under the lock */
	struct lm_page_store *spill;	/* lower store, owned; or NULL */
	uint64_t spill_over;		/* compressed bytes above: spilled */
	uint8_t *discard;		/* a page, for a replaced spilled one */
	unsigned puts;			/* since the last trim */
	_Atomic uint64_t pages, zero_pages, shared_pages, data_bytes;
	_Atomic uint64_t spilled;	/* pages in the lower store */
	_Atomic uint64_t blob_bytes;	/* allocated, dead ones included */
	_Atomic uint64_t put_failed;
};

#define RLX memory_order_relaxed

static struct mem_store *of(struct lm_page_store *s)
{
	return (struct mem_store *)s;
}

/* Drop a slot's reference to blob b (lock-free: the fault path's). */
static void blob_unref(struct mem_store *m, struct blob *b)
{
	/* Read before the drop: once the count is 0, trim may free b. */
	uint32_t clen = b->clen;
	uint32_t old = atomic_fetch_sub_explicit(&b->refs, 1,
						 memory_order_acq_rel);

	if (old > 1)
		atomic_fetch_sub_explicit(&m->shared_pages, 1, RLX);
	else
		atomic_fetch_sub_explicit(&m->data_bytes, clen, RLX);
}

/* Forget slot value v (not 0). */
static void slot_release(struct mem_store *m, uintptr_t v)
{
	atomic_fetch_sub_explicit(&m->pages, 1, RLX);
	if (v == SLOT_ZERO)
		atomic_fetch_sub_explicit(&m->zero_pages, 1, RLX);
	else if (v == SLOT_LOWER)
		atomic_fetch_sub_explicit(&m->spilled, 1, RLX);
	else
		blob_unref(m, (struct blob *)v);
}

static int mem_take(struct lm_page_store *s, uint64_t off, void *dst)
{
	struct mem_store *m = of(s);
	uint64_t i = off / m->page_size;
	uintptr_t v;
	struct blob *b;
	int err = 0;

	if (i >= m->nr_pages)
		return -EINVAL;
	v = atomic_exchange_explicit(&m->slot[i], 0, memory_order_acq_rel);
	if (!v)
		return -ENOENT;
	if (v == SLOT_LOWER) {
		slot_release(m, v);
		return m->spill->ops->take(m->spill, off, dst);
	}
	b = (struct blob *)v;
	if (v == SLOT_ZERO)
		memset(dst, 0, m->page_size);
	else if (b->clen == m->page_size)
		memcpy(dst, b->data, m->page_size);
	else
		err = pstore_codec_decompress(&m->codec, b->data, b->clen,
					      dst);
	slot_release(m, v);
	return err;
}

/* Free the blobs nobody refers to (under the lock). */
static void trim(struct mem_store *m)
{
	for (uint64_t k = 0; k < m->nr_buckets; k++) {
		struct blob **p = &m->bucket[k];

		while (*p) {
			struct blob *b = *p;

			if (atomic_load_explicit(&b->refs,
						 memory_order_acquire)) {
				p = &b->next;
				continue;
			}
			*p = b->next;
			atomic_fetch_sub_explicit(&m->blob_bytes,
						  sizeof(*b) + b->clen, RLX);
			free(b);
		}
	}
	m->puts = 0;
}

/* A blob equal to data[0, clen) with hash h, referenced once more. */
static struct blob *find_equal(struct mem_store *m, uint64_t h,
			       const uint8_t *data, uint32_t clen)
{
	for (struct blob *b = m->bucket[h & (m->nr_buckets - 1)]; b;
	     b = b->next) {
		if (b->hash != h || b->clen != clen ||
		    memcmp(b->data, data, clen))
			continue;
		if (atomic_fetch_add_explicit(&b->refs, 1,
					      memory_order_acq_rel))
			atomic_fetch_add_explicit(&m->shared_pages, 1, RLX);
		else	/* revived: its bytes count again */
			atomic_fetch_add_explicit(&m->data_bytes, clen, RLX);
		return b;
	}
	return NULL;
}

static struct blob *blob_new(struct mem_store *m, uint64_t h,
			     const uint8_t *data, uint32_t clen)
{
	struct blob *b;

	if (m->max_bytes &&
	    atomic_load_explicit(&m->data_bytes, RLX) + clen > m->max_bytes)
		return NULL;
	b = malloc(sizeof(*b) + clen);
	if (!b)
		return NULL;
	memcpy(b->data, data, clen);
	b->hash = h;
	b->clen = clen;
	atomic_init(&b->refs, 1);
	b->next = m->bucket[h & (m->nr_buckets - 1)];
	m->bucket[h & (m->nr_buckets - 1)] = b;
	atomic_fetch_add_explicit(&m->blob_bytes, sizeof(*b) + clen, RLX);
	atomic_fetch_add_explicit(&m->data_bytes, clen, RLX);
	return b;
}

/* The page's blob (compressed, or raw when that does not save), under the
 * lock; NULL when the store is full or out of memory, or when the page
 * compresses too little for memory and there is a lower store. */
static struct blob *blob_for(struct mem_store *m, const void *page)
{
	uint32_t clen = pstore_codec_compress(&m->codec, page);
	const uint8_t *data = m->codec.out;
	uint64_t h;
	struct blob *b;

	if (m->spill && (!clen || clen > m->spill_over))
		return NULL;
	if (!clen) {
		data = page;
		clen = (uint32_t)m->page_size;
	}
	h = XXH3_64bits(data, clen);
	b = find_equal(m, h, data, clen);
	return b ? b : blob_new(m, h, data, clen);
}

/* Where page off goes (under the lock): its slot value, or 0 with *err
 * set when neither tier takes it. */
static uintptr_t place(struct mem_store *m, uint64_t off, const void *page,
		       int *err)
{
	struct blob *b;

	if (pstore_page_is_zero(page, m->page_size)) {
		atomic_fetch_add_explicit(&m->zero_pages, 1, RLX);
		return SLOT_ZERO;
	}
	b = blob_for(m, page);
	if (b)
		return (uintptr_t)b;
	if (!m->spill) {
		*err = m->max_bytes ? -ENOSPC : -ENOMEM;
		return 0;
	}
	*err = m->spill->ops->put(m->spill, off, page);
	if (*err)
		return 0;
	atomic_fetch_add_explicit(&m->spilled, 1, RLX);
	return SLOT_LOWER;
}

static int mem_put(struct lm_page_store *s, uint64_t off, const void *page)
{
	struct mem_store *m = of(s);
	uint64_t i = off / m->page_size;
	uintptr_t v, old;
	int err = 0;

	if (i >= m->nr_pages)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	v = place(m, off, page, &err);
	if (v) {
		atomic_fetch_add_explicit(&m->pages, 1, RLX);
		old = atomic_exchange_explicit(&m->slot[i], v,
					       memory_order_acq_rel);
		/* A page put again without being taken (the core never
		 * does): the old copy goes, and from the lower store only
		 * if the new one is not there, in its place. */
		if (old == SLOT_LOWER && v != SLOT_LOWER)
			(void)m->spill->ops->take(m->spill, off, m->discard);
		if (old)
			slot_release(m, old);
	} else {
		atomic_fetch_add_explicit(&m->put_failed, 1, RLX);
	}
	if (++m->puts >= TRIM_EVERY)
		trim(m);
	pthread_mutex_unlock(&m->lock);
	return err;
}

static void mem_usage(struct pstore_base *base, struct lm_pstore_usage *u)
{
	struct mem_store *m = (struct mem_store *)base;
	struct lm_pstore_usage lower = { 0 };

	if (m->spill)
		lm_pstore_usage(m->spill, &lower);
	u->pages = atomic_load(&m->pages);
	u->zero_pages = atomic_load(&m->zero_pages);
	u->shared_pages = atomic_load(&m->shared_pages);
	u->data_bytes = atomic_load(&m->data_bytes);
	/* The slot array counts whole: its pages are touched as slots are;
	 * so do the codec's contexts. The lower store's index is memory,
	 * its data is not. */
	u->mem_bytes = atomic_load(&m->blob_bytes) +
		       m->nr_buckets * sizeof(*m->bucket) +
		       m->nr_pages * sizeof(*m->slot) +
		       pstore_codec_mem_bytes(&m->codec) +
		       (m->discard ? m->page_size : 0) + lower.mem_bytes;
	u->disk_bytes = lower.disk_bytes;
	u->spilled_pages = atomic_load(&m->spilled);
	u->put_failed = atomic_load(&m->put_failed);
	u->take_yields = atomic_load(&m->codec.yields);
}

static void mem_destroy(struct lm_page_store *s)
{
	struct mem_store *m = of(s);

	if (m->slot) {
		for (uint64_t i = 0; i < m->nr_pages; i++) {
			uintptr_t v = atomic_load(&m->slot[i]);

			if (v)
				slot_release(m, v);
		}
		munmap((void *)m->slot, m->nr_pages * sizeof(*m->slot));
	}
	if (m->bucket) {
		trim(m);
		free(m->bucket);
	}
	/* After the slots: none refers to the lower store any more. */
	if (m->spill)
		lm_page_store_destroy(m->spill);
	pstore_codec_fini(&m->codec);
	free(m->discard);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct lm_page_store_ops mem_ops = {
	.put = mem_put,
	.take = mem_take,
	.destroy = mem_destroy,
};

/* The configuration's values, checked by name (the spill store aside). */
static int check_config(uint64_t region_size, uint64_t page_size,
			const struct lm_pstore_memory_config *c)
{
	if (!page_size || page_size > (1u << 30) || region_size % page_size)
		return util_error(-EINVAL, "memory page store: region size %llu "
				  "is not a multiple of the page size %llu",
				  (unsigned long long)region_size,
				  (unsigned long long)page_size);
	if (c->spill_over_pct > 100 || (c->spill_over_pct && !c->spill))
		return util_error(-EINVAL, "memory page store: spill_over_pct "
				  "%u: expected 1..100 with a spill store "
				  "(0: the default, %d)", c->spill_over_pct,
				  SPILL_OVER_PCT);
	return 0;
}

/* The index: slots, hash buckets; the discard page of a tiered store. */
static int alloc_index(struct mem_store *m)
{
	void *slot;

	/* A bucket per 4 pages: chains stay short even with few equal. */
	m->nr_buckets = 1024;
	while (m->nr_buckets < m->nr_pages / 4)
		m->nr_buckets <<= 1;
	m->bucket = calloc(m->nr_buckets, sizeof(*m->bucket));
	if (m->spill)
		m->discard = malloc(m->page_size);
	slot = mmap(NULL, m->nr_pages * sizeof(*m->slot),
		    PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	m->slot = slot == MAP_FAILED ? NULL : slot;
	if (!m->bucket || (m->spill && !m->discard) || !m->slot)
		return util_error(-ENOMEM, "memory page store: index for %llu "
				  "pages: out of memory",
				  (unsigned long long)m->nr_pages);
	return 0;
}

int lm_pstore_memory_create_with(uint64_t region_size, uint64_t page_size,
				 const struct lm_pstore_memory_config *c,
				 struct lm_page_store **out)
{
	struct mem_store *m;
	int err = check_config(region_size, page_size, c);

	m = err ? NULL : calloc(1, sizeof(*m));
	if (!m) {
		if (c->spill)	/* ours from the call on (pstore.h) */
			lm_page_store_destroy(c->spill);
		return err ? err : util_error(-ENOMEM, "memory page store: "
					      "out of memory");
	}
	m->base.pub.ops = &mem_ops;
	m->base.usage = mem_usage;
	pthread_mutex_init(&m->lock, NULL);
	m->page_size = page_size;
	m->nr_pages = region_size / page_size;
	m->max_bytes = c->max_bytes;
	m->spill = c->spill;
	m->spill_over = page_size * (c->spill_over_pct ? c->spill_over_pct
						       : SPILL_OVER_PCT) / 100;
	err = pstore_codec_init(&m->codec, c->codec, c->level,
				c->zstd_contexts, page_size);
	if (!err)
		err = alloc_index(m);
	if (err) {
		mem_destroy(&m->base.pub);
		return err;
	}
	snprintf(m->base.pub.desc, sizeof(m->base.pub.desc), "%s %s%s%.60s",
		 m->spill ? "tiered" : "memory",
		 lm_pstore_codec_name(c->codec),
		 m->spill ? " over " : "", m->spill ? m->spill->desc : "");
	*out = &m->base.pub;
	return 0;
}

int lm_pstore_memory_create(uint64_t region_size, uint64_t page_size,
			    uint64_t max_bytes, struct lm_page_store **out)
{
	struct lm_pstore_memory_config c = { .max_bytes = max_bytes };

	return lm_pstore_memory_create_with(region_size, page_size, &c, out);
}
