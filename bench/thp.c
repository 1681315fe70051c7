/*
 * thp.c - "lazymem bench thp": do huge pages pay after a lazy restore?
 *
 * A restore fills a region per 4 KiB page (each fault one page), so the
 * restored memory is mapped by 4 KiB pages for good unless its full
 * 2 MiB ranges are collapsed into transparent huge pages afterwards
 * (lm_region_collapse, src/core/collapse.c). This benchmark saves a
 * patterned image as a snapshot (in --dir), restores it lazily on plain
 * threads through the snapshot's page source (every page checked against
 * its hash; this machine has no /dev/kvm: the threads stand in for vCPUs,
 * each resolving its own faults in its SIGBUS handler) until every page
 * is present, then runs a TLB-heavy workload on it: each thread reads
 * random 8-byte words across the whole region, checking every word it
 * reads against the image.
 *
 * Contenders, side by side in one run:
 *   4k         restored with thp off: 4 KiB pages, as every restore was;
 *   collapse   restored with thp collapse, then lm_region_collapse() on
 *              the caller's thread once complete (timed: collapse s/GiB);
 *   auto       restored with thp auto: the collapser thread collapses as
 *              4 MiB chunks complete (the time from complete to all huge);
 *   limit      memory that was THP from the start (MADV_HUGEPAGE, filled
 *              by memcpy): no userfaultfd, the kernel's best.
 * Every page's content is verified after the collapse (and after the
 * workload), and the huge-page share is read from /proc/self/smaps.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/lazymem.h>

#include "bench.h"
#include "cli/cli.h"
#include "util/fs.h"

#define PS 4096ull
#define WORDS (PS / 8)
#define M2 (2ull << 20)
#define MAX_THREADS 16

enum contender { C_4K, C_COLLAPSE, C_AUTO, C_LIMIT, NR_C };
static const char *const names[NR_C] = { "4k", "collapse", "auto", "limit" };

struct cfg {
	uint64_t mem, reads;		/* bytes; random reads per thread */
	unsigned threads, repeat;
	double touch;			/* share of pages the threads fault */
	const char *dir;		/* where the snapshot is saved */
};

struct result {
	double restore_s;		/* start to every page present */
	double collapse_s;		/* collapse pass, or complete to all huge */
	uint64_t huge_kb, ranges, collapsed, failed;
	double ns_per_read;		/* median over the rounds */
	double ns_per_dep_read;		/* the same, dependent reads */
	uint64_t bad_reads, bad_pages;
	bool verified;
	char err[160];
	/* kept for the interleaved rounds */
	struct lm_region *r;		/* restored contenders */
	uint8_t *map;			/* limit: its mapping (+2 MiB) */
	const uint64_t *w;		/* the memory the workload reads */
	double ns[17], ns_dep[17];	/* per round */
};

struct reader {
	const uint64_t *w;
	uint64_t nwords, reads, bad, seed;
	bool dependent;			/* each address needs the last read */
	double ns;
	int cpu;
	pthread_barrier_t *go;
	/* restore phase: pages to touch */
	uint64_t first, n, stride;
	volatile uint8_t *base;
};

/* kB of `key` in the smaps entry of the mapping holding addr. */
static uint64_t smaps_kb(const void *addr, const char *key)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char c;

		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && !strncmp(line, key, strlen(key)))
			sscanf(line + strlen(key), " %llu", &kb);
	}
	fclose(f);
	return kb;
}

/* Pages whose words differ from the image's pattern. */
static uint64_t verify_all(const uint64_t *w, uint64_t size)
{
	uint64_t bad = 0;

	for (uint64_t p = 0; p < size / PS; p++) {
		bool ok = true;

		for (uint64_t k = 0; ok && k < WORDS; k++)
			ok = w[p * WORDS + k] == bench_pattern(p, k);
		bad += !ok;
	}
	return bad;
}

/*
 * The workload: random 8-byte reads, each checked against the image.
 * Independent reads overlap (the CPU keeps several TLB walks and cache
 * misses in flight: a throughput); dependent ones cannot, since the next
 * address folds in the last word read (its difference from the expected
 * value, zero unless the data is wrong): each read's whole latency,
 * TLB walk included, is exposed, as in a guest chasing pointers. Timed
 * in this thread's CPU time: the machine is shared (other builds run on
 * its two CPUs), and wall time would count the time the reader waited
 * for a CPU as read time.
 */
