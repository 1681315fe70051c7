/*
 * fault.c - `lazymem bench fault`: how fast can a region fill on first touch?
 *
 * Threads write one word to each page of their own slice of a region served
 * from memory (the fastest source, so only the fault path is measured).
 * Contenders, side by side in one run and interleaved round by round so
 * that drift on a shared machine hits them all alike:
 *
 *   limit    the same writes to plain memory with no userfaultfd: the
 *            kernel's own allocate-and-zero fault, which we cannot beat;
 *   handler  classic userfaultfd: the toucher sleeps, 1 or 2 handler
 *            threads resolve, pinned on the touchers' CPUs ("same-cpu") or
 *            on other CPUs ("other-cpu");
 *   self     SIGBUS mode: each toucher resolves its own faults.
 *
 * Workloads: sequential (each toucher walks its slice in order, where
 * fault-around pays off) and random (each toucher visits its slice's pages
 * in a seeded random permutation, so fault-around cannot hide the cost of
 * one fault: every fault is a signal, a claim and an ioctl of its own).
 *
 * Every run is verified: each page must hold its pattern plus the word the
 * toucher wrote, or the run counts as failed.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lazymem/lazymem.h>
#include "util/clock.h"
#include "bench.h"
#include "cli/cli.h"

#define MAX_THREAD_COUNTS 16
#define MAX_THREADS 64

enum workload { WL_SEQUENTIAL, WL_RANDOM, WL_COUNT };
static const char *const workload_name[WL_COUNT] = { "sequential",
						     "random" };

struct contender {
	const char *delivery;		/* limit / handler / self */
	unsigned handlers;
	const char *placement;		/* handler only */
	bool around;			/* with --around fault-around */
};

static const struct contender contenders[] = {
	{ "limit", 0, NULL, false },
	{ "handler", 1, "same-cpu", false },
	{ "handler", 1, "other-cpu", false },
	{ "handler", 2, "same-cpu", false },
	{ "handler", 2, "other-cpu", false },
	{ "self", 0, NULL, false },
	{ "self", 0, NULL, true },
};
#define NCONT (sizeof(contenders) / sizeof(contenders[0]))

struct fault_config {
	uint64_t size;
	unsigned threads[MAX_THREAD_COUNTS];
	int nthreads;
	int repeat;
	enum lm_backing backing;
	enum lm_install install;
	bool json;
	unsigned workloads;		/* bit w: run workload w */
	uint64_t seed;			/* of the random permutations */
	unsigned only;			/* bit k: run contender k (0: all) */
	unsigned around;		/* fault-around of the around contender */
	uint64_t page_size;
	const void *image;		/* the source's content */
};

struct run_result {
	double seconds[16];		/* one per repeat */
	double median;
	uint64_t bad_pages;		/* summed over repeats */
	uint64_t p50_ns, p99_ns, max_ns;
};

struct toucher {
	uint8_t *base;
	uint64_t first, n, page_size;
	uint32_t *order;		/* random: slice-relative page order */
	int cpu;
	pthread_barrier_t *start;
	uint64_t t_end;
};

/* A seeded permutation of [0, n) (Fisher-Yates), so a random run is the
 * same run every time and for every contender. */
static void permute(uint32_t *v, uint64_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull | 1;

	for (uint64_t i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = bench_xorshift64(&s) % i;
		uint32_t tmp = v[i - 1];

		v[i - 1] = v[j];
		v[j] = tmp;
	}
}

static void touch(const struct toucher *t, uint64_t p)
{
	*(volatile uint64_t *)(void *)(t->base + p * t->page_size) = p + 1;
}

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	bench_pin_self(t->cpu);
	pthread_barrier_wait(t->start);
	if (t->order)
		for (uint64_t i = 0; i < t->n; i++)
			touch(t, t->first + t->order[i]);
	else
		for (uint64_t p = t->first; p < t->first + t->n; p++)
			touch(t, p);
	t->t_end = lm_now_ns();
	return NULL;
}

/* Run the touchers over base and return the elapsed seconds. The random
 * orders are made before the start barrier: not measured. */
