/*
 * reclaim.c - "lazymem bench reclaim": cold memory out of a running guest
 * and back on touch, on plain threads (this machine has no /dev/kvm; the
 * writer threads stand in for vCPUs, their faults resolved in their SIGBUS
 * handler as a vCPU resolves its own on its exit from KVM_RUN).
 *
 * The guest: every page holds seeded pseudo-random words, half the pages
 * incompressible, half about 3x compressible (each word three times), so
 * compression alone cannot halve the memory. A hot 10% is rewritten
 * continuously (a whole page per write, with its generation); the other
 * 90% is written once at the start and then read rarely. Half-way the hot
 * set moves to a region that was cold (the phase change). At the end every
 * word of every page is checked against its page's last generation.
 *
 * Rows: anon (evicted with UFFDIO_MOVE) and memfd (write-protect, copy,
 * punch) backings; contenders: no reclaim, the compressed memory store,
 * the file store, the two as tiers (pages that compress well in memory,
 * the rest to the file), kernel swap (skipped where not configured; never
 * turned on here). RSS is mincore(2) of the region plus the store's
 * memory. --codec picks the memory and tiered stores' codec; a line per
 * codec gives its cost per page on these pages (reclaim_codec.c).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/lazymem.h>

#include "bench.h"
#include "cli/cli.h"
#include "reclaim_codec.h"
#include "reclaim_timed.h"
#include "reclaim/pstore.h"
#include "reclaim/reclaimer.h"
#include "util/bits.h"
#include "util/error.h"

#define PS 4096ull
#define WORDS (PS / 8)
#define MAX_THREADS 16
#define SAMPLE_MS 100
#define COLD_EVERY 256		/* hot page writes per cold read */
#define GUEST_SEED 0x1e3a5eedull

enum store_k { S_NONE, S_MEMORY, S_FILE, S_TIERED, S_SWAP, NR_S };
static const char *const store_names[NR_S] = { "none", "memory", "file",
					       "tiered", "swap" };

struct cfg {
	uint64_t mem, target;
	const char *target_arg;
	double max_rate, seconds;
	unsigned threads, sample_every;
	bool skip[2];			/* backings left out: anon, memfd */
	const char *dir;
	const char *codec_arg;
	struct lm_pstore_memory_config store;	/* codec and level */
};

struct guest {
	uint64_t *w;
	uint64_t nr_pages, seed;
	uint32_t *gen;			/* per page; its owner writes it */
	unsigned nthr;
	_Atomic bool stop, phase2;
	_Atomic uint64_t writes;	/* hot page writes */
	_Atomic uint64_t slow_hist[LM_LAT_BUCKETS];
	pthread_t tid[MAX_THREADS];
	struct gthread {
		struct guest *g;
		unsigned t;
	} th[MAX_THREADS];
};

/* Word k of page p at generation g: odd pages incompressible, even pages
 * each word three times (about 3x with LZ4). */
static uint64_t word_of(uint64_t seed, uint64_t p, uint32_t g, uint64_t k)
{
	uint64_t x = seed ^ (p << 20) ^ ((uint64_t)g << 44) ^
		     ((p & 1) ? k : k / 3);

	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	return x * 0xbf58476d1ce4e5b9ull;
}

/* Page p at generation 1 with the guest's seed: the codec lines' data. */
static void codec_fill(void *arg, uint64_t p, void *page)
{
	uint64_t *d = page;

	(void)arg;
	for (uint64_t k = 0; k < WORDS; k++)
		d[k] = word_of(GUEST_SEED, p, 1, k);
}

static void write_page(struct guest *g, uint64_t p, uint32_t gen)
{
	uint64_t *d = g->w + p * WORDS;

	for (uint64_t k = 0; k < WORDS; k++)
		d[k] = word_of(g->seed, p, gen, k);
	g->gen[p] = gen;
}

/* Hot set: the first 10% of the pages, after the phase change the 10%
 * starting half-way. Writer t owns the pages p % nthr == t. */
static uint64_t hot_page(const struct guest *g, uint64_t x, unsigned t,
			 bool phase2)
{
	uint64_t hot = g->nr_pages / 10 / g->nthr;
	uint64_t base = phase2 ? g->nr_pages / 2 : 0;
	uint64_t i = x % (hot ? hot : 1);

	return (base / g->nthr + i) * g->nthr + t;
}

