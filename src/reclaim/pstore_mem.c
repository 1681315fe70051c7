/*
 * pstore_mem.c - the in-memory page store: LZ4, zero pages as a flag, equal
 * pages stored once.
 *
 * Per page of the region one slot word: 0 (not held), ZERO, or a pointer to
 * a blob (the page's compressed bytes, reference-counted, in a hash table
 * keyed by XXH3 of those bytes). take() runs on the fault path, possibly in
 * a SIGBUS handler, so it takes no lock and frees nothing: it exchanges the
 * slot to 0, decompresses, and drops its reference. A blob whose count fell
 * to 0 stays in the table (a later put of an equal page revives it) until
 * put() trims the table, under the store's lock, which only put and trim
 * take. A blob's count can reach 0 only after the last take has read it,
 * so trim never frees bytes a take is reading.
 *
 * Why LZ4 and not zstd: decompression runs on the faulting thread; LZ4
 * decompresses a 4 KiB page in about a microsecond and needs no context,
 * whereas libzstd's one-shot decompression allocates its context with
 * malloc unless the caller keeps one per thread, which a signal handler
 * cannot set up. docs/reclaim.md has the figures.
 */
#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "reclaim/pstore_internal.h"
#include "util/error.h"

#define SLOT_ZERO ((uintptr_t)1)
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
	uint8_t *tmp;			/* compression output (under lock) */
	int tmp_size;
	unsigned puts;			/* since the last trim */
	_Atomic uint64_t pages, zero_pages, shared_pages, data_bytes;
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
	else
		blob_unref(m, (struct blob *)v);
}

static int mem_take(struct lm_page_store *s, uint64_t off, void *dst)
{
	struct mem_store *m = of(s);
	uint64_t i = off / m->page_size;
	uintptr_t v;
	struct blob *b;
	int n;

	if (i >= m->nr_pages)
		return -EINVAL;
	v = atomic_exchange_explicit(&m->slot[i], 0, memory_order_acq_rel);
	if (!v)
		return -ENOENT;
	if (v == SLOT_ZERO) {
		memset(dst, 0, m->page_size);
		slot_release(m, v);
		return 0;
	}
	b = (struct blob *)v;
	if (b->clen == m->page_size) {
		memcpy(dst, b->data, m->page_size);
		n = (int)m->page_size;
	} else {
		n = LZ4_decompress_safe((const char *)b->data, dst,
					(int)b->clen, (int)m->page_size);
	}
	slot_release(m, v);
	return n == (int)m->page_size ? 0 : -EIO;
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

/* The page's blob (compressed, or raw when LZ4 does not save), under the
 * lock; NULL when the store is full or out of memory. */
static struct blob *blob_for(struct mem_store *m, const void *page)
{
	int c = LZ4_compress_default(page, (char *)m->tmp, (int)m->page_size,
				     m->tmp_size);
	const uint8_t *data = m->tmp;
	uint32_t clen = (uint32_t)c;
	uint64_t h;
	struct blob *b;

	if (c <= 0 || (uint64_t)c >= m->page_size) {
		data = page;
		clen = (uint32_t)m->page_size;
	}
	h = XXH3_64bits(data, clen);
	b = find_equal(m, h, data, clen);
	return b ? b : blob_new(m, h, data, clen);
}

static int mem_put(struct lm_page_store *s, uint64_t off, const void *page)
{
	struct mem_store *m = of(s);
	uint64_t i = off / m->page_size;
	uintptr_t v = SLOT_ZERO, old;
	int err = 0;

	if (i >= m->nr_pages)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (!pstore_page_is_zero(page, m->page_size)) {
		struct blob *b = blob_for(m, page);

		v = (uintptr_t)b;
		if (!b)
			err = m->max_bytes ? -ENOSPC : -ENOMEM;
	} else {
		atomic_fetch_add_explicit(&m->zero_pages, 1, RLX);
	}
	if (!err) {
		atomic_fetch_add_explicit(&m->pages, 1, RLX);
		old = atomic_exchange_explicit(&m->slot[i], v,
					       memory_order_acq_rel);
		if (old)	/* never taken back: replaced */
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

	u->pages = atomic_load(&m->pages);
	u->zero_pages = atomic_load(&m->zero_pages);
	u->shared_pages = atomic_load(&m->shared_pages);
	u->data_bytes = atomic_load(&m->data_bytes);
	/* The slot array counts whole: its pages are touched as slots are. */
	u->mem_bytes = atomic_load(&m->blob_bytes) +
		       m->nr_buckets * sizeof(*m->bucket) +
		       m->nr_pages * sizeof(*m->slot);
	u->put_failed = atomic_load(&m->put_failed);
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
	free(m->tmp);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct lm_page_store_ops mem_ops = {
	.put = mem_put,
	.take = mem_take,
	.destroy = mem_destroy,
};

int lm_pstore_memory_create(uint64_t region_size, uint64_t page_size,
			    uint64_t max_bytes, struct lm_page_store **out)
{
	struct mem_store *m;
	void *slot;

	if (!page_size || page_size > (1u << 30) || region_size % page_size)
		return util_error(-EINVAL, "memory page store: region size %llu "
				  "is not a multiple of the page size %llu",
				  (unsigned long long)region_size,
				  (unsigned long long)page_size);
	m = calloc(1, sizeof(*m));
	if (!m)
		return util_error(-ENOMEM, "memory page store: out of memory");
	m->base.pub.ops = &mem_ops;
	m->base.usage = mem_usage;
	snprintf(m->base.pub.desc, sizeof(m->base.pub.desc), "memory lz4");
	pthread_mutex_init(&m->lock, NULL);
	m->page_size = page_size;
	m->nr_pages = region_size / page_size;
	m->max_bytes = max_bytes;
	/* A bucket per 4 pages: chains stay short even with few equal. */
	m->nr_buckets = 1024;
	while (m->nr_buckets < m->nr_pages / 4)
		m->nr_buckets <<= 1;
	m->bucket = calloc(m->nr_buckets, sizeof(*m->bucket));
	m->tmp_size = LZ4_compressBound((int)page_size);
	m->tmp = malloc((size_t)m->tmp_size);
	slot = mmap(NULL, m->nr_pages * sizeof(*m->slot),
		    PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	m->slot = slot == MAP_FAILED ? NULL : slot;
	if (!m->bucket || !m->tmp || !m->slot) {
		mem_destroy(&m->base.pub);
		return util_error(-ENOMEM, "memory page store: index for %llu "
				  "pages: out of memory",
				  (unsigned long long)region_size / page_size);
	}
	*out = &m->base.pub;
	return 0;
}