static double touch_all(uint8_t *base, const struct fault_config *c,
			unsigned nthreads, enum workload wl)
{
	pthread_t tid[MAX_THREADS];
	struct toucher t[MAX_THREADS];
	pthread_barrier_t start;
	uint64_t pages = c->size / c->page_size, t0, t1 = 0;
	int ncpu = bench_ncpus();
	uint32_t *order = NULL;

	if (wl == WL_RANDOM) {
		order = malloc(pages * sizeof(*order));
		if (!order)
			return -1;
	}
	pthread_barrier_init(&start, NULL, nthreads + 1);
	for (unsigned i = 0; i < nthreads; i++) {
		t[i] = (struct toucher){
			.base = base, .page_size = c->page_size,
			.first = pages * i / nthreads,
			.n = pages * (i + 1) / nthreads - pages * i / nthreads,
			.cpu = (int)(i % (unsigned)ncpu), .start = &start,
		};
		if (order) {
			t[i].order = order + t[i].first;
			permute(t[i].order, t[i].n, c->seed + i);
		}
		pthread_create(&tid[i], NULL, toucher_main, &t[i]);
	}
	pthread_barrier_wait(&start);
	t0 = lm_now_ns();
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(tid[i], NULL);
		t1 = BENCH_MAX(t1, t[i].t_end);
	}
	pthread_barrier_destroy(&start);
	free(order);
	return (double)(t1 - t0) / 1e9;
}

static int map_plain(const struct fault_config *c, uint8_t **out, int *fd)
{
	void *p;

	*fd = -1;
	if (c->backing == LM_BACKING_ANON) {
		p = mmap(NULL, c->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED)
			madvise(p, c->size, MADV_NOHUGEPAGE);
	} else {
		*fd = memfd_create("limit", MFD_CLOEXEC |
			(c->backing == LM_BACKING_HUGETLB ? MFD_HUGETLB : 0));
		if (*fd < 0 || ftruncate(*fd, (off_t)c->size) < 0)
			return -errno;
		p = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 *fd, 0);
	}
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

static int run_limit(const struct fault_config *c, unsigned nthreads,
		     enum workload wl, double *secs, uint64_t *bad)
{
	uint8_t *mem = NULL;
	int fd, err = map_plain(c, &mem, &fd);

	if (err)
		return cli_fail("bench fault: cannot map %llu bytes of %s "
				"memory: %s", (unsigned long long)c->size,
				lm_backing_name(c->backing), strerror(-err));
	*secs = touch_all(mem, c, nthreads, wl);
	if (*secs < 0)
		return cli_fail("bench fault: out of memory");
	*bad += bench_verify_touched(mem, c->size, c->page_size, true);
	munmap(mem, c->size);
	if (fd >= 0)
		close(fd);
	return 0;
}

static int run_region(const struct fault_config *c, const struct contender *k,
		      unsigned nthreads, enum workload wl, double *secs,
		      struct run_result *res)
{
	struct lm_source *src;
	struct lm_region *r;
	struct lm_stats st;
	int cpus[2], ncpu = bench_ncpus();
	bool other = k->placement && !strcmp(k->placement, "other-cpu");
	int err;