static void *guest_main(void *arg)
{
	struct gthread *gt = arg;
	struct guest *g = gt->g;
	uint64_t x = g->seed ^ (gt->t + 1) * 0x9e3779b97f4a7c15ull, n = 0;
	volatile uint64_t sink = 0;

	while (!atomic_load_explicit(&g->stop, memory_order_relaxed)) {
		bool ph2 = atomic_load_explicit(&g->phase2,
						memory_order_relaxed);
		uint64_t p, t0, dt;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p = hot_page(g, x >> 16, gt->t, ph2);
		if (p >= g->nr_pages)
			continue;
		t0 = lm_now_ns();
		write_page(g, p, g->gen[p] + 1);
		dt = lm_now_ns() - t0;
		if (dt > 20000)		/* a refault (or a preemption) */
			atomic_fetch_add_explicit(
				&g->slow_hist[lm_lat_bucket(dt)], 1,
				memory_order_relaxed);
		atomic_fetch_add_explicit(&g->writes, 1, memory_order_relaxed);
		if (++n % COLD_EVERY == 0) {
			/* A rare read of a cold page of its own. */
			uint64_t c = ((x >> 40) % (g->nr_pages / g->nthr)) *
				     g->nthr + gt->t;

			sink += g->w[c * WORDS + (x & (WORDS - 1))];
		}
	}
	(void)sink;
	return NULL;
}

static uint64_t verify(const struct guest *g)
{
	uint64_t bad = 0;

	for (uint64_t p = 0; p < g->nr_pages; p++)
		for (uint64_t k = 0; k < WORDS; k++)
			if (g->w[p * WORDS + k] !=
			    word_of(g->seed, p, g->gen[p], k)) {
				bad++;
				break;
			}
	return bad;
}

struct result {
	enum store_k store;
	enum lm_backing backing;
	int rc;
	char err[256];
	double rss_mean, rss_end, work_ratio, steady_rate, refaults_per_s;
	double refault_p50_us, refault_p99_us, guest_p50_us, recover_s;
	double ramp_s, ramp_ratio, steady_from_s;	/* see summarize() */
	uint64_t store_bytes, refaults, evicted, refused;
	double tracked_per_s;		/* writes seen by tracking, per s */
	uint64_t store_mem_bytes, store_disk_bytes, spilled;
	double take_p50_us[TIMED_NR];	/* the store's take, by page class */
	bool verified;
	double *rss_t, *rate_t;		/* per sample */
	uint64_t *out_t;		/* pages the reclaimer holds out */
	unsigned nsamples;
};

static uint64_t resident_bytes(void *addr, uint64_t size, unsigned char *vec)
{
	uint64_t n = 0;

	if (mincore(addr, size, vec) < 0)
		return 0;
	for (uint64_t i = 0; i < size / PS; i++)
		n += vec[i] & 1;
	return n * PS;
}

static uint64_t store_mem(struct lm_page_store *s)
{
	struct lm_pstore_usage u;

	if (!s)
		return 0;
	lm_pstore_usage(s, &u);
	/* Memory only: the file store's (and the file tier's) data is on
	 * disk, its index counts. */
	return u.mem_bytes;
}

static int make_store(const struct cfg *c, enum store_k k,
		      struct lm_page_store **s, char *path, size_t len)
{
	if (k == S_MEMORY)
		return lm_pstore_memory_create_with(c->mem, PS, &c->store, s);
	snprintf(path, len, "%s/lazymem-reclaim-%d.pages", c->dir,
		 (int)getpid());
	if (k == S_TIERED)
		return lm_pstore_tiered_create(path, c->mem, PS, &c->store, s);
	return lm_pstore_file_create(path, c->mem, PS, s);
}

static double hist_p(const _Atomic uint64_t *h, unsigned pct)
{
	uint64_t total = 0, seen = 0, want;

	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
		total += atomic_load(&h[i]);
	want = (total * pct + 99) / 100;
	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++) {
		seen += atomic_load(&h[i]);
		if (seen >= want && seen)
			return (double)lm_lat_bucket_ns(i) / 1000;
	}
	return 0;
}

/* Sample RSS and work rate every SAMPLE_MS until the run's end, with the
 * phase change half-way. */
static void run_samples(struct guest *g, struct lm_region *r,
			struct lm_page_store *s, struct lm_reclaimer *rc,
			const struct cfg *c,
			struct result *res)
{
	unsigned n = (unsigned)(c->seconds * 1000 / SAMPLE_MS);
	unsigned char *vec = malloc(c->mem / PS);
	uint64_t last = 0;