static void *read_main(void *arg)
{
	struct reader *rd = arg;
	uint64_t s = rd->seed, bad = 0, t0;

	bench_pin_self(rd->cpu);
	pthread_barrier_wait(rd->go);
	t0 = lm_thread_cpu_ns();
	/* Two loops, not one with a branch: gcc made `if (dependent) s ^=
	 * diff` a conditional move, which chained the "independent" reads
	 * through the load too (perf: all the time on the load). */
	if (rd->dependent) {
		for (uint64_t i = 0; i < rd->reads; i++) {
			uint64_t at = bench_xorshift64(&s) % rd->nwords;
			uint64_t diff = rd->w[at] ^
					bench_pattern(at / WORDS, at % WORDS);

			bad += diff != 0;
			s ^= diff;
		}
	} else {
		for (uint64_t i = 0; i < rd->reads; i++) {
			uint64_t at = bench_xorshift64(&s) % rd->nwords;

			bad += rd->w[at] != bench_pattern(at / WORDS,
							  at % WORDS);
		}
	}
	rd->ns = (double)(lm_thread_cpu_ns() - t0) / (double)rd->reads;
	rd->bad = bad;
	return NULL;
}

/* The restore's demand: each thread faults its share of the pages in a
 * scattered order (stride coprime with the count), the guest's working
 * set, while the background fill streams the rest. */
static void *touch_main(void *arg)
{
	struct reader *rd = arg;
	volatile uint64_t sum = 0;

	bench_pin_self(rd->cpu);
	pthread_barrier_wait(rd->go);
	for (uint64_t i = 0; i < rd->n; i++)
		sum += rd->base[(rd->first + (i * rd->stride) % rd->n) * PS];
	(void)sum;
	return NULL;
}

static int run_threads(const struct cfg *c, void *(*fn)(void *),
		       struct reader *rd)
{
	pthread_t tid[MAX_THREADS];
	pthread_barrier_t go;
	int ncpu = bench_ncpus();
	unsigned i;

	pthread_barrier_init(&go, NULL, c->threads);
	for (i = 0; i < c->threads; i++) {
		rd[i].go = &go;
		rd[i].cpu = (int)(i % (unsigned)ncpu);
		if (pthread_create(&tid[i], NULL, fn, &rd[i]))
			break;
	}
	if (i < c->threads) {
		/* Cannot happen short of resources; the barrier would hang. */
		fprintf(stderr, "lazymem: bench thp: cannot start threads\n");
		exit(1);
	}
	for (i = 0; i < c->threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&go);
	return 0;
}

/* One round of the workload on res->w: ns per read, averaged over the
 * threads. */
static double workload_round(const struct cfg *c, unsigned round,
			     bool dependent, struct result *res)
{
	struct reader rd[MAX_THREADS];
	double sum = 0;

	memset(rd, 0, sizeof(rd));
	for (unsigned i = 0; i < c->threads; i++) {
		rd[i].w = res->w;
		rd[i].nwords = c->mem / 8;
		rd[i].reads = c->reads;
		rd[i].seed = 0x9e3779b97f4a7c15ull * (round * 64 + i + 1);
		rd[i].dependent = dependent;
	}
	run_threads(c, read_main, rd);
	for (unsigned i = 0; i < c->threads; i++) {
		sum += rd[i].ns;
		res->bad_reads += rd[i].bad;
	}
	return sum / c->threads;
}

/*
 * The rounds, interleaved: round k runs every contender once before
 * round k+1 starts, so a change in the machine's load (it is shared)
 * falls on all of them alike. Round 0 is a warm-up, not counted: the
 * first pass over memory pays the host's first touches of it.
 */