	for (unsigned j = 0; j < 2; j++)
		cpus[j] = (int)((j + (other ? 1 : 0)) % (unsigned)ncpu);
	err = lm_source_memory_create(c->image, c->size, &src);
	if (err)
		return cli_fail("bench fault: %s", lm_last_error());
	struct lm_region_config rc = {
		.name = "bench",
		.size = c->size,
		.backing = c->backing,
		.install = c->install,
		.delivery = k->handlers ? LM_DELIVERY_HANDLER
					: LM_DELIVERY_SELF,
		.handler_threads = k->handlers,
		.handler_cpus = cpus,
		.source = src,
		.fault_around = k->around ? c->around : 0,
	};
	err = lm_region_create(&rc, &r);
	if (err) {
		lm_source_destroy(src);
		return cli_fail("bench fault: %s", lm_last_error());
	}
	*secs = touch_all(lm_region_addr(r), c, nthreads, wl);
	if (*secs < 0) {
		lm_region_destroy(r);
		lm_source_destroy(src);
		return cli_fail("bench fault: out of memory");
	}
	/* A handler wakes the toucher before it counts the page; every page
	 * was touched, so completion is when the counters are final. */
	if (lm_region_wait_complete(r, 30000))
		res->bad_pages++;
	res->bad_pages += bench_verify_touched(lm_region_addr(r), c->size,
					       c->page_size, false);
	lm_region_stats(r, &st);
	res->p50_ns = st.lat_p50_ns;
	res->p99_ns = st.lat_p99_ns;
	res->max_ns = BENCH_MAX(res->max_ns, st.lat_max_ns);
	if (st.pages_demand + st.pages_around != c->size / c->page_size)
		res->bad_pages++;	/* some page was not installed by us */
	lm_region_destroy(r);
	lm_source_destroy(src);
	return 0;
}

/* "self,limit" -> bitmask over contenders[] by delivery name. */
static int parse_only(const char *arg, unsigned *mask)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", arg);
	*mask = 0;
	for (char *w = strtok_r(buf, ",", &save); w;
	     w = strtok_r(NULL, ",", &save)) {
		unsigned before = *mask;

		for (unsigned k = 0; k < NCONT; k++)
			if (!strcmp(w, contenders[k].delivery))
				*mask |= 1u << k;
		if (*mask == before)
			return -EINVAL;
	}
	/* The limit is what every ratio is taken against: always run it. */
	*mask |= 1u;
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: lazymem bench fault [options]\n\n"
	      "Pages/s of first-touch faults on a region served from memory:\n"
	      "handler threads (classic userfaultfd) vs self-resolve (SIGBUS)\n"
	      "vs the kernel's own fault with no userfaultfd (the limit).\n\n"
	      "  -t, --threads LIST   faulting thread counts (default 1,2; more\n"
	      "                       than the CPUs is fine: oversubscribed)\n"
	      "  -w, --workload KIND  sequential | random | both (default both):\n"
	      "                       random touches each thread's pages in a\n"
	      "                       seeded random order, defeating fault-around\n"
	      "      --seed N         seed of the random orders (default 1)\n"
	      "  -s, --size SIZE      region size (default 512M)\n"
	      "  -r, --repeat N       runs per contender, median kept "
	      "(default 3)\n"
	      "  -b, --backing KIND   anon | memfd | hugetlb (default anon)\n"
	      "  -i, --install MODE   copy | continue (default copy)\n"
	      "  -a, --around N       fault-around of the self+around "
	      "contender: its adaptive\n"
	      "                       window's largest size in pages "
	      "(default 16)\n"
	      "  -o, --only LIST      run only these of limit,handler,self "
	      "(the limit always runs)\n"
	      "  -j, --json           JSON on stdout instead of the table\n"
	      "  -h, --help\n", f);
}