	res->rss_t = calloc(n, sizeof(double));
	res->rate_t = calloc(n, sizeof(double));
	res->out_t = calloc(n, sizeof(uint64_t));
	for (unsigned i = 0; i < n; i++) {
		uint64_t w;

		usleep(SAMPLE_MS * 1000);
		if (i == n / 2)
			atomic_store(&g->phase2, true);
		w = atomic_load(&g->writes);
		res->rate_t[i] = (double)(w - last) * 1000 / SAMPLE_MS;
		last = w;
		res->rss_t[i] = (double)(resident_bytes(lm_region_addr(r),
							c->mem, vec) +
					 store_mem(s));
		if (rc) {
			struct lm_reclaimer_stats st;

			lm_reclaimer_stats(rc, &st);
			res->out_t[i] = st.out_pages;
		}
	}
	res->nsamples = n;
	free(vec);
}

static double mean(const double *v, unsigned from, unsigned to)
{
	double s = 0;

	for (unsigned i = from; i < to; i++)
		s += v[i];
	return to > from ? s / (to - from) : 0;
}

/*
 * The ramp: from the start to the first sample with the reclaimer holding
 * at least RAMP_DONE of its target out, eviction running flat out
 * meanwhile. The steady phase: from the ramp's end (and not before a
 * fifth of the run, a warm-up) to the phase change. A row whose ramp
 * does not end before the phase change has no steady phase of its own:
 * its steady figures then cover [n/5, n/2) as for no reclaim, and
 * ramp_s is -1. No reclaim's steady rate is the base of every ratio, its
 * rate over the same samples the base of the ramp's.
 */
#define RAMP_DONE 0.95
#define RECOVER_WINDOW (1000 / SAMPLE_MS)

static unsigned ramp_end(const struct result *res, uint64_t target_pages)
{
	for (unsigned i = 0; i < res->nsamples / 2; i++)
		if (res->out_t[i] >= RAMP_DONE * (double)target_pages)
			return i + 1;
	return 0;
}

static void summarize_ramp(struct result *res, const struct result *none,
			   uint64_t target_pages, unsigned *steady0)
{
	unsigned n = res->nsamples, end = ramp_end(res, target_pages);
	double base;

	res->ramp_s = -1;
	res->ramp_ratio = 0;
	if (!end)
		return;
	res->ramp_s = (double)end * SAMPLE_MS / 1000;
	base = none ? mean(none->rate_t, 0, end) : 0;
	res->ramp_ratio = base > 0 ? mean(res->rate_t, 0, end) / base : 0;
	if (end < n / 2)
		*steady0 = LM_MAX(end, n / 5);
}

static void summarize(struct result *res, const struct result *none,
		      struct lm_region *r, struct lm_page_store *s,
		      enum store_k k, struct guest *g, uint64_t target_pages,
		      struct timed_store *ts)
{
	unsigned n = res->nsamples, half = n / 2, steady0 = n / 5;
	struct lm_stats st;
	double base;

	lm_region_stats(r, &st);
	res->rss_mean = mean(res->rss_t, 0, n);
	res->rss_end = res->rss_t[n - 1];
	if (k != S_NONE)
		summarize_ramp(res, none, target_pages, &steady0);
	res->steady_from_s = (double)steady0 * SAMPLE_MS / 1000;
	res->steady_rate = mean(res->rate_t, steady0, half);
	base = none && none->steady_rate > 0 ? none->steady_rate
					     : res->steady_rate;
	res->work_ratio = base > 0 ? res->steady_rate / base : 0;
	res->refaults = st.pages_refaulted;
	res->evicted = st.pages_evicted;
	res->refused = st.evict_refused;
	res->refault_p50_us = (double)st.refault_p50_ns / 1000;
	res->refault_p99_us = (double)st.refault_p99_ns / 1000;
	res->guest_p50_us = hist_p(g->slow_hist, 50);
	for (int i = 0; ts && i < TIMED_NR; i++)
		res->take_p50_us[i] = hist_p(ts->hist[i], 50);
	res->store_bytes = 0;
	if (s) {
		struct lm_pstore_usage u;

		lm_pstore_usage(s, &u);
		/* memory: data in memory; file: on disk; tiered: both */
		res->store_mem_bytes = k == S_FILE ? 0 : u.data_bytes;
		res->store_disk_bytes = u.disk_bytes;
		res->store_bytes = res->store_mem_bytes + res->store_disk_bytes;
		res->spilled = u.spilled_pages;
	}
	/* Recovery: from the phase change to the start of the first second
	 * (RECOVER_WINDOW samples) whose mean rate is >= 0.9x the
	 * no-reclaim steady rate; a single good 100 ms sample is not
	 * enough, since a burst can follow a stall. */
	res->recover_s = -1;
	for (unsigned i = half; i + RECOVER_WINDOW <= n; i++)
		if (mean(res->rate_t, i, i + RECOVER_WINDOW) >= 0.9 * base) {
			res->recover_s = (double)(i - half) * SAMPLE_MS / 1000;
			break;
		}
}

