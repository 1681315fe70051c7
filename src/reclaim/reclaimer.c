/*
 * reclaimer.c - the reclaim policy's thread: ages from write tracking and
 * refaults, eviction of the coldest pages up to a target, and the
 * refault-rate bound on the age threshold (reclaimer.h says what each
 * does). One thread per region; nothing here runs on the fault path but
 * the wrapped store's take, which only sets a bit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lazymem/lazymem.h>
#include "reclaim/reclaimer.h"
#include "util/bits.h"
#include "util/clock.h"
#include "util/error.h"

#define MAX_AGE 255
/*
 * Write tracking samples one slice of the region per round, a whole pass
 * in SLICES rounds. Why: every collected page is protected again, and the
 * next write to it takes an async write-protect fault. Collecting the
 * whole region every 100 ms round cost a continuously written hot 10% one
 * fault per page per round, and the guest 82% of its work rate (bench
 * reclaim, 256 MiB, target 0%: work ratio 0.18 on this nested host);
 * slicing divides that by SLICES.
 */
#define SLICES 10
/* A slice is every SLICES-th chunk of CHUNK pages, not one contiguous
 * tenth: a hot set that is itself a contiguous tenth (the benchmark's)
 * otherwise faults all at once, once per pass, a saw-tooth in the guest's
 * rate; interleaved, a tenth of it faults each round. */
#define CHUNK 1024ull
/*
 * Sampling backs off on groups that stay hot. A group is the 64 pages of
 * one word of the page bitmaps. A group found at least half written at
 * its sample is next sampled MAX_EVERY passes later; a group found cooler
 * is sampled every pass. Why: a hot page sampled every pass takes one
 * write-protect fault per pass and is never a candidate anyway; at 1 GiB
 * the benchmark's hot tenth (26214 pages, 13-25 us per fault here) cost
 * the writers about a fifth of their time. Nothing is lost by waiting:
 * async write-protect keeps a written page's bit until it is collected,
 * so a sample after k passes still sees every write of those k passes and
 * ages an unwritten page by all of them. What is late is only the news
 * that a hot group went cold: by up to MAX_EVERY passes (4 s at the
 * default period), so its eviction starts that much later
 * (lm_reclaim_config.max_sample_every sets it; 1 turns the backoff off).
 */
#define MAX_EVERY 4
#define MAX_EVERY_LIMIT 64	/* every, waited and span are bytes */

struct wrap {
	struct lm_page_store pub;
	struct lm_reclaimer *rc;
};

struct lm_reclaimer {
	struct wrap store;
	struct lm_page_store *inner;
	struct lm_reclaim_config cfg;
	uint64_t page_size, nr_pages, nr_words, target_pages;
	struct lm_region *r;
	_Atomic uint64_t *refaulted;	/* bit per page, set by take */
	uint64_t *written;		/* bit per page, this round */
	uint64_t *out;			/* bit per page: evicted by us */
	uint8_t *age;
	/* Per group (word): passes between samples, passes since the last
	 * one, and the passes this round's sample covered (0: none). */
	uint8_t *every, *waited, *span;
	unsigned threshold;
	uint64_t cursor;		/* where the next scan begins */
	unsigned slice;			/* write tracking: next slice */
	uint64_t last_ns;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	_Atomic uint64_t rounds, evicted, refaults, writes, out_pages;
	_Atomic uint64_t evict_errors;
	_Atomic unsigned threshold_pub;
	_Atomic unsigned held;		/* lm_reclaimer_hold nesting */
};

static int wrap_put(struct lm_page_store *s, uint64_t off, const void *page)
{
	struct lm_reclaimer *rc = ((struct wrap *)s)->rc;

	return rc->inner->ops->put(rc->inner, off, page);
}

/* The fault path: mark the page refaulted (one atomic or), then take. */
static int wrap_take(struct lm_page_store *s, uint64_t off, void *dst)
{
	struct lm_reclaimer *rc = ((struct wrap *)s)->rc;
	uint64_t i = off / rc->page_size;

	atomic_fetch_or_explicit(&rc->refaulted[i >> 6], 1ull << (i & 63),
				 memory_order_relaxed);
	return rc->inner->ops->take(rc->inner, off, dst);
}

static void wrap_destroy(struct lm_page_store *s)
{
	(void)s;	/* the reclaimer owns it */
}

static const struct lm_page_store_ops wrap_ops = {
	.put = wrap_put, .take = wrap_take, .destroy = wrap_destroy,
};

