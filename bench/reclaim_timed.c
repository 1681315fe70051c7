/*
 * reclaim_timed.c - the take-timing store wrapper (see reclaim_timed.h).
 *
 * take runs on the fault path, possibly in a SIGBUS handler: the clock
 * (vDSO clock_gettime) and one relaxed atomic add are all it adds.
 */
#include <stdlib.h>
#include <string.h>

#include "reclaim_timed.h"
#include "util/clock.h"

static int timed_put(struct lm_page_store *s, uint64_t off, const void *page)
{
	struct timed_store *t = (struct timed_store *)s;

	return t->inner->ops->put(t->inner, off, page);
}

static int timed_take(struct lm_page_store *s, uint64_t off, void *dst)
{
	struct timed_store *t = (struct timed_store *)s;
	uint64_t t0 = lm_now_ns();
	int err = t->inner->ops->take(t->inner, off, dst);
	unsigned cls = (off / t->page_size) & 1 ? TIMED_INCOMPRESSIBLE
						: TIMED_3X;

	atomic_fetch_add_explicit(&t->hist[cls][lm_lat_bucket(lm_now_ns() -
							       t0)],
				  1, memory_order_relaxed);
	return err;
}

static void timed_destroy(struct lm_page_store *s)
{
	free(s);
}

static const struct lm_page_store_ops timed_ops = {
	.put = timed_put, .take = timed_take, .destroy = timed_destroy,
};

struct timed_store *timed_store_create(struct lm_page_store *inner,
				       uint64_t page_size)
{
	struct timed_store *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->pub.ops = &timed_ops;
	memcpy(t->pub.desc, inner->desc, sizeof(t->pub.desc));
	t->inner = inner;
	t->page_size = page_size;
	return t;
}