static int guest_start(struct guest *g)
{
	for (unsigned t = 0; t < g->nthr; t++) {
		g->th[t] = (struct gthread){ g, t };
		if (pthread_create(&g->tid[t], NULL, guest_main, &g->th[t]))
			return -EAGAIN;
	}
	return 0;
}

static void guest_stop(struct guest *g)
{
	atomic_store(&g->stop, true);
	for (unsigned t = 0; t < g->nthr; t++)
		pthread_join(g->tid[t], NULL);
}

static int run_one(const struct cfg *c, enum lm_backing b, enum store_k k,
		   const struct result *none, struct result *res)
{
	struct lm_source *src = NULL;
	struct lm_page_store *s = NULL;
	struct timed_store *ts = NULL;
	struct lm_reclaimer *rc = NULL;
	struct lm_region *r = NULL;
	struct guest *g = calloc(1, sizeof(*g));
	char path[512] = "";
	int err;

	res->store = k;
	res->backing = b;
	err = lm_source_zero_create(c->mem, &src);
	if (!err && k != S_NONE)
		err = make_store(c, k, &s, path, sizeof(path));
	struct lm_reclaim_config rcfg = {
		.target_bytes = c->target, .max_refault_rate = c->max_rate,
		.max_sample_every = c->sample_every,
	};
	if (!err && s && !(ts = timed_store_create(s, PS)))
		err = util_error(-ENOMEM, "take timing: out of memory");
	if (!err && s)
		err = lm_reclaimer_create(&ts->pub, c->mem, PS, &rcfg, &rc);
	struct lm_region_config cfg = {
		.name = "guest", .size = c->mem, .backing = b,
		.install = LM_INSTALL_COPY, .delivery = LM_DELIVERY_SELF,
		.source = src, .store = rc ? lm_reclaimer_store(rc) : NULL,
		/* anon: writes tracked by async write-protect */
		.write_protect = rc && b == LM_BACKING_ANON ? LM_WP_ASYNC
							   : LM_WP_NONE,
	};
	if (!err)
		err = lm_region_create(&cfg, &r);
	if (err) {
		snprintf(res->err, sizeof(res->err), "%s%s",
			 *util_last_error() ? util_last_error() : "",
			 lm_last_error());
		goto out;
	}
	g->w = lm_region_addr(r);
	g->nr_pages = c->mem / PS;
	g->seed = GUEST_SEED;
	g->nthr = c->threads;
	g->gen = calloc(g->nr_pages, sizeof(*g->gen));
	for (uint64_t p = 0; p < g->nr_pages; p++)
		write_page(g, p, 1);
	if (rc && (err = lm_reclaimer_start(rc, r))) {
		snprintf(res->err, sizeof(res->err), "%s", util_last_error());
		goto out;
	}
	if ((err = guest_start(g))) {
		snprintf(res->err, sizeof(res->err), "starting guest threads");
		goto out;
	}
	run_samples(g, r, s, rc, c, res);
	guest_stop(g);
	summarize(res, none, r, s, k, g, c->target / PS, ts);
	if (rc) {
		struct lm_reclaimer_stats rs;

		lm_reclaimer_stop(rc);
		lm_reclaimer_stats(rc, &rs);
		res->tracked_per_s = (double)rs.written / c->seconds;
	}
	res->verified = verify(g) == 0;
	res->refaults_per_s = (double)res->refaults / c->seconds;
out:
	res->rc = err;
	if (rc)
		lm_reclaimer_stop(rc);
	lm_region_destroy(r);
	lm_reclaimer_destroy(rc);
	if (ts)
		lm_page_store_destroy(&ts->pub);
	lm_page_store_destroy(s);
	lm_source_destroy(src);
	if (path[0])
		unlink(path);
	free(g->gen);
	free(g);
	return err;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--mem SIZE] [--seconds S] [--threads N]\n"
		"          [--reclaim-target PCT|SIZE] [--max-refault-rate R]\n"
		"          [--backing anon|memfd|both] [--dir DIR] [--codec C]\n"
		"          [--sample-every N] [--timeline FILE] [--json]\n\n"
		"Cold memory out of a running guest (plain writer threads: no\n"
		"/dev/kvm) and back on touch: no reclaim vs the compressed\n"
		"memory store vs the file store vs the two as tiers (kernel\n"
		"swap skipped where not configured), anon (UFFDIO_MOVE) and\n"
		"memfd backings; then each codec's cost per page.\n\n"
		"  --mem SIZE              guest memory (default 256M)\n"
		"  --seconds S             run time per contender (default 6)\n"
		"  --threads N             writer threads (default 2)\n"
		"  --reclaim-target X      memory to keep out: 60%% (default) or a size\n"
		"  --max-refault-rate R    pages/s per GiB; raise the age threshold above it (default 20000)\n"
		"  --backing B             anon, memfd or both (default both)\n"
		"  --dir DIR               where the file store (and tier) goes (default /var/tmp)\n"
		"  --codec C               memory and tiered stores: lz4 (default), zstd, zstd:LEVEL\n"
		"  --sample-every N        write tracking: sample a group that stays hot at most\n"
		"                          every N passes (default 4; 1: every pass)\n"
		"  --timeline FILE         RSS and work rate over time as CSV\n"
		"  --json                  JSON instead of a table\n", prog);
}

