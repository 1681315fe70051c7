/*
 * tracking.c - "lazymem bench tracking": what it costs to learn which
 * pages a guest wrote, mechanism by mechanism, measured the way the
 * kernel's dirty_log_perf_test measures KVM's dirty logging. Each round:
 *
 *   1. every writer writes one word to the pages of its own slice (the
 *      round's "dirty memory time"; per-write cost = a writer's time over
 *      the pages it wrote, averaged over the writers);
 *   2. the collector gathers the set of pages written and re-arms the
 *      tracking (the collection cost of the round), while the writers
 *      wait; then the set is checked against the pages written, exactly,
 *      and every page's content against its last generation.
 *
 * This machine has no /dev/kvm: plain writer threads stand in for vCPUs
 * (pinned, thread t on CPU t % CPUs), as in bench live-snapshot and bench
 * reclaim; the KVM dirty log and dirty ring rows say so instead of a
 * figure. Workloads: "full" (every page of every slice, ascending, like
 * dirty_log_perf_test) and "sparse" (each page with probability 1/10,
 * seeded, a new subset each round). Rounds are interleaved: round k of
 * every mechanism runs before round k + 1 of any, the first one rotating,
 * so the machine's noise falls on all of them. Figures are medians over
 * the rounds. Mechanisms: tracking_mech.c, tracking_mprotect.c.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "bench.h"
#include "cli/cli.h"
#include "tracking.h"

#define MAX_COUNTS 8
#define MAX_ROUNDS 100
#define SPARSE_DIV 10		/* sparse: each page with probability 1/10 */
#define SEED 0x747261636bull	/* the sparse subsets' seed, fixed */

enum workload { W_FULL, W_SPARSE, NR_W };
static const char *const wl_names[NR_W] = { "full", "sparse" };

struct opts {
	uint64_t mem;
	unsigned rounds;
	unsigned threads[MAX_COUNTS];
	int ncounts;
	bool json, help;
};

/* One round's writes, the same for every mechanism. */
struct work {
	enum workload wl;
	uint32_t gen;
	uint64_t nr_pages;
	uint64_t *list[TRK_MAX_THREADS];	/* sparse: slice s's pages */
	uint64_t len[TRK_MAX_THREADS];
	uint64_t *expect;		/* bitmap: the pages written */
	uint64_t count;
	uint32_t *last_gen;		/* per page, once the round is written */
};

struct wthread {
	struct pool *pool;
	unsigned t;
	uint64_t ns, cpu_ns, pages;
};

/* The writer threads of one thread count, released round by round. */
struct pool {
	unsigned n;
	int ncpus;
	pthread_t tid[TRK_MAX_THREADS];
	pthread_barrier_t go, done;
	struct trk *trk;		/* the job, set before go */
	const struct work *w;
	bool stop;
	struct wthread th[TRK_MAX_THREADS];
};

struct result {
	enum trk_mech mech;
	unsigned threads;
	enum workload wl;
	unsigned rounds;		/* rounds done */
	double write_ns[MAX_ROUNDS], cpu_ns[MAX_ROUNDS];
	double write_ms[MAX_ROUNDS], collect_ns[MAX_ROUNDS];
	uint64_t written[MAX_ROUNDS], collected[MAX_ROUNDS];
	int rc;
	char err[300];
	bool verified;
};

/* Writer me's slice of this round: word 0 of each page gets (page, gen). */
static void write_slice(const struct trk *t, const struct work *w,
			struct wthread *me)
{
	volatile uint64_t *mem = t->mem;
	uint64_t first, n, t0, c0;

	trk_slice(t, me->t, &first, &n);
	c0 = lm_thread_cpu_ns();
	t0 = lm_now_ns();
	if (w->wl == W_FULL) {
		for (uint64_t p = first; p < first + n; p++)
			mem[p * TRK_WORDS] = p << 32 | w->gen;
		me->pages = n;
	} else {
		const uint64_t *l = w->list[me->t];

		for (uint64_t i = 0; i < w->len[me->t]; i++)
			mem[l[i] * TRK_WORDS] = l[i] << 32 | w->gen;
		me->pages = w->len[me->t];
	}
	me->ns = lm_now_ns() - t0;
	me->cpu_ns = lm_thread_cpu_ns() - c0;
}