static int parse_args(int argc, char **argv, struct fault_config *c)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "backing", required_argument, NULL, 'b' },
		{ "install", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "around", required_argument, NULL, 'a' },
		{ "workload", required_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "t:s:r:b:i:jo:a:w:h", opts, NULL)) != -1) {
		switch (o) {
		case 't':
			c->nthreads = cli_parse_uint_list(optarg, c->threads,
							  MAX_THREAD_COUNTS, 64);
			if (c->nthreads < 0)
				return cli_usage_error("--threads '%s': expected "
					"a comma-separated list of counts 1..64",
					optarg);
			break;
		case 's':
			if (cli_parse_size(optarg, &c->size) || !c->size)
				return cli_usage_error("--size '%s': expected a "
					"size such as 512M or 1G", optarg);
			break;
		case 'r':
			c->repeat = atoi(optarg);
			if (c->repeat < 1 || c->repeat > 16)
				return cli_usage_error("--repeat '%s': expected "
					"1..16", optarg);
			break;
		case 'b':
			if (!strcmp(optarg, "anon"))
				c->backing = LM_BACKING_ANON;
			else if (!strcmp(optarg, "memfd"))
				c->backing = LM_BACKING_MEMFD;
			else if (!strcmp(optarg, "hugetlb"))
				c->backing = LM_BACKING_HUGETLB;
			else
				return cli_usage_error("--backing '%s': expected "
					"anon, memfd or hugetlb", optarg);
			break;
		case 'i':
			if (!strcmp(optarg, "copy"))
				c->install = LM_INSTALL_COPY;
			else if (!strcmp(optarg, "continue"))
				c->install = LM_INSTALL_CONTINUE;
			else
				return cli_usage_error("--install '%s': expected "
					"copy or continue", optarg);
			break;
		case 'j':
			c->json = true;
			break;
		case 'w':
			if (!strcmp(optarg, "sequential"))
				c->workloads = 1u << WL_SEQUENTIAL;
			else if (!strcmp(optarg, "random"))
				c->workloads = 1u << WL_RANDOM;
			else if (!strcmp(optarg, "both"))
				c->workloads = (1u << WL_COUNT) - 1;
			else
				return cli_usage_error("--workload '%s': "
					"expected sequential, random or both",
					optarg);
			break;
		case 'S':
			c->seed = strtoull(optarg, NULL, 0);
			break;
		case 'a':
			c->around = (unsigned)atoi(optarg);
			if (c->around < 2 || c->around > 64)
				return cli_usage_error("--around '%s': expected "
					"2..64 pages", optarg);
			break;
		case 'o':
			if (parse_only(optarg, &c->only))
				return cli_usage_error("--only '%s': expected a "
					"comma-separated list of limit, handler, "
					"self", optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return 2;
		}
	}
	if (optind < argc)
		return cli_usage_error("bench fault: unexpected argument '%s'",
				       argv[optind]);
	c->page_size = lm_backing_page_size(c->backing);
	if (c->size % c->page_size)
		return cli_usage_error("--size: %llu is not a multiple of the "
			"%s page size %llu", (unsigned long long)c->size,
			lm_backing_name(c->backing),
			(unsigned long long)c->page_size);
	if (c->install == LM_INSTALL_CONTINUE && c->backing == LM_BACKING_ANON)
		return cli_usage_error("--install continue needs --backing "
				       "memfd or hugetlb");
	return 0;
}

/* Ratio of a to b as "1.23x", or "-" when there is no b. */
static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static bool selected(const struct fault_config *c, unsigned k)
{
	return !c->only || (c->only & (1u << k));
}

/* Pages per second of a contender, 0 if it did not run. */
static double rate_of(const struct fault_config *c, const struct run_result *r)
{
	return r->median > 0 ? (double)(c->size / c->page_size) / r->median : 0;
}

static bool wl_selected(const struct fault_config *c, unsigned w)
{
	return c->workloads & (1u << w);
}

/* The fault-around of contender k: pages per fault, 0 when off. */
static unsigned around_of(const struct fault_config *c, unsigned k)
{
	return contenders[k].around ? c->around : 0;
}

static void print_table(const struct fault_config *c,
			struct run_result res[][MAX_THREAD_COUNTS][NCONT])
{
	uint64_t pages = c->size / c->page_size;