static const char *swap_reason(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[256];
	int n = 0;

	if (!f)
		return "no /proc/swaps";
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 1 ? "swap is configured, but this benchmark does not drive "
		       "it (MADV_PAGEOUT per page): not measured"
		     : "no swap configured on this machine (and it is not "
		       "turned on for a benchmark on a shared machine)";
}

static void print_table(const struct result *res, int n, const struct cfg *c)
{
	printf("reclaim of %llu MiB guests on %u writer threads (plain threads: "
	       "no /dev/kvm), %d CPUs, %.0f s each, phase change at %.0f s; "
	       "target %s out, max refault rate %.0f pages/s/GiB, codec %s; "
	       "RSS = mincore of the region + the store's memory\n",
	       (unsigned long long)(c->mem >> 20), c->threads, bench_ncpus(),
	       c->seconds, c->seconds / 2, c->target_arg, c->max_rate,
	       c->codec_arg);
	printf("%-7s %-7s %9s %9s %6s %6s %6s %7s %8s %10s %8s %8s %9s %8s "
	       "%9s %8s %8s %8s\n",
	       "backing", "store", "RSS mean", "RSS end", "x none", "ramp s",
	       "ramp w", "work", "wp/s", "refault/s", "p50 us", "p99 us",
	       "guest us", "recov s", "store MiB", "take 3x", "take inc",
	       "verified");
	for (int i = 0; i < n; i++) {
		const struct result *r = &res[i];
		const struct result *none = &res[i - (int)r->store];

		if (r->store == S_SWAP) {
			printf("%-7s %-7s skipped: %s\n",
			       lm_backing_name(r->backing), "swap", r->err);
			continue;
		}
		if (r->rc) {
			printf("%-7s %-7s FAILED: %s\n",
			       lm_backing_name(r->backing),
			       store_names[r->store], r->err);
			continue;
		}
		printf("%-7s %-7s %9.1f %9.1f %6.2f %6.1f %6.2f %7.3f %8.0f "
		       "%10.0f %8.1f %8.1f %9.1f %8.1f %9.1f %8.1f %8.1f %8s\n",
		       lm_backing_name(r->backing),
		       store_names[r->store], r->rss_mean / (1 << 20),
		       r->rss_end / (1 << 20),
		       none->rss_mean > 0 ? r->rss_mean / none->rss_mean : 0,
		       r->ramp_s, r->ramp_ratio, r->work_ratio, r->tracked_per_s, r->refaults_per_s, r->refault_p50_us,
		       r->refault_p99_us, r->guest_p50_us, r->recover_s,
		       (double)r->store_bytes / (1 << 20),
		       r->take_p50_us[TIMED_3X],
		       r->take_p50_us[TIMED_INCOMPRESSIBLE],
		       r->verified ? "yes" : "NO");
	}
	printf("\n(ramp s = time until %.0f%% of the target was out, -1: not "
	       "before the phase change; ramp w = hot page writes/s during the "
	       "ramp over no reclaim's in the same seconds; work = the same in "
	       "the steady phase, from the ramp's end (not before a fifth of "
	       "the run) to the phase change; wp/s = writes write tracking "
	       "saw per second, each a write-protect fault of a writer's; "
	       "p50/p99 = refault service time on the faulting thread, signal "
	       "to install; guest us = median write that took over 20 us, "
	       "signal delivery included; recov s = time from the phase "
	       "change to the start of the first second at >= 0.9x no "
	       "reclaim's steady rate, -1: none; store MiB = data in memory + "
	       "allocated on disk; take 3x / inc = p50 us of the store's take "
	       "alone, compressible / incompressible pages)\n",
	       RAMP_DONE * 100);
}