static void workload_rounds(const struct cfg *c, struct result *res)
{
	for (unsigned k = 0; k <= c->repeat; k++) {
		for (int j = 0; j < NR_C; j++) {
			if (!res[j].w)
				continue;
			res[j].ns[k] = workload_round(c, k, false, &res[j]);
			res[j].ns_dep[k] = workload_round(c, k, true, &res[j]);
		}
	}
	for (int j = 0; j < NR_C; j++) {
		if (!res[j].w)
			continue;
		res[j].ns_per_read = bench_median(res[j].ns + 1,
						  (int)c->repeat);
		res[j].ns_per_dep_read = bench_median(res[j].ns_dep + 1,
						      (int)c->repeat);
	}
}

/* Lazy restore on plain threads until every page is present. */
static int restore(const struct cfg *c, struct lm_region *r,
		   struct result *res)
{
	struct reader rd[MAX_THREADS];
	uint64_t pages = c->mem / PS;
	uint64_t want = (uint64_t)((double)pages * c->touch);
	uint64_t t0 = lm_now_ns();
	int err;

	memset(rd, 0, sizeof(rd));
	for (unsigned i = 0; i < c->threads; i++) {
		uint64_t first = pages * i / c->threads;
		uint64_t n = pages * (i + 1) / c->threads - first;

		rd[i].base = lm_region_addr(r);
		rd[i].first = first;
		rd[i].n = n < want / c->threads + 1 ? n : want / c->threads + 1;
		rd[i].stride = 7919;	/* prime: visits every page once */
		if (rd[i].n % 7919 == 0)
			rd[i].stride = 7907;
	}
	run_threads(c, touch_main, rd);
	err = lm_region_wait_complete(r, 600000);
	res->restore_s = (double)(lm_now_ns() - t0) / 1e9;
	if (err)
		snprintf(res->err, sizeof(res->err), "restore: %s",
			 strerror(-err));
	return err;
}

/* AUTO: from complete until every range is huge (or 120 s). */
static double wait_all_huge(struct lm_region *r, uint64_t ranges)
{
	uint64_t t0 = lm_now_ns(), deadline = t0 + 120000000000ull;
	struct lm_stats s;

	do {
		lm_region_stats(r, &s);
		if (s.thp_collapsed >= ranges)
			break;
		usleep(1000);
	} while (lm_now_ns() < deadline);
	return (double)(lm_now_ns() - t0) / 1e9;
}

static void run_restored(const struct cfg *c, struct lm_source *src,
			 enum contender k, struct result *res)
{
	struct lm_region_config rc = {
		.name = "bench-thp", .size = c->mem,
		.backing = LM_BACKING_ANON, .install = LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF, .background = true,
		.source = src,
		.thp = k == C_4K ? LM_THP_OFF
		       : k == C_AUTO ? LM_THP_AUTO : LM_THP_COLLAPSE,
	};
	struct lm_region *r;
	struct lm_stats s;
	int err = lm_region_create(&rc, &r);

	if (err) {
		snprintf(res->err, sizeof(res->err), "%s", lm_last_error());
		return;
	}
	res->ranges = c->mem / M2;
	if (restore(c, r, res))
		goto out;
	if (k == C_COLLAPSE) {
		uint64_t t0 = lm_now_ns();

		lm_region_collapse(r, &res->collapsed);
		res->collapse_s = (double)(lm_now_ns() - t0) / 1e9;
	} else if (k == C_AUTO) {
		res->collapse_s = wait_all_huge(r, res->ranges);
	}
	lm_region_stats(r, &s);
	res->collapsed = s.thp_collapsed;
	res->failed = s.thp_failed_busy + s.thp_failed_again +
		      s.thp_failed_nomem + s.thp_failed_other;
	res->huge_kb = smaps_kb(lm_region_addr(r), "AnonHugePages:");
	res->bad_pages = verify_all(lm_region_addr(r), c->mem);
	res->r = r;
	res->w = lm_region_addr(r);
	return;
out:
	lm_region_destroy(r);
}