static void *writer_main(void *arg)
{
	struct wthread *me = arg;
	struct pool *pl = me->pool;

	bench_pin_self((int)(me->t % (unsigned)pl->ncpus));
	for (;;) {
		pthread_barrier_wait(&pl->go);
		if (pl->stop)
			return NULL;
		write_slice(pl->trk, pl->w, me);
		pthread_barrier_wait(&pl->done);
	}
}

static int pool_start(struct pool *pl, unsigned n)
{
	memset(pl, 0, sizeof(*pl));
	pl->n = n;
	pl->ncpus = bench_ncpus();
	pthread_barrier_init(&pl->go, NULL, n + 1);
	pthread_barrier_init(&pl->done, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		pl->th[i] = (struct wthread){ .pool = pl, .t = i };
		if (pthread_create(&pl->tid[i], NULL, writer_main, &pl->th[i])) {
			/* the barriers count n + 1: without every writer
			 * no round can run */
			fprintf(stderr, "lazymem: bench tracking: cannot start "
				"writer thread %u of %u\n", i + 1, n);
			exit(1);
		}
	}
	return 0;
}

static void pool_stop(struct pool *pl)
{
	pl->stop = true;
	pthread_barrier_wait(&pl->go);
	for (unsigned i = 0; i < pl->n; i++)
		pthread_join(pl->tid[i], NULL);
	pthread_barrier_destroy(&pl->go);
	pthread_barrier_destroy(&pl->done);
}

static bool sparse_pick(uint32_t gen, uint64_t p)
{
	uint64_t x = SEED ^ ((uint64_t)gen << 40) ^ p;

	/* splitmix64's finalizer: a fresh subset per round and seed */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x % SPARSE_DIV == 0;
}

/* Round gen's writes on geometry geo: the lists, the expected set and the
 * generation every page holds once they are done. */
static void build_work(struct work *w, const struct trk *geo,
		       enum workload wl, uint32_t gen)
{
	memset(w->expect, 0, (w->nr_pages + 63) / 64 * 8);
	w->wl = wl;
	w->gen = gen;
	w->count = 0;
	for (unsigned s = 0; s < geo->nslices; s++) {
		uint64_t first, n;

		trk_slice(geo, s, &first, &n);
		w->len[s] = 0;
		for (uint64_t p = first; p < first + n; p++) {
			if (wl == W_SPARSE && !sparse_pick(gen, p))
				continue;
			if (wl == W_SPARSE)
				w->list[s][w->len[s]++] = p;
			w->expect[p >> 6] |= 1ull << (p & 63);
			w->last_gen[p] = gen;
			w->count++;
		}
	}
}

/* The collected set must be the written set, bit for bit and in count. */
static int verify_set(const struct trk *t, const struct work *w,
		      const uint64_t *got, uint64_t count, char *why,
		      size_t len)
{
	if (t->mech == TRK_NONE)
		return 0;		/* tracks nothing: content only */
	for (uint64_t i = 0; i < (w->nr_pages + 63) / 64; i++) {
		uint64_t d = got[i] ^ w->expect[i];
		uint64_t p;

		if (!d)
			continue;
		p = i * 64 + (uint64_t)__builtin_ctzll(d);
		snprintf(why, len, "round %u: page %llu %s", w->gen,
			 (unsigned long long)p,
			 (w->expect[i] >> (p & 63)) & 1
			 ? "was written but not collected"
			 : "was collected but not written");
		return -EBADMSG;
	}
	if (count != w->count) {
		snprintf(why, len, "round %u: %llu pages collected for %llu "
			 "written (one counted twice)", w->gen,
			 (unsigned long long)count,
			 (unsigned long long)w->count);
		return -EBADMSG;
	}
	return 0;
}