/* The codec lines: ratios against lz4 on the same class of pages. */
static void print_codecs(const struct reclaim_codec_fig *f)
{
	printf("\nstore put / take per page, one thread, best of 3 passes of "
	       "2048 pages (x lz4 on the same pages):\n");
	printf("%-14s %-7s %9s %6s %9s %6s %10s %8s\n", "pages", "codec",
	       "put ns", "x lz4", "take ns", "x lz4", "bytes/page", "verified");
	for (int i = 0; i < 2 * RECLAIM_NR_CODECS; i++) {
		const struct reclaim_codec_fig *l =
			&f[i - i % RECLAIM_NR_CODECS];

		if (f[i].err[0]) {
			printf("%-14s %-7s FAILED: %s\n", "", f[i].codec,
			       f[i].err);
			continue;
		}
		printf("%-14s %-7s %9.0f %6.2f %9.0f %6.2f %10.0f %8s\n",
		       f[i].compressible ? "3x" : "incompressible",
		       f[i].codec, f[i].put_ns, f[i].put_ns / l->put_ns,
		       f[i].take_ns, f[i].take_ns / l->take_ns, f[i].bytes,
		       f[i].verified ? "yes" : "NO");
	}
}

static json_object *codecs_json(const struct reclaim_codec_fig *f)
{
	json_object *arr = json_object_new_array();

	for (int i = 0; i < 2 * RECLAIM_NR_CODECS; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "codec", json_object_new_string(f[i].codec));
		json_object_object_add(o, "pages", json_object_new_string(
			f[i].compressible ? "3x" : "incompressible"));
		if (f[i].err[0])
			json_object_object_add(o, "error", json_object_new_string(f[i].err));
		json_object_object_add(o, "put_ns_per_page", json_object_new_double(f[i].put_ns));
		json_object_object_add(o, "take_ns_per_page", json_object_new_double(f[i].take_ns));
		json_object_object_add(o, "data_bytes_per_page", json_object_new_double(f[i].bytes));
		json_object_object_add(o, "verified", json_object_new_boolean(f[i].verified));
		json_object_array_add(arr, o);
	}
	return arr;
}