/* The limit: THP from the start, filled by memcpy, no userfaultfd. */
static void run_limit(const struct cfg *c, const void *image,
		      struct result *res)
{
	uint8_t *p = mmap(NULL, c->mem + M2, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *a;
	uint64_t t0 = lm_now_ns();

	if (p == MAP_FAILED) {
		snprintf(res->err, sizeof(res->err), "mmap: %s",
			 strerror(errno));
		return;
	}
	a = (uint8_t *)(((uintptr_t)p + M2 - 1) & ~(uintptr_t)(M2 - 1));
	madvise(a, c->mem, MADV_HUGEPAGE);
	memcpy(a, image, c->mem);
	res->restore_s = (double)(lm_now_ns() - t0) / 1e9;
	res->ranges = c->mem / M2;
	res->huge_kb = smaps_kb(a, "AnonHugePages:");
	res->bad_pages = verify_all((const uint64_t *)(void *)a, c->mem);
	res->map = p;
	res->w = (const uint64_t *)(void *)a;
}

/* After the rounds: every page checked again, the memory given back. */
static void finish(const struct cfg *c, struct result *res)
{
	if (!res->w)
		return;
	res->bad_pages += verify_all(res->w, c->mem);
	res->verified = !res->bad_pages && !res->bad_reads;
	if (res->r)
		lm_region_destroy(res->r);
	if (res->map)
		munmap(res->map, c->mem + M2);
}

static void print_table(const struct result *res, const struct cfg *c)
{
	double base = res[C_4K].ns_per_read;
	double base_dep = res[C_4K].ns_per_dep_read;

	printf("thp after a lazy snapshot restore: %llu MiB anon region, 4 KiB "
	       "pages faulted (self delivery, copy install, background fill, %.0f%% "
	       "of pages touched by %u threads), then %u threads x %llu "
	       "random 8-byte reads over the whole region, median of %u "
	       "rounds interleaved across the contenders after a warm-up; "
	       "%d CPUs; plain threads (no /dev/kvm: the guest figure is "
	       "not measured)\n\n",
	       (unsigned long long)(c->mem >> 20), c->touch * 100, c->threads,
	       c->threads, (unsigned long long)c->reads, c->repeat,
	       bench_ncpus());
	printf("%-9s %9s %10s %9s %8s %9s %8s %6s %8s %6s %8s\n",
	       "contender", "restore s", "collapse s", "s per GiB", "huge MiB",
	       "ranges", "ns/read", "x 4k", "ns/dep", "x 4k", "verified");
	for (int k = 0; k < NR_C; k++) {
		const struct result *r = &res[k];
		double gib = (double)c->mem / (double)(1ull << 30);

		if (r->err[0]) {
			printf("%-9s FAILED: %s\n", names[k], r->err);
			continue;
		}
		printf("%-9s %9.2f %10.3f %9.3f %8llu %4llu/%-4llu %8.1f %6.2f "
		       "%8.1f %6.2f %8s\n", names[k], r->restore_s,
		       r->collapse_s, r->collapse_s / gib,
		       (unsigned long long)(r->huge_kb >> 10),
		       (unsigned long long)(k == C_LIMIT ? r->huge_kb >> 11
							 : r->collapsed),
		       (unsigned long long)r->ranges, r->ns_per_read,
		       base / r->ns_per_read, r->ns_per_dep_read,
		       base_dep / r->ns_per_dep_read,
		       r->verified ? "yes" : "NO");
	}
	printf("\n(ns/read: the reader threads' CPU time per read, independent "
	       "reads, overlapping; ns/dep: each "
	       "address depends on the last read, its whole latency exposed; "
	       "x 4k = 4k's ns over this row's: above 1 is faster; "
	       "collapse s for auto is from complete to every range huge; "
	       "ranges = 2 MiB ranges collapsed, for limit huge at the end)\n");
}

static void print_json(const struct result *res, const struct cfg *c)
{
	json_object *root = json_object_new_object(),
		    *cfg = json_object_new_object(),
		    *arr = json_object_new_array();

	json_object_object_add(root, "benchmark", json_object_new_string("thp"));
	json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)c->mem));
	json_object_object_add(cfg, "threads", json_object_new_int64(c->threads));
	json_object_object_add(cfg, "reads_per_thread", json_object_new_int64((int64_t)c->reads));
	json_object_object_add(cfg, "repeat", json_object_new_int64(c->repeat));
	json_object_object_add(cfg, "touch", json_object_new_double(c->touch));
	json_object_object_add(cfg, "page_size", json_object_new_int64((int64_t)PS));
	json_object_object_add(cfg, "mode", json_object_new_string(
		"snapshot restore: anon, self delivery, copy install, background fill"));
	json_object_object_add(cfg, "cpus", json_object_new_int64(bench_ncpus()));
	json_object_object_add(cfg, "vcpus", json_object_new_string(
		"none: plain threads (no /dev/kvm here)"));
	json_object_object_add(root, "config", cfg);
	for (int k = 0; k < NR_C; k++) {
		const struct result *r = &res[k];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "contender", json_object_new_string(names[k]));
		if (r->err[0]) {
			json_object_object_add(o, "error", json_object_new_string(r->err));
			json_object_array_add(arr, o);
			continue;
		}
		json_object_object_add(o, "restore_s", json_object_new_double(r->restore_s));
		json_object_object_add(o, "collapse_s", json_object_new_double(r->collapse_s));
		json_object_object_add(o, "collapse_s_per_gib", json_object_new_double(
			r->collapse_s * (double)(1ull << 30) / (double)c->mem));
		json_object_object_add(o, "huge_bytes", json_object_new_int64((int64_t)r->huge_kb << 10));
		json_object_object_add(o, "ranges", json_object_new_int64((int64_t)r->ranges));
		json_object_object_add(o, "collapsed", json_object_new_int64((int64_t)r->collapsed));
		json_object_object_add(o, "collapse_failed", json_object_new_int64((int64_t)r->failed));
		json_object_object_add(o, "ns_per_read", json_object_new_double(r->ns_per_read));
		json_object *rounds = json_object_new_array();
		for (unsigned i = 0; i <= c->repeat; i++)
			json_object_array_add(rounds, json_object_new_double(r->ns[i]));
		json_object_object_add(o, "ns_per_read_rounds_warmup_first", rounds);
		json_object_object_add(o, "ns_per_dependent_read", json_object_new_double(r->ns_per_dep_read));
		rounds = json_object_new_array();
		for (unsigned i = 0; i <= c->repeat; i++)
			json_object_array_add(rounds, json_object_new_double(r->ns_dep[i]));
		json_object_object_add(o, "ns_per_dependent_read_rounds_warmup_first", rounds);
		json_object_object_add(o, "dependent_speedup_vs_4k", json_object_new_double(
			res[C_4K].ns_per_dep_read / r->ns_per_dep_read));
		json_object_object_add(o, "speedup_vs_4k", json_object_new_double(
			res[C_4K].ns_per_read / r->ns_per_read));
		json_object_object_add(o, "verified", json_object_new_boolean(r->verified));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "results", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--mem SIZE] [--threads N] [--reads N] [--repeat N]\n"
		"          [--touch PCT] [--dir DIR] [--json]\n\n"
		"Save a patterned image as a snapshot, restore it lazily on plain\n"
		"threads, then time random 8-byte\n"
		"reads over it: 4 KiB pages as restored, collapsed into huge pages\n"
		"(explicit pass and collapser thread), and THP from the start.\n\n"
		"  --mem SIZE      region size, a multiple of 2M (default 1G)\n"
		"  --threads N     faulting and reading threads, 1..%d (default 2)\n"
		"  --reads N       random reads per thread per round, independent and\n"
		"                  dependent each (default 4M)\n"
		"  --repeat N      rounds of the workload, interleaved across the\n"
		"                  contenders after a warm-up, median taken, 1..16\n"
		"                  (default 3)\n"
		"  --touch PCT     pages the threads fault during the restore, the\n"
		"                  rest is background fill (default 10)\n"
		"  --dir DIR       where the snapshot is saved, then removed\n"
		"                  (default /var/tmp)\n"
		"  --json          JSON instead of a table\n", prog, MAX_THREADS);
}