	printf("lazymem bench fault: %llu MiB region, %llu pages of %llu "
	       "KiB, %s backing, %s install, memory source, %d CPUs, "
	       "median of %d runs\n\n",
	       (unsigned long long)(c->size >> 20), (unsigned long long)pages,
	       (unsigned long long)(c->page_size >> 10),
	       lm_backing_name(c->backing), lm_install_name(c->install),
	       bench_ncpus(), c->repeat);
	printf("%-10s %-7s %-8s %-8s %-9s %-6s %11s %8s %8s %8s %8s %8s "
	       "%8s\n", "workload", "threads", "delivery", "handlers", "placement", "around",
	       "pages/s",
	       "us/page", "p50 us", "p99 us", "xlimit", "xh-same", "xh-other");
	for (unsigned w = 0; w < WL_COUNT; w++)
	for (int t = 0; t < c->nthreads; t++) {
		double lim = rate_of(c, &res[w][t][0]);
		double hs = rate_of(c, &res[w][t][1]);
		double ho = rate_of(c, &res[w][t][2]);

		if (!wl_selected(c, w))
			continue;
		for (unsigned k = 0; k < NCONT; k++) {
			const struct run_result *r = &res[w][t][k];
			double rate = rate_of(c, r);

			if (!selected(c, k))
				continue;

			printf("%-10s %-7u %-8s %-8s %-9s %-6u %11.0f %8.2f "
			       "%8.2f %8.2f %7.2fx %7.2fx %7.2fx%s\n",
			       workload_name[w],
			       c->threads[t], contenders[k].delivery,
			       contenders[k].handlers ? (contenders[k].handlers
							 == 1 ? "1" : "2")
						      : "-",
			       contenders[k].placement ? contenders[k].placement
						       : "-",
			       around_of(c, k), rate,
			       1e6 / rate * c->threads[t],
			       r->p50_ns / 1e3, r->p99_ns / 1e3,
			       ratio(rate, lim), ratio(rate, hs),
			       ratio(rate, ho),
			       r->bad_pages ? "  VERIFY FAILED" : "");
		}
		printf("\n");
	}
	printf("us/page is per faulting thread; p50/p99 are fault-resolution "
	       "latencies seen by the fault path (none for the limit);\n"
	       "around: most pages installed per fault (fault-around, an "
	       "adaptive window per thread), 0 is off:\n"
	       "one page per fault like the kernel's anonymous faults; "
	       "random: each thread touches its slice in a\n"
	       "seeded random order, so the window stays at one page.\n");
}

static void print_json(const struct fault_config *c,
		       struct run_result res[][MAX_THREAD_COUNTS][NCONT])
{
	uint64_t pages = c->size / c->page_size;
	json_object *root = json_object_new_object();
	json_object *cfg = json_object_new_object();
	json_object *arr = json_object_new_array();
	json_object *tl = json_object_new_array();