static void print_json(const struct result *res, int n, const struct cfg *c,
		       const struct reclaim_codec_fig *codecs)
{
	json_object *root = json_object_new_object(),
		    *cfg = json_object_new_object(),
		    *arr = json_object_new_array();

	json_object_object_add(root, "benchmark", json_object_new_string("reclaim"));
	json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)c->mem));
	json_object_object_add(cfg, "seconds", json_object_new_double(c->seconds));
	json_object_object_add(cfg, "threads", json_object_new_int64(c->threads));
	json_object_object_add(cfg, "reclaim_target", json_object_new_string(c->target_arg));
	json_object_object_add(cfg, "target_bytes", json_object_new_int64((int64_t)c->target));
	json_object_object_add(cfg, "max_refault_rate", json_object_new_double(c->max_rate));
	json_object_object_add(cfg, "sample_every", json_object_new_int64(c->sample_every ? c->sample_every : 4));
	json_object_object_add(cfg, "cpus", json_object_new_int64(bench_ncpus()));
	json_object_object_add(cfg, "codec", json_object_new_string(lm_pstore_codec_name(c->store.codec)));
	json_object_object_add(cfg, "codec_level", json_object_new_int64(
		c->store.codec == LM_PSTORE_LZ4 ? 0 : c->store.level ? c->store.level
		: LM_PSTORE_ZSTD_DEFAULT_LEVEL));
	json_object_object_add(cfg, "vcpus", json_object_new_string(
		"plain writer threads (no /dev/kvm), faults resolved in their SIGBUS handler"));
	json_object_object_add(cfg, "rss", json_object_new_string(
		"mincore of the region plus the store's memory (data, headers, index)"));
	json_object_object_add(root, "config", cfg);
	for (int i = 0; i < n; i++) {
		const struct result *r = &res[i];
		const struct result *none = &res[i - (int)r->store];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "store", json_object_new_string(store_names[r->store]));
		json_object_object_add(o, "backing", json_object_new_string(lm_backing_name(r->backing)));
		if (r->store == S_SWAP || r->rc) {
			json_object_object_add(o, r->store == S_SWAP ? "skipped" : "error",
					       json_object_new_string(r->err));
			json_object_array_add(arr, o);
			continue;
		}
		json_object_object_add(o, "rss_mean_bytes", json_object_new_int64((int64_t)r->rss_mean));
		json_object_object_add(o, "rss_end_bytes", json_object_new_int64((int64_t)r->rss_end));
		json_object_object_add(o, "rss_ratio", json_object_new_double(
			none->rss_mean > 0 ? r->rss_mean / none->rss_mean : 0));
		json_object_object_add(o, "work_ratio", json_object_new_double(r->work_ratio));
		json_object_object_add(o, "steady_from_s", json_object_new_double(r->steady_from_s));
		json_object_object_add(o, "ramp_s", json_object_new_double(r->ramp_s));
		json_object_object_add(o, "ramp_work_ratio", json_object_new_double(r->ramp_ratio));
		json_object_object_add(o, "refaults_per_sec", json_object_new_double(r->refaults_per_s));
		json_object_object_add(o, "tracked_writes_per_sec", json_object_new_double(r->tracked_per_s));
		json_object_object_add(o, "refault_p50_us", json_object_new_double(r->refault_p50_us));
		json_object_object_add(o, "refault_p99_us", json_object_new_double(r->refault_p99_us));
		json_object_object_add(o, "guest_refault_p50_us", json_object_new_double(r->guest_p50_us));
		json_object_object_add(o, "recover_s", json_object_new_double(r->recover_s));
		json_object_object_add(o, "store_bytes", json_object_new_int64((int64_t)r->store_bytes));
		json_object_object_add(o, "store_mem_bytes", json_object_new_int64((int64_t)r->store_mem_bytes));
		json_object_object_add(o, "store_disk_bytes", json_object_new_int64((int64_t)r->store_disk_bytes));
		json_object_object_add(o, "spilled_pages", json_object_new_int64((int64_t)r->spilled));
		json_object_object_add(o, "take_p50_us_3x", json_object_new_double(r->take_p50_us[TIMED_3X]));
		json_object_object_add(o, "take_p50_us_incompressible", json_object_new_double(r->take_p50_us[TIMED_INCOMPRESSIBLE]));
		json_object_object_add(o, "evicted", json_object_new_int64((int64_t)r->evicted));
		json_object_object_add(o, "refused", json_object_new_int64((int64_t)r->refused));
		json_object_object_add(o, "verified", json_object_new_boolean(r->verified));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "results", arr);
	json_object_object_add(root, "codecs", codecs_json(codecs));
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static int write_timeline(const char *path, const struct result *res, int n)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return cli_fail("--timeline %s: %s", path, strerror(errno));
	fprintf(f, "backing,store,seconds,rss_bytes,writes_per_s,out_bytes\n");
	for (int i = 0; i < n; i++)
		for (unsigned k = 0; k < res[i].nsamples; k++)
			fprintf(f, "%s,%s,%.1f,%.0f,%.0f,%llu\n",
				lm_backing_name(res[i].backing),
				store_names[res[i].store],
				(double)(k + 1) * SAMPLE_MS / 1000,
				res[i].rss_t[k], res[i].rate_t[k],
				(unsigned long long)(res[i].out_t[k] * PS));
	fclose(f);
	return 0;
}

