/*
 * pstore_codec.c - page compression for the in-memory store (see
 * pstore_codec.h): LZ4, or zstd.
 *
 * LZ4 needs no context either way. zstd's one-shot decompression would
 * malloc its context, which a SIGBUS handler must not, so the store keeps
 * a pool of decompression contexts made at creation in memory of its own
 * (ZSTD_initStaticDCtx: a static context never allocates). A take claims
 * one with a CAS on the free set, decompresses, and gives it back. A take
 * that finds none free yields the CPU (sched_yield is async-signal-safe)
 * and tries again; that ends, because a holder never blocks: it only
 * decompresses one page from the store's memory into the faulting
 * thread's staging page, and neither can fault.
 *
 * Pool size, by default 2 x online CPUs, at least 4, at most 64: contexts
 * in use at once are at most the threads running, one per CPU, unless a
 * holder is preempted in the middle (it then keeps its context for a
 * timeslice): twice the CPUs leaves a spare per CPU for that. At least 4
 * because faulting threads outnumber the CPUs on small machines (this
 * one has 2); at most 64, one word of free bits. Each context is
 * ZSTD_estimateDCtxSize() bytes (95992 with libzstd 1.5.4: 375 KiB for
 * the 4 of this machine, 6 MiB at 64), counted whole in the store's
 * memory, as is the compression context (72 KiB).
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <lz4.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "reclaim/pstore_codec.h"
#include "util/error.h"

#define DCTX_ALIGN 64		/* each context on its own cache lines */

static unsigned default_contexts(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long n = cpus > 0 ? 2 * cpus : 4;

	if (n < 4)
		n = 4;
	return n > PSTORE_MAX_DCTX ? PSTORE_MAX_DCTX : (unsigned)n;
}

static int zstd_pool_init(struct pstore_codec *c, unsigned contexts)
{
	size_t one = (ZSTD_estimateDCtxSize() + DCTX_ALIGN - 1) &
		     ~(size_t)(DCTX_ALIGN - 1);

	c->nr_dctx = contexts ? contexts : default_contexts();
	c->dmem_bytes = one * c->nr_dctx;
	c->dmem = aligned_alloc(DCTX_ALIGN, c->dmem_bytes);
	if (!c->dmem)
		return -ENOMEM;
	for (unsigned i = 0; i < c->nr_dctx; i++) {
		c->dctx[i] = ZSTD_initStaticDCtx((uint8_t *)c->dmem + i * one,
						 one);
		if (!c->dctx[i])
			return -ENOMEM;
	}
	atomic_init(&c->dfree, c->nr_dctx == 64 ? ~0ull
						: (1ull << c->nr_dctx) - 1);
	return 0;
}

static int zstd_init(struct pstore_codec *c, int level, unsigned contexts)
{
	if (level == 0)
		level = LM_PSTORE_ZSTD_DEFAULT_LEVEL;
	if (level < 1 || level > ZSTD_maxCLevel())
		return util_error(-EINVAL, "memory page store: zstd level %d: "
				  "expected 1..%d", level, ZSTD_maxCLevel());
	if (contexts > PSTORE_MAX_DCTX)
		return util_error(-EINVAL, "memory page store: %u zstd "
				  "contexts: expected 1..%d (0: the default)",
				  contexts, PSTORE_MAX_DCTX);
	c->level = level;
	c->out_cap = ZSTD_compressBound(c->page_size);
	c->cctx = ZSTD_createCCtx();
	if (!c->cctx || zstd_pool_init(c, contexts))
		return util_error(-ENOMEM, "memory page store: zstd contexts: "
				  "out of memory");
	return 0;
}

int pstore_codec_init(struct pstore_codec *c, enum lm_pstore_codec kind,
		      int level, unsigned contexts, uint64_t page_size)
{
	int err = 0;

	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->page_size = page_size;
	if (kind == LM_PSTORE_LZ4) {
		if (level || contexts)
			return util_error(-EINVAL, "memory page store: lz4 "
					  "takes no level (%d) and no zstd "
					  "contexts (%u)", level, contexts);
		c->out_cap = (size_t)LZ4_compressBound((int)page_size);
	} else if (kind == LM_PSTORE_ZSTD) {
		err = zstd_init(c, level, contexts);
	} else {
		return util_error(-EINVAL, "memory page store: codec %d: "
				  "expected lz4 or zstd", (int)kind);
	}
	if (!err) {
		c->out = malloc(c->out_cap);
		if (!c->out)
			err = util_error(-ENOMEM, "memory page store: "
					 "compression buffer: out of memory");
	}
	return err;
}

void pstore_codec_fini(struct pstore_codec *c)
{
	ZSTD_freeCCtx(c->cctx);	/* NULL is fine */
	free(c->dmem);
	free(c->out);
	c->cctx = NULL;
	c->dmem = NULL;
	c->out = NULL;
}

uint32_t pstore_codec_compress(struct pstore_codec *c, const void *page)
{
	size_t n;

	if (c->kind == LM_PSTORE_LZ4) {
		int r = LZ4_compress_default(page, (char *)c->out,
					     (int)c->page_size,
					     (int)c->out_cap);

		n = r > 0 ? (size_t)r : c->page_size;
	} else {
		n = ZSTD_compressCCtx(c->cctx, c->out, c->out_cap, page,
				      c->page_size, c->level);
		if (ZSTD_isError(n))
			n = c->page_size;
	}
	return n < c->page_size ? (uint32_t)n : 0;
}

/* A free decompression context's index, waiting for one if need be. */
static unsigned dctx_claim(struct pstore_codec *c)
{
	for (;;) {
		uint64_t avail = atomic_load_explicit(&c->dfree,
						     memory_order_relaxed);

		while (avail) {
			unsigned i = (unsigned)__builtin_ctzll(avail);

			if (atomic_compare_exchange_weak_explicit(
				    &c->dfree, &avail, avail & ~(1ull << i),
				    memory_order_acquire,
				    memory_order_relaxed))
				return i;
		}
		atomic_fetch_add_explicit(&c->yields, 1, memory_order_relaxed);
		sched_yield();
	}
}

static void dctx_release(struct pstore_codec *c, unsigned i)
{
	atomic_fetch_or_explicit(&c->dfree, 1ull << i, memory_order_release);
}

int pstore_codec_decompress(struct pstore_codec *c, const void *in,
			    uint32_t len, void *dst)
{
	size_t n;

	if (c->kind == LM_PSTORE_LZ4) {
		int r = LZ4_decompress_safe(in, dst, (int)len,
					    (int)c->page_size);

		return r == (int)c->page_size ? 0 : -EIO;
	}
	unsigned i = dctx_claim(c);

	n = ZSTD_decompressDCtx(c->dctx[i], dst, c->page_size, in, len);
	dctx_release(c, i);
	return !ZSTD_isError(n) && n == c->page_size ? 0 : -EIO;
}

int pstore_codec_zstd_max_level(void)
{
	return ZSTD_maxCLevel();
}

uint64_t pstore_codec_mem_bytes(const struct pstore_codec *c)
{
	return c->out_cap + c->dmem_bytes +
	       (c->cctx ? ZSTD_sizeof_CCtx(c->cctx) : 0);
}