int lm_reclaimer_create(struct lm_page_store *inner, uint64_t region_size,
			uint64_t page_size, const struct lm_reclaim_config *c,
			struct lm_reclaimer **out)
{
	struct lm_reclaimer *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return util_error(-ENOMEM, "reclaimer: out of memory");
	rc->inner = inner;
	rc->cfg = *c;
	if (!rc->cfg.period_ms)
		rc->cfg.period_ms = 100;
	if (!rc->cfg.max_sample_every)
		rc->cfg.max_sample_every = MAX_EVERY;
	if (rc->cfg.max_sample_every > MAX_EVERY_LIMIT) {
		free(rc);
		return util_error(-EINVAL, "reclaimer: sampling every %u "
				  "passes: at most %d", c->max_sample_every,
				  MAX_EVERY_LIMIT);
	}
	rc->threshold = rc->cfg.min_age ? rc->cfg.min_age : 2;
	rc->page_size = page_size;
	rc->nr_pages = region_size / page_size;
	rc->nr_words = (rc->nr_pages + 63) / 64;
	rc->target_pages = c->target_bytes / page_size;
	rc->store.pub.ops = &wrap_ops;
	rc->store.rc = rc;
	snprintf(rc->store.pub.desc, sizeof(rc->store.pub.desc), "%s",
		 inner->desc);
	rc->refaulted = calloc(rc->nr_words, sizeof(*rc->refaulted));
	rc->written = calloc(rc->nr_words, sizeof(*rc->written));
	rc->out = calloc(rc->nr_words, sizeof(*rc->out));
	rc->age = calloc(rc->nr_pages, 1);
	rc->every = malloc(rc->nr_words);
	rc->waited = calloc(rc->nr_words, 1);
	rc->span = calloc(rc->nr_words, 1);
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->wake, NULL);
	if (rc->every)
		memset(rc->every, 1, rc->nr_words);
	if (!rc->refaulted || !rc->written || !rc->out || !rc->age ||
	    !rc->every || !rc->waited || !rc->span) {
		lm_reclaimer_destroy(rc);
		return util_error(-ENOMEM, "reclaimer: page maps for %llu "
				  "pages: out of memory",
				  (unsigned long long)(region_size / page_size));
	}
	*out = rc;
	return 0;
}

struct lm_page_store *lm_reclaimer_store(struct lm_reclaimer *rc)
{
	return &rc->store.pub;
}

/* Which groups of words [w0, w1) are due this round, and for how many
 * passes their sample speaks (span). */
static void plan_samples(struct lm_reclaimer *rc, uint64_t w0, uint64_t w1)
{
	for (uint64_t w = w0; w < w1; w++) {
		rc->waited[w]++;
		rc->span[w] = rc->waited[w] >= rc->every[w] ? rc->waited[w] : 0;
		if (rc->span[w])
			rc->waited[w] = 0;
	}
}

/*
 * After a group's sample; the pages it saw written. A page we evicted
 * reads as written to PAGEMAP_SCAN (its entry is empty, without the
 * write-protect marker), so it is masked out: it was not written, and a
 * write to it would have refaulted (and made it young that way).
 * Then back off while the group stays hot: straight to the longest
 * interval, not by doubling, since a wrong guess costs the same either
 * way (the news of its cooling is late by at most that interval), and a
 * hot set that just moved would otherwise pay for several passes.
 */
static uint64_t note_samples(struct lm_reclaimer *rc, uint64_t w0, uint64_t w1)
{
	uint64_t n = 0;

	for (uint64_t w = w0; w < w1; w++) {
		if (!rc->span[w])
			continue;
		rc->written[w] &= ~rc->out[w];
		n += (uint64_t)__builtin_popcountll(rc->written[w]);
		if (__builtin_popcountll(rc->written[w]) < 32) {
			rc->every[w] = 1;
		} else if (rc->every[w] == 1) {
			/* Just turned hot: stagger its phase by its index, so
			 * a hot set that turned hot together is sampled a
			 * part per pass, not all of it every max passes (a
			 * one-pass dip in the guest's rate, seen as an 18%
			 * drop every 4 s at 1 GiB). Its first interval is
			 * then shorter than its span says, so that one sample
			 * ages its unwritten pages up to max - 1 passes too
			 * much; one pass unwritten already makes a page a
			 * candidate at any threshold up to SLICES, so this
			 * changes nothing at the usual thresholds. */
			rc->every[w] = (uint8_t)rc->cfg.max_sample_every;
			rc->waited[w] = (uint8_t)(w % rc->every[w]);
		}
	}
	return n;
}

/* Collect the writes of the due groups of words [w0, w1), a run of
 * consecutive due groups per call; 0, or -1 on an error. */
static int collect_due(struct lm_reclaimer *rc, uint64_t w0, uint64_t w1)
{
	for (uint64_t w = w0; w < w1;) {
		uint64_t end = w, n = 0, first, len;

		if (!rc->span[w]) {
			w++;
			continue;
		}
		while (end < w1 && rc->span[end])
			end++;
		first = w * 64;
		len = LM_MIN(end * 64, rc->nr_pages) - first;
		if (lm_wp_collect_range(rc->r, first * rc->page_size,
					len * rc->page_size, rc->written, &n))
			return -1;
		w = end;
	}
	return 0;
}