/* Every page holds (page, its last generation) and its pattern. */
static int verify_memory(const struct trk *t, const struct work *w,
			 char *why, size_t len)
{
	for (uint64_t p = 0; p < t->nr_pages; p++) {
		const volatile uint64_t *pg = t->mem + p * TRK_WORDS;
		uint64_t want = p << 32 | w->last_gen[p];

		if (pg[0] != want ||
		    pg[TRK_WORDS - 1] != bench_pattern(p, TRK_WORDS - 1)) {
			snprintf(why, len, "round %u: page %llu holds 0x%llx, "
				 "expected 0x%llx (or its pattern is gone)",
				 w->gen, (unsigned long long)p,
				 (unsigned long long)pg[0],
				 (unsigned long long)want);
			return -EBADMSG;
		}
	}
	return 0;
}

/* What the writers' clocks said of the round just written. */
static void note_writes(const struct pool *pl, struct result *res, unsigned k)
{
	double ns = 0, cpu = 0, slowest = 0;
	unsigned m = 0;
	uint64_t pages = 0;

	for (unsigned i = 0; i < pl->n; i++) {
		const struct wthread *th = &pl->th[i];

		pages += th->pages;
		if ((double)th->ns > slowest)
			slowest = (double)th->ns;
		if (!th->pages)
			continue;
		ns += (double)th->ns / (double)th->pages;
		cpu += (double)th->cpu_ns / (double)th->pages;
		m++;
	}
	res->write_ns[k] = m ? ns / m : 0;
	res->cpu_ns[k] = m ? cpu / m : 0;
	res->write_ms[k] = slowest / 1e6;
	res->written[k] = pages;
}

/* One round of mechanism t: write, collect (timed), check. */
static int run_round(struct pool *pl, struct trk *t, const struct work *w,
		     uint64_t *got, struct result *res, unsigned k)
{
	uint64_t count = 0, t0;
	int err;

	pl->trk = t;
	pl->w = w;
	pthread_barrier_wait(&pl->go);
	pthread_barrier_wait(&pl->done);
	note_writes(pl, res, k);
	memset(got, 0, (w->nr_pages + 63) / 64 * 8);
	t0 = lm_now_ns();
	err = trk_collect(t, got, &count, res->err, sizeof(res->err));
	res->collect_ns[k] = (double)(lm_now_ns() - t0);
	res->collected[k] = count;
	if (!err)
		err = verify_set(t, w, got, count, res->err, sizeof(res->err));
	if (!err)
		err = verify_memory(t, w, res->err, sizeof(res->err));
	res->rounds = k + 1;
	return err;
}

static int work_alloc(struct work *w, const struct trk *geo)
{
	memset(w, 0, sizeof(*w));
	w->nr_pages = geo->nr_pages;
	w->expect = calloc((geo->nr_pages + 63) / 64, 8);
	w->last_gen = calloc(geo->nr_pages, sizeof(*w->last_gen));
	if (!w->expect || !w->last_gen)
		return -ENOMEM;
	for (unsigned s = 0; s < geo->nslices; s++) {
		uint64_t first, n;

		trk_slice(geo, s, &first, &n);
		w->list[s] = calloc(n ? n : 1, sizeof(uint64_t));
		if (!w->list[s])
			return -ENOMEM;
	}
	return 0;
}

static void work_free(struct work *w)
{
	free(w->expect);
	free(w->last_gen);
	for (unsigned s = 0; s < TRK_MAX_THREADS; s++)
		free(w->list[s]);
}

/* Open every mechanism; a failure marks its rows of both workloads. */
static void open_all(struct trk *trk, bool *live, struct result res[NR_W][NR_TRK],
		     uint64_t mem, unsigned nthr)
{
	for (int m = 0; m < NR_TRK; m++) {
		char why[256] = "";
		int err = trk_open(&trk[m], (enum trk_mech)m, mem, nthr, why,
				   sizeof(why));

		live[m] = !err;
		for (int wl = 0; wl < NR_W && err; wl++) {
			res[wl][m].rc = err;
			snprintf(res[wl][m].err, sizeof(res[wl][m].err),
				 "setting up: %s", why);
		}
	}
}