	for (int t = 0; t < c->nthreads; t++)
		json_object_array_add(tl, json_object_new_int((int)c->threads[t]));
	json_object_object_add(cfg, "threads", tl);
	json_object_object_add(cfg, "size", json_object_new_int64((int64_t)c->size));
	json_object_object_add(cfg, "page_size",
			       json_object_new_int64((int64_t)c->page_size));
	json_object_object_add(cfg, "backing",
			       json_object_new_string(lm_backing_name(c->backing)));
	json_object_object_add(cfg, "install",
			       json_object_new_string(lm_install_name(c->install)));
	json_object_object_add(cfg, "source", json_object_new_string("memory"));
	json_object_object_add(cfg, "cpus", json_object_new_int(bench_ncpus()));
	json_object_object_add(cfg, "repeat", json_object_new_int(c->repeat));
	json_object_object_add(cfg, "seed",
			       json_object_new_int64((int64_t)c->seed));
	for (unsigned w = 0; w < WL_COUNT; w++)
	for (int t = 0; t < c->nthreads; t++) {
		double lim = rate_of(c, &res[w][t][0]);

		if (!wl_selected(c, w))
			continue;
		for (unsigned k = 0; k < NCONT; k++) {
			const struct run_result *r = &res[w][t][k];
			json_object *o;
			double rate = rate_of(c, r);

			if (!selected(c, k))
				continue;
			o = json_object_new_object();

			json_object_object_add(o, "workload",
				json_object_new_string(workload_name[w]));
			json_object_object_add(o, "delivery",
				json_object_new_string(contenders[k].delivery));
			json_object_object_add(o, "threads",
				json_object_new_int((int)c->threads[t]));
			json_object_object_add(o, "handler_threads",
				contenders[k].handlers
				? json_object_new_int((int)contenders[k].handlers)
				: NULL);
			json_object_object_add(o, "placement",
				contenders[k].placement
				? json_object_new_string(contenders[k].placement)
				: NULL);
			json_object_object_add(o, "fault_around",
				json_object_new_int((int)around_of(c, k)));
			json_object_object_add(o, "pages",
				json_object_new_int64((int64_t)pages));
			json_object_object_add(o, "seconds",
				json_object_new_double(r->median));
			json_object_object_add(o, "pages_per_sec",
				json_object_new_double(rate));
			json_object_object_add(o, "ratio_to_limit",
				json_object_new_double(ratio(rate, lim)));
			json_object_object_add(o, "fault_p50_us",
				json_object_new_double(r->p50_ns / 1e3));
			json_object_object_add(o, "fault_p99_us",
				json_object_new_double(r->p99_ns / 1e3));
			json_object_object_add(o, "verified",
				json_object_new_boolean(r->bad_pages == 0));
			json_object_array_add(arr, o);
		}
	}
	json_object_object_add(root, "benchmark", json_object_new_string("fault"));
	json_object_object_add(root, "config", cfg);
	json_object_object_add(root, "results", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

int cmd_bench_fault(int argc, char **argv)
{
	static struct run_result res[WL_COUNT][MAX_THREAD_COUNTS][NCONT];
	struct fault_config c = {
		.size = 512ull << 20, .threads = { 1, 2 }, .nthreads = 2,
		.workloads = (1u << WL_COUNT) - 1, .seed = 1,
		.repeat = 3, .backing = LM_BACKING_ANON,
		.install = LM_INSTALL_COPY, .around = 16,
	};
	bool progress = cli_progress_enabled();
	uint64_t bad = 0;
	void *image;
	int err = parse_args(argc, argv, &c);

	if (err)
		return err;
	image = mmap(NULL, c.size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (image == MAP_FAILED)
		return cli_fail("bench fault: cannot allocate the %llu-byte "
				"source image", (unsigned long long)c.size);
	bench_fill_pattern(image, c.size, c.page_size);
	c.image = image;
	memset(res, 0, sizeof(res));

	/* Warm-up, not measured: this machine is itself a VM, and the first
	 * touch of guest-physical memory its host has not backed yet costs
	 * about 4x more (measured: 18 us vs 4.3 us per page for the limit).
	 * Without this pass the first contender would pay for everyone. */
	for (int w = 0; w < 2; w++) {
		double ignored;
		uint64_t bad_ignored = 0;

		err = run_limit(&c, c.threads[0], WL_SEQUENTIAL, &ignored,
				&bad_ignored);
		if (err)
			return err;
	}
	/* Round-robin: every contender once per round, so slow drift on a
	 * shared machine spreads over all of them. */
	for (int rep = 0; rep < c.repeat; rep++)
	for (unsigned w = 0; w < WL_COUNT; w++) {
		if (!wl_selected(&c, w))
			continue;
		for (int t = 0; t < c.nthreads; t++) {
			for (unsigned k = 0; k < NCONT; k++) {
				struct run_result *r = &res[w][t][k];
				double *s = &r->seconds[rep];

				if (!selected(&c, k))
					continue;
				if (progress)
					fprintf(stderr, "\rround %d/%d: %-10s "
						"%u threads, %-8s %-9s   ",
						rep + 1, c.repeat,
						workload_name[w], c.threads[t],
						contenders[k].delivery,
						contenders[k].placement
						? contenders[k].placement : "");
				err = k == 0 ? run_limit(&c, c.threads[t], w, s,
							 &r->bad_pages)
					     : run_region(&c, &contenders[k],
							  c.threads[t], w, s,
							  r);
				if (err)
					return err;
			}
		}
	}
	if (progress)
		fprintf(stderr, "\r%72s\r", "");
	for (unsigned w = 0; w < WL_COUNT; w++)
		for (int t = 0; t < c.nthreads; t++)
			for (unsigned k = 0; k < NCONT; k++) {
				struct run_result *r = &res[w][t][k];

				if (!selected(&c, k) || !wl_selected(&c, w))
					continue;
				r->median = bench_median(r->seconds, c.repeat);
				bad += r->bad_pages;
			}
	if (c.json)
		print_json(&c, res);
	else
		print_table(&c, res);
	munmap(image, c.size);
	if (bad)
		return cli_fail("bench fault: %llu pages failed verification",
				(unsigned long long)bad);
	return 0;
}