/* Collect the writes of slice s, chunk by chunk; pages written. */
static uint64_t collect_slice(struct lm_reclaimer *rc, unsigned s)
{
	uint64_t total = 0;

	for (uint64_t c = s; c * CHUNK < rc->nr_pages; c += SLICES) {
		uint64_t w0 = c * CHUNK / 64;
		uint64_t w1 = LM_MIN((c + 1) * CHUNK / 64, rc->nr_words);

		plan_samples(rc, w0, w1);
		if (collect_due(rc, w0, w1)) {
			/* Not collected: these groups learn nothing. */
			memset(rc->span + w0, 0, w1 - w0);
			break;
		}
		total += note_samples(rc, w0, w1);
	}
	return total;
}

/*
 * Ages, in rounds. A refaulted page is young again. Without write
 * tracking every other page is one round older. With it, only the groups
 * sampled this round learn of writes: a written page is young, an
 * unwritten one older by the rounds since the group's last sample
 * (SLICES per pass it covered); other pages keep their age until their
 * own sample.
 */
static void age_pages(struct lm_reclaimer *rc, bool tracked, uint64_t *nref)
{
	for (uint64_t w = 0; w < rc->nr_words; w++) {
		uint64_t ref = atomic_exchange_explicit(&rc->refaulted[w], 0,
							memory_order_relaxed);
		uint64_t young = ref | rc->written[w];

		*nref += (uint64_t)__builtin_popcountll(ref);
		rc->out[w] &= ~ref;
		rc->written[w] = 0;
		for (uint64_t i = w * 64; i < LM_MIN(w * 64 + 64, rc->nr_pages);
		     i++) {
			unsigned step = !tracked ? 1 : SLICES * rc->span[w];

			if (young >> (i & 63) & 1)
				rc->age[i] = 0;
			else
				rc->age[i] = (uint8_t)LM_MIN(rc->age[i] + step,
							     MAX_AGE);
		}
		rc->span[w] = 0;
	}
}

/* The refault-rate bound: pages pulled back per second per GiB. */
static void adjust_threshold(struct lm_reclaimer *rc, uint64_t nref,
			     double secs)
{
	double gib = (double)(rc->nr_pages * rc->page_size) / (1u << 30);
	double rate = secs > 0 ? (double)nref / secs / gib : 0;

	if (rc->cfg.max_refault_rate <= 0)
		return;
	if (rate > rc->cfg.max_refault_rate && rc->threshold < MAX_AGE)
		rc->threshold++;
	else if (rate < rc->cfg.max_refault_rate / 2 &&
		 rc->threshold > (rc->cfg.min_age ? rc->cfg.min_age : 2))
		rc->threshold--;
}

static bool candidate(const struct lm_reclaimer *rc, uint64_t i)
{
	return !(rc->out[i >> 6] >> (i & 63) & 1) &&
	       rc->age[i] >= rc->threshold;
}

/* Evict candidate runs from the cursor on until need pages are out. */
static void evict_coldest(struct lm_reclaimer *rc, uint64_t need)
{
	uint64_t scanned = 0;

	while (need && scanned < rc->nr_pages) {
		uint64_t i = rc->cursor, n = 0;
		struct lm_evict_result res;

		while (n < 64 && i + n < rc->nr_pages && n < need &&
		       candidate(rc, i + n))
			n++;
		if (!n) {
			rc->cursor = i + 1 < rc->nr_pages ? i + 1 : 0;
			scanned++;
			continue;
		}
		if (lm_region_evict(rc->r, i * rc->page_size, (unsigned)n,
				    &res)) {
			atomic_fetch_add(&rc->evict_errors, 1);
			return;		/* a snapshot runs: next round */
		}
		for (unsigned k = 0; k < n; k++)
			if (res.evicted >> k & 1)
				rc->out[(i + k) >> 6] |= 1ull << ((i + k) & 63);
		need -= LM_MIN(need, res.nr_evicted);
		atomic_fetch_add(&rc->evicted, res.nr_evicted);
		scanned += n;
		rc->cursor = i + n < rc->nr_pages ? i + n : 0;
	}
}

static uint64_t out_count(const struct lm_reclaimer *rc)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < rc->nr_words; w++)
		n += (uint64_t)__builtin_popcountll(rc->out[w]);
	return n;
}