/* A mechanism failed in workload wl: the later workloads are not run. */
static void mark_dead(struct result res[NR_W][NR_TRK], int wl, int m)
{
	for (int l = wl + 1; l < NR_W; l++) {
		res[l][m].rc = -ECANCELED;
		snprintf(res[l][m].err, sizeof(res[l][m].err), "not run: it "
			 "failed in the %s workload", wl_names[wl]);
	}
}

/* Every workload's rounds, mechanisms interleaved within each round. */
static void run_rounds(const struct opts *o, struct pool *pl,
		       struct trk *trk, bool *live, struct work *w,
		       uint64_t *got, struct result res[NR_W][NR_TRK])
{
	uint32_t gen = 0;

	for (int wl = 0; wl < NR_W; wl++) {
		if (!o->json)
			fprintf(stderr, "  %u thread%s, %s: %u rounds ...\n",
				pl->n, pl->n == 1 ? "" : "s", wl_names[wl],
				o->rounds);
		for (unsigned k = 0; k < o->rounds; k++) {
			build_work(w, &trk[TRK_NONE], (enum workload)wl, ++gen);
			for (int i = 0; i < NR_TRK; i++) {
				int m = (int)((k + (unsigned)i) % NR_TRK);
				struct result *r = &res[wl][m];

				if (!live[m])
					continue;
				r->rc = run_round(pl, &trk[m], w, got, r, k);
				if (r->rc) {
					live[m] = false;
					mark_dead(res, wl, m);
				}
			}
		}
	}
}

/* One thread count: every mechanism, both workloads, into res. */
static void run_count(const struct opts *o, unsigned nthr,
		      struct result res[NR_W][NR_TRK])
{
	struct trk trk[NR_TRK];
	bool live[NR_TRK];
	struct work w;
	struct pool pl;
	uint64_t *got;

	for (int wl = 0; wl < NR_W; wl++)
		for (int m = 0; m < NR_TRK; m++)
			res[wl][m] = (struct result){ .mech = (enum trk_mech)m,
				.threads = nthr, .wl = (enum workload)wl };
	memset(&w, 0, sizeof(w));
	open_all(trk, live, res, o->mem, nthr);
	got = calloc((o->mem / TRK_PS + 63) / 64, 8);
	if (!live[TRK_NONE] || !got || work_alloc(&w, &trk[TRK_NONE])) {
		/* the none row is every ratio's base and the geometry */
		for (int m = 0; m < NR_TRK; m++) {
			if (live[m])
				trk_close(&trk[m]);
			for (int wl = 0; wl < NR_W; wl++)
				if (!res[wl][m].rc) {
					res[wl][m].rc = -ECANCELED;
					snprintf(res[wl][m].err,
						 sizeof(res[wl][m].err),
						 "not run: %s", live[TRK_NONE]
						 ? "out of memory for the round's "
						   "bookkeeping"
						 : "the none row (the ratios' "
						   "base) could not be set up");
				}
		}
		free(got);
		work_free(&w);
		return;
	}
	pool_start(&pl, nthr);
	run_rounds(o, &pl, trk, live, &w, got, res);
	pool_stop(&pl);
	for (int m = 0; m < NR_TRK; m++) {
		for (int wl = 0; wl < NR_W; wl++)
			res[wl][m].verified = !res[wl][m].rc &&
					      res[wl][m].rounds == o->rounds;
		if (trk[m].mem)
			trk_close(&trk[m]);
	}
	free(got);
	work_free(&w);
}

static double median_of(const double *v, unsigned n)
{
	double tmp[MAX_ROUNDS];

	if (!n)
		return 0;
	memcpy(tmp, v, n * sizeof(*v));
	return bench_median(tmp, (int)n);
}