static int parse_args(int argc, char **argv, struct cfg *c, bool *json,
		      const char **timeline)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "seconds", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "reclaim-target", required_argument, NULL, 'r' },
		{ "max-refault-rate", required_argument, NULL, 'R' },
		{ "dir", required_argument, NULL, 'd' },
		{ "sample-every", required_argument, NULL, 'e' },
		{ "backing", required_argument, NULL, 'b' },
		{ "codec", required_argument, NULL, 'c' },
		{ "timeline", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n;
	char *end;
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			if (cli_parse_size(optarg, &c->mem) || !c->mem || c->mem % (64 * PS))
				return cli_usage_error("--mem '%s': expected a size, a multiple of 256K, like 256M", optarg);
			break;
		case 's':
			c->seconds = strtod(optarg, &end);
			if (*end || c->seconds < 1 || c->seconds > 3600)
				return cli_usage_error("--seconds '%s': expected 1..3600", optarg);
			break;
		case 't':
			if (cli_parse_size(optarg, &n) || !n || n > MAX_THREADS)
				return cli_usage_error("--threads '%s': expected 1..%d", optarg, MAX_THREADS);
			c->threads = (unsigned)n;
			break;
		case 'r':
			c->target_arg = optarg;
			break;
		case 'R':
			c->max_rate = strtod(optarg, &end);
			if (*end || c->max_rate < 0)
				return cli_usage_error("--max-refault-rate '%s': expected pages/s per GiB, 0 or more", optarg);
			break;
		case 'd':
			c->dir = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "anon") && strcmp(optarg, "memfd") &&
			    strcmp(optarg, "both"))
				return cli_usage_error("--backing '%s': expected anon, memfd or both", optarg);
			c->skip[0] = !strcmp(optarg, "memfd");
			c->skip[1] = !strcmp(optarg, "anon");
			break;
		case 'e':
			if (cli_parse_size(optarg, &n) || !n || n > 64)
				return cli_usage_error("--sample-every '%s': expected 1..64 passes", optarg);
			c->sample_every = (unsigned)n;
			break;
		case 'c':
			c->codec_arg = optarg;
			if (lm_pstore_parse_codec("--codec", optarg,
						  &c->store.codec, &c->store.level))
				return cli_usage_error("%s", util_last_error());
			break;
		case 'T':
			*timeline = optarg;
			break;
		case 'j':
			*json = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return -1;	/* done: help printed */
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind < argc)
		return cli_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
	if (lm_reclaim_parse_target("--reclaim-target", c->target_arg, c->mem,
				    &c->target))
		return cli_usage_error("%s", util_last_error());
	return 0;
}

int cmd_bench_reclaim(int argc, char **argv)
{
	struct cfg c = { .mem = 256ull << 20, .target_arg = "60%",
			 .max_rate = 20000, .seconds = 6, .threads = 2,
			 .dir = "/var/tmp", .codec_arg = "lz4" };
	static const enum lm_backing backings[] = { LM_BACKING_ANON,
						    LM_BACKING_MEMFD };
	struct result res[2 * NR_S];
	struct reclaim_codec_fig codecs[2 * RECLAIM_NR_CODECS];
	const char *timeline = NULL;
	bool json = false, all = true;
	int rc = parse_args(argc, argv, &c, &json, &timeline), n = 0;

	if (rc)
		return rc < 0 ? 0 : rc;
	memset(res, 0, sizeof(res));
	for (int bi = 0; bi < 2; bi++) {
		if (c.skip[bi])
			continue;
		for (int k = 0; k < NR_S; k++, n++) {
			struct result *r = &res[n];

			r->store = (enum store_k)k;
			r->backing = backings[bi];
			if (k == S_SWAP) {
				snprintf(r->err, sizeof(r->err), "%s",
					 swap_reason());
				continue;
			}
			if (!json)
				fprintf(stderr, "  %s %s ...\n",
					lm_backing_name(backings[bi]),
					store_names[k]);
			run_one(&c, backings[bi], (enum store_k)k,
				k ? &res[n - k] : NULL, r);
			all = all && !r->rc && r->verified;
		}
	}
	if (!json)
		fprintf(stderr, "  codecs ...\n");
	all = reclaim_codec_measure(codec_fill, NULL, codecs) && all;
	if (json) {
		print_json(res, n, &c, codecs);
	} else {
		print_table(res, n, &c);
		print_codecs(codecs);
	}
	if (timeline)
		write_timeline(timeline, res, n);
	for (int i = 0; i < n; i++) {
		free(res[i].rss_t);
		free(res[i].rate_t);
		free(res[i].out_t);
	}
	return all ? 0 : 1;
}