static int parse_args(int argc, char **argv, struct cfg *c, bool *json)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "reads", required_argument, NULL, 'r' },
		{ "repeat", required_argument, NULL, 'R' },
		{ "touch", required_argument, NULL, 'T' },
		{ "dir", required_argument, NULL, 'd' },
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
			if (cli_parse_size(optarg, &c->mem) || !c->mem || c->mem % M2)
				return cli_usage_error("--mem '%s': expected a size, a multiple of 2M, like 1G", optarg);
			break;
		case 't':
			if (cli_parse_size(optarg, &n) || !n || n > MAX_THREADS)
				return cli_usage_error("--threads '%s': expected 1..%d", optarg, MAX_THREADS);
			c->threads = (unsigned)n;
			break;
		case 'r':
			if (cli_parse_size(optarg, &c->reads) || !c->reads)
				return cli_usage_error("--reads '%s': expected a positive count, like 20M", optarg);
			break;
		case 'R':
			if (cli_parse_size(optarg, &n) || !n || n > 16)
				return cli_usage_error("--repeat '%s': expected 1..16", optarg);
			c->repeat = (unsigned)n;
			break;
		case 'T':
			c->touch = strtod(optarg, &end) / 100;
			if (*end || c->touch < 0 || c->touch > 1)
				return cli_usage_error("--touch '%s': expected a percentage 0..100", optarg);
			break;
		case 'd':
			c->dir = optarg;
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
	return 0;
}