/* Median over rounds of the collection's ns per page collected. */
static double collect_ns_per_page(const struct result *r)
{
	double v[MAX_ROUNDS];

	for (unsigned k = 0; k < r->rounds; k++)
		v[k] = r->collected[k] ? r->collect_ns[k] /
					 (double)r->collected[k] : 0;
	return median_of(v, r->rounds);
}

static double pages_per_round(const struct result *r)
{
	uint64_t sum = 0;

	for (unsigned k = 0; k < r->rounds; k++)
		sum += r->written[k];
	return r->rounds ? (double)sum / r->rounds : 0;
}

static uint64_t pages_collected(const struct result *r)
{
	uint64_t sum = 0;

	for (unsigned k = 0; k < r->rounds; k++)
		sum += r->collected[k];
	return sum;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static json_object *json_rounds(const double *v, unsigned n, double scale)
{
	json_object *a = json_object_new_array();

	for (unsigned k = 0; k < n; k++)
		json_object_array_add(a, json_object_new_double(v[k] * scale));
	return a;
}

static json_object *json_result(const struct result *r,
				const struct result *none)
{
	json_object *o = json_object_new_object();
	double wns = median_of(r->write_ns, r->rounds);

#define ADD(k, v) json_object_object_add(o, k, v)
	ADD("mechanism", json_object_new_string(trk_name(r->mech)));
	ADD("threads", json_object_new_int64(r->threads));
	ADD("workload", json_object_new_string(wl_names[r->wl]));
	ADD("tracks", json_object_new_boolean(r->mech != TRK_NONE));
	ADD("rounds", json_object_new_int64(r->rounds));
	ADD("write_ns_per_page", json_object_new_double(wns));
	ADD("write_x_none", json_object_new_double(
		ratio(wns, median_of(none->write_ns, none->rounds))));
	ADD("write_cpu_ns_per_page", json_object_new_double(
		median_of(r->cpu_ns, r->rounds)));
	ADD("write_ms", json_object_new_double(median_of(r->write_ms, r->rounds)));
	ADD("collect_ms", json_object_new_double(
		median_of(r->collect_ns, r->rounds) / 1e6));
	ADD("collect_ns_per_page", json_object_new_double(collect_ns_per_page(r)));
	ADD("pages_written_per_round", json_object_new_double(pages_per_round(r)));
	ADD("pages_collected", json_object_new_int64((int64_t)pages_collected(r)));
	ADD("rounds_write_ns_per_page", json_rounds(r->write_ns, r->rounds, 1));
	ADD("rounds_collect_ms", json_rounds(r->collect_ns, r->rounds, 1e-6));
	ADD("verified", json_object_new_boolean(r->verified));
	if (r->rc)
		ADD("error", json_object_new_string(r->err));
#undef ADD
	return o;
}

static json_object *json_skipped(enum trk_skipped s)
{
	json_object *o = json_object_new_object();
	char why[300];

	trk_skipped_reason(s, why, sizeof(why));
	json_object_object_add(o, "mechanism",
			       json_object_new_string(trk_skipped_name(s)));
	json_object_object_add(o, "skipped", json_object_new_string(why));
	return o;
}

static json_object *json_config(const struct opts *o)
{
	json_object *cfg = json_object_new_object(),
		    *thr = json_object_new_array(),
		    *wl = json_object_new_object();

	for (int i = 0; i < o->ncounts; i++)
		json_object_array_add(thr, json_object_new_int64(o->threads[i]));
	json_object_object_add(wl, "full", json_object_new_string(
		"every page of every slice, ascending, one word each"));
	json_object_object_add(wl, "sparse", json_object_new_string(
		"each page with probability 1/10 (seeded, a new subset every round)"));
#define ADD(k, v) json_object_object_add(cfg, k, v)
	ADD("guest", json_object_new_string("threads"));
	ADD("vcpus", json_object_new_string(
		"plain writer threads stand in for vCPUs (no /dev/kvm), one slice each"));
	ADD("threads", thr);
	ADD("mem", json_object_new_int64((int64_t)o->mem));
	ADD("memory", json_object_new_string(
		"each mechanism its own mem bytes of private anonymous memory, THP off"));
	ADD("page_size", json_object_new_int64((int64_t)TRK_PS));
	ADD("rounds", json_object_new_int64(o->rounds));
	ADD("cpus", json_object_new_int64(bench_ncpus()));
	ADD("pinning", json_object_new_string("writer t on CPU t % cpus"));
	ADD("workloads", wl);
	ADD("seed", json_object_new_int64((int64_t)SEED));
	ADD("order", json_object_new_string(
		"round k of every mechanism before round k+1, first one rotating"));
	ADD("statistic", json_object_new_string("median over rounds"));
#undef ADD
	return cfg;
}

static void print_json(const struct opts *o,
		       struct result (*res)[NR_W][NR_TRK])
{
	json_object *root = json_object_new_object(),
		    *arr = json_object_new_array();

	json_object_object_add(root, "benchmark", json_object_new_string("tracking"));
	json_object_object_add(root, "config", json_config(o));
	for (int c = 0; c < o->ncounts; c++)
		for (int wl = 0; wl < NR_W; wl++)
			for (int m = 0; m < NR_TRK; m++)
				json_object_array_add(arr, json_result(
					&res[c][wl][m], &res[c][wl][TRK_NONE]));
	for (int s = 0; s < NR_TRK_SKIP; s++)
		json_object_array_add(arr, json_skipped((enum trk_skipped)s));
	json_object_object_add(root, "results", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static void print_row(const struct result *r, const struct result *none)
{
	double wns = median_of(r->write_ns, r->rounds);

	printf("%7u %-8s %-14s ", r->threads, wl_names[r->wl],
	       trk_name(r->mech));
	if (r->rc && !r->rounds) {
		printf("FAILED: %s\n", r->err);
		return;
	}
	printf("%11.1f %7.2f %10.1f %9.2f %10.2f ", wns,
	       ratio(wns, median_of(none->write_ns, none->rounds)),
	       median_of(r->cpu_ns, r->rounds),
	       median_of(r->write_ms, r->rounds),
	       median_of(r->collect_ns, r->rounds) / 1e6);
	if (r->mech == TRK_NONE)
		printf("%10s ", "-");
	else
		printf("%10.1f ", collect_ns_per_page(r));
	printf("%10.0f %10.0f %8s\n", pages_per_round(r),
	       (double)pages_collected(r) / (r->rounds ? r->rounds : 1),
	       r->verified ? "yes" : "NO");
	if (r->rc)
		printf("        %s\n", r->err);
}

static void print_table(const struct opts *o,
			struct result (*res)[NR_W][NR_TRK])
{
	unsigned most = 0;
	int ncpus = bench_ncpus();

	for (int c = 0; c < o->ncounts; c++)
		most = o->threads[c] > most ? o->threads[c] : most;
	printf("write tracking: plain writer threads stand in for vCPUs (no "
	       "/dev/kvm), pinned t %% %d CPUs%s; %llu MiB per mechanism in "
	       "4 KiB pages (THP off), one slice per writer; %u rounds per "
	       "workload, interleaved; full = every page, sparse = each page "
	       "with probability 1/10 (seeded); medians over rounds\n",
	       ncpus, (int)most > ncpus ? " (more writers than CPUs: "
	       "oversubscribed)" : "", (unsigned long long)(o->mem >> 20),
	       o->rounds);
	printf("%7s %-8s %-14s %11s %7s %10s %9s %10s %10s %10s %10s %8s\n",
	       "threads", "workload", "mechanism", "write ns/pg", "x none",
	       "cpu ns/pg", "write ms", "collect ms", "coll ns/pg",
	       "written", "collected", "verified");
	for (int c = 0; c < o->ncounts; c++)
		for (int wl = 0; wl < NR_W; wl++)
			for (int m = 0; m < NR_TRK; m++)
				print_row(&res[c][wl][m], &res[c][wl][TRK_NONE]);
	for (int s = 0; s < NR_TRK_SKIP; s++) {
		char why[300];

		trk_skipped_reason((enum trk_skipped)s, why, sizeof(why));
		printf("%-31s skipped: %s\n",
		       trk_skipped_name((enum trk_skipped)s), why);
	}
	printf("(written, collected: pages per round; write ns/pg: a writer's "
	       "time over its pages, averaged over writers; write ms: the "
	       "slowest writer's round; collect: gather + re-arm)\n");
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"The cost of tracking the pages a guest writes, per mechanism, the\n"
		"way the kernel's dirty_log_perf_test measures it: each round every\n"
		"writer writes one word per page of its slice (per-write cost), then\n"
		"the written set is collected and tracking re-armed (collection\n"
		"cost); the set and every page's content are checked each round.\n"
		"Mechanisms: none (the limit), uffd-wp-async (+ PAGEMAP_SCAN),\n"
		"uffd-wp-sync (SIGBUS on the writer), mprotect (+ SIGSEGV); the KVM\n"
		"dirty log and dirty ring and soft-dirty rows say why they are not\n"
		"run. Plain writer threads stand in for vCPUs (no /dev/kvm needed).\n\n"
		"  --threads LIST   writer thread counts (default 1,2,4)\n"
		"  --vcpus LIST     the same list (the writers stand in for vCPUs)\n"
		"  --mem SIZE       memory per mechanism, split in one slice per\n"
		"                   writer (default 1G)\n"
		"  --rounds N       rounds per workload (default 5)\n"
		"  --json           one JSON object on stdout\n"
		"  -h, --help       this text\n", prog);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "mem", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
		case 'v':
			o->ncounts = cli_parse_uint_list(optarg, o->threads,
							 MAX_COUNTS,
							 TRK_MAX_THREADS);
			if (o->ncounts <= 0)
				return cli_usage_error("--%s '%s': expected up to %d counts from 1 to %d, like 1,2,4",
						       c == 't' ? "threads" : "vcpus", optarg,
						       MAX_COUNTS, TRK_MAX_THREADS);
			break;
		case 'm':
			if (cli_parse_size(optarg, &o->mem) || !o->mem || o->mem % TRK_PS)
				return cli_usage_error("--mem '%s': expected a size, a multiple of 4K, like 1G", optarg);
			break;
		case 'r':
			if (cli_parse_size(optarg, &n) || !n || n > MAX_ROUNDS)
				return cli_usage_error("--rounds '%s': expected 1..%d", optarg, MAX_ROUNDS);
			o->rounds = (unsigned)n;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			o->help = true;
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind < argc)
		return cli_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
	for (int i = 0; i < o->ncounts; i++)
		if (o->mem / TRK_PS < o->threads[i])
			return cli_usage_error("--mem %llu: fewer 4 KiB pages than the %u writer threads",
					       (unsigned long long)o->mem, o->threads[i]);
	return 0;
}

int cmd_bench_tracking(int argc, char **argv)
{
	struct opts o = { .mem = 1ull << 30, .rounds = 5,
			  .threads = { 1, 2, 4 }, .ncounts = 3 };
	struct result (*res)[NR_W][NR_TRK];
	bool all = true;
	int rc = parse_opts(argc, argv, &o);

	if (rc || o.help)
		return rc;
	res = calloc((size_t)o.ncounts, sizeof(*res));
	if (!res)
		return cli_fail("bench tracking: out of memory");
	for (int c = 0; c < o.ncounts; c++) {
		run_count(&o, o.threads[c], res[c]);
		for (int wl = 0; wl < NR_W; wl++)
			for (int m = 0; m < NR_TRK; m++)
				all = all && res[c][wl][m].verified;
	}
	if (o.json)
		print_json(&o, res);
	else
		print_table(&o, res);
	free(res);
	return all ? 0 : 1;
}