static void round_once(struct lm_reclaimer *rc)
{
	uint64_t now = lm_now_ns(), nref = 0, out;
	bool tracked = lm_wp_mode(rc->r) == LM_WP_ASYNC;
	unsigned s = rc->slice;

	rc->slice = (rc->slice + 1) % SLICES;
	if (tracked)
		atomic_fetch_add(&rc->writes, collect_slice(rc, s));
	age_pages(rc, tracked, &nref);
	atomic_fetch_add(&rc->refaults, nref);
	adjust_threshold(rc, nref, (double)(now - rc->last_ns) / 1e9);
	rc->last_ns = now;
	out = out_count(rc);
	if (out < rc->target_pages && !atomic_load(&rc->held))
		evict_coldest(rc, rc->target_pages - out);
	atomic_store(&rc->out_pages, out_count(rc));
	atomic_store(&rc->threshold_pub, rc->threshold);
	atomic_fetch_add(&rc->rounds, 1);
}

static void *reclaimer_main(void *arg)
{
	struct lm_reclaimer *rc = arg;

	pthread_mutex_lock(&rc->lock);
	while (!rc->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)rc->cfg.period_ms * 1000000l;
		ts.tv_sec += ts.tv_nsec / 1000000000l;
		ts.tv_nsec %= 1000000000l;
		pthread_cond_timedwait(&rc->wake, &rc->lock, &ts);
		if (rc->stop)
			break;
		/* Under the lock: lm_reclaimer_hold waits for a round in
		 * progress by taking it. */
		round_once(rc);
	}
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

int lm_reclaimer_start(struct lm_reclaimer *rc, struct lm_region *r)
{
	int err;

	rc->r = r;
	rc->last_ns = lm_now_ns();
	/* Async tracking: the first protection is the start of round one. */
	if (lm_wp_mode(r) == LM_WP_ASYNC && !lm_wp_busy(r)) {
		err = lm_wp_protect(r, NULL);
		if (err)
			return util_error(err, "reclaimer: write tracking: %s",
					  lm_last_error());
	}
	err = pthread_create(&rc->thread, NULL, reclaimer_main, rc);
	if (err)
		return util_error(-err, "reclaimer: thread: %s", strerror(err));
	rc->running = true;
	return 0;
}

void lm_reclaimer_stop(struct lm_reclaimer *rc)
{
	if (!rc->running)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->stop = true;
	pthread_cond_signal(&rc->wake);
	pthread_mutex_unlock(&rc->lock);
	pthread_join(rc->thread, NULL);
	rc->running = false;
}

void lm_reclaimer_hold(struct lm_reclaimer *rc, bool hold)
{
	if (hold)
		atomic_fetch_add(&rc->held, 1);
	else
		atomic_fetch_sub(&rc->held, 1);
	/* A round that began before the hold ends under the lock's
	 * ordering: wait for it by taking the lock once. */
	pthread_mutex_lock(&rc->lock);
	pthread_mutex_unlock(&rc->lock);
}

void lm_reclaimer_stats(struct lm_reclaimer *rc, struct lm_reclaimer_stats *s)
{
	s->rounds = atomic_load(&rc->rounds);
	s->evicted = atomic_load(&rc->evicted);
	s->refaulted = atomic_load(&rc->refaults);
	s->written = atomic_load(&rc->writes);
	s->out_pages = atomic_load(&rc->out_pages);
	s->threshold = atomic_load(&rc->threshold_pub);
	s->evict_errors = atomic_load(&rc->evict_errors);
}

void lm_reclaimer_destroy(struct lm_reclaimer *rc)
{
	if (!rc)
		return;
	lm_reclaimer_stop(rc);
	free((void *)rc->refaulted);
	free(rc->written);
	free(rc->out);
	free(rc->age);
	free(rc->every);
	free(rc->waited);
	free(rc->span);
	pthread_mutex_destroy(&rc->lock);
	pthread_cond_destroy(&rc->wake);
	free(rc);
}

int lm_reclaim_parse_target(const char *what, const char *s, uint64_t mem,
			    uint64_t *bytes)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno)
		return util_error(-EINVAL, "%s '%s': expected a percentage "
				  "(40%%) or a byte count (256M)", what, s);
	if (v < 0)
		return util_error(-EINVAL, "%s '%s': negative", what, s);
	if (*end == '%' && !end[1]) {
		if (v > 100)
			return util_error(-EINVAL, "%s '%s': over 100%% of the "
					  "memory", what, s);
		*bytes = (uint64_t)(v / 100 * (double)mem);
		return 0;
	}
	switch (*end) {
	case 'K': case 'k': v *= 1024; end++; break;
	case 'M': case 'm': v *= 1024 * 1024; end++; break;
	case 'G': case 'g': v *= 1024.0 * 1024 * 1024; end++; break;
	default: break;
	}
	if (*end)
		return util_error(-EINVAL, "%s '%s': expected a percentage "
				  "(40%%) or a byte count (256M)", what, s);
	if (v > (double)mem)
		return util_error(-EINVAL, "%s '%s': more than the memory "
				  "(%llu bytes)", what, s,
				  (unsigned long long)mem);
	*bytes = (uint64_t)v;
	return 0;
}