/* Save the image as a snapshot in a new directory under c->dir and open
 * its page source (each page checked against its hash as it is read). */
static int save_snapshot(const struct cfg *c, const void *image, char *path,
			 size_t len, struct lm_source **src)
{
	struct lm_snap_meta m = { .page_size = PS, .mem_size = c->mem,
				  .nr_regions = 1 };
	int err;

	snprintf(path, len, "%s/lazymem-thp-XXXXXX", c->dir);
	if (!mkdtemp(path))
		return cli_fail("bench thp: cannot make a directory in %s: %s",
				c->dir, strerror(errno));
	m.regions[0] = (struct lm_snap_region){ .size = c->mem };
	m.workload = strdup("{\"kind\":\"bench-thp\"}");
	/* The format wants a vCPU; these threads have no state to keep. */
	m.nr_vcpus = 1;
	m.vcpus = calloc(1, sizeof(*m.vcpus));
	if (!m.workload || !m.vcpus)
		return cli_fail("bench thp: out of memory");
	err = lm_snap_save(path, &m, image, NULL, NULL);
	lm_snap_meta_free(&m);
	if (!err)
		err = lm_snap_open(path, &m);
	if (!err) {
		err = lm_snap_source_open(path, &m, src);
		lm_snap_meta_free(&m);
	}
	if (err)
		return cli_fail("bench thp: snapshot in %s: %s", path,
				lm_last_error());
	return 0;
}

int cmd_bench_thp(int argc, char **argv)
{
	struct cfg c = { .mem = 1ull << 30, .reads = 4000000, .threads = 2,
			 .repeat = 3, .touch = 0.10, .dir = "/var/tmp" };
	struct result res[NR_C];
	struct lm_source *src = NULL;
	char path[512] = "";
	void *image;
	bool json = false, all = true;
	int rc = parse_args(argc, argv, &c, &json);

	if (rc)
		return rc < 0 ? 0 : rc;
	image = malloc(c.mem);
	if (!image)
		return cli_fail("bench thp: no memory for a %llu MiB image",
				(unsigned long long)(c.mem >> 20));
	bench_fill_pattern(image, c.mem, PS);
	rc = save_snapshot(&c, image, path, sizeof(path), &src);
	if (rc) {
		if (path[0])
			util_remove_tree(path);
		free(image);
		return rc;
	}
	memset(res, 0, sizeof(res));
	for (int k = 0; k < NR_C; k++) {
		if (!json)
			fprintf(stderr, "  %s ...\n", names[k]);
		if (k == C_LIMIT)
			run_limit(&c, image, &res[k]);
		else
			run_restored(&c, src, (enum contender)k, &res[k]);
	}
	if (!json)
		fprintf(stderr, "  %u rounds of random reads (and a warm-up) ...\n",
			c.repeat);
	workload_rounds(&c, res);
	for (int k = 0; k < NR_C; k++) {
		finish(&c, &res[k]);
		all = all && !res[k].err[0] && res[k].verified;
	}
	if (json)
		print_json(res, &c);
	else
		print_table(res, &c);
	lm_source_destroy(src);
	util_remove_tree(path);
	free(image);
	return all ? 0 : 1;
}
