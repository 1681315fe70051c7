/*
 * reclaim_codec.c - per-page cost of the in-memory store's codecs on the
 * benchmark's pages (see reclaim_codec.h): put (zero test, compression,
 * hash, copy) and take (decompression) through the store's own vtable,
 * one thread, separately for the compressible and the incompressible
 * half, best of PASSES (the machine is shared: the minimum is the figure
 * least moved by other processes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "reclaim/pstore.h"
#include "reclaim_codec.h"
#include "util/error.h"

#define PS 4096ull
#define NP 2048			/* pages of each class */
#define PASSES 3

static const char *const codec_args[RECLAIM_NR_CODECS] = { "lz4", "zstd:1",
							   "zstd:3" };

struct pass {
	uint8_t *pages, *back;	/* NP pages of one class, and their return */
	struct lm_page_store *s;
};

/* One pass: put every page, take every page; ns per page each way. */
static bool one_pass(struct pass *p, double *put_ns, double *take_ns)
{
	uint64_t t0 = lm_now_ns(), t1, t2;
	bool ok = true;

	for (uint64_t i = 0; i < NP; i++)
		ok &= p->s->ops->put(p->s, i * PS, p->pages + i * PS) == 0;
	t1 = lm_now_ns();
	for (uint64_t i = 0; i < NP; i++)
		ok &= p->s->ops->take(p->s, i * PS, p->back + i * PS) == 0;
	t2 = lm_now_ns();
	*put_ns = (double)(t1 - t0) / NP;
	*take_ns = (double)(t2 - t1) / NP;
	return ok && !memcmp(p->pages, p->back, NP * PS);
}

static void measure(struct pass *p, const char *arg,
		    struct reclaim_codec_fig *f)
{
	struct lm_pstore_memory_config c = { 0 };
	struct lm_pstore_usage u;

	snprintf(f->codec, sizeof(f->codec), "%s", arg);
	if (lm_pstore_parse_codec("codec", arg, &c.codec, &c.level) ||
	    lm_pstore_memory_create_with(NP * PS, PS, &c, &p->s)) {
		snprintf(f->err, sizeof(f->err), "%s", util_last_error());
		return;
	}
	f->verified = true;
	f->put_ns = f->take_ns = 1e18;
	for (int k = 0; k < PASSES; k++) {
		double put, take;

		f->verified &= one_pass(p, &put, &take);
		f->put_ns = put < f->put_ns ? put : f->put_ns;
		f->take_ns = take < f->take_ns ? take : f->take_ns;
	}
	/* What the class costs held: put once more, untimed. */
	for (uint64_t i = 0; i < NP; i++)
		f->verified &= p->s->ops->put(p->s, i * PS,
					      p->pages + i * PS) == 0;
	lm_pstore_usage(p->s, &u);
	f->bytes = (double)u.data_bytes / NP;
	lm_page_store_destroy(p->s);
}

bool reclaim_codec_measure(reclaim_fill_fn *fill, void *arg,
			   struct reclaim_codec_fig *figs)
{
	struct pass p = { malloc(NP * PS), malloc(NP * PS), NULL };
	bool all = p.pages && p.back;

	for (int cls = 0; all && cls < 2; cls++) {
		/* class 0: even pages (3x), class 1: odd (incompressible) */
		for (uint64_t i = 0; i < NP; i++)
			fill(arg, 2 * i + (uint64_t)cls, p.pages + i * PS);
		for (int k = 0; k < RECLAIM_NR_CODECS; k++) {
			struct reclaim_codec_fig *f =
				&figs[cls * RECLAIM_NR_CODECS + k];

			memset(f, 0, sizeof(*f));
			f->compressible = cls == 0;
			measure(&p, codec_args[k], f);
			all &= f->verified;
		}
	}
	free(p.pages);
	free(p.back);
	return all;
}
