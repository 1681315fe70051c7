/*
 * live.c - "lazymem bench live-snapshot": saving memory as it was at one
 * instant while writers keep rewriting it, five ways, on plain threads
 * (this machine has no /dev/kvm; the writer threads stand in for vCPUs):
 *
 *   stop-and-copy  pause the writers, lm_snap_save everything, resume;
 *   fork           pause, fork(), the child saves its copy-on-write view,
 *                  the parent resumes (private anonymous memory, so the
 *                  parent's writes are copied by the kernel);
 *   cow-handler    lm_snap_live_save cow, write-protect faults resolved by
 *                  a handler thread (the classic way);
 *   cow-self       the same, resolved by the faulting thread in its SIGBUS
 *                  handler: the plain-thread analogue of a vCPU resolving
 *                  its fault on its exit from KVM_RUN (cow-exit);
 *   iterate        lm_snap_live_save iterate: async write-protect rounds,
 *                  then a short final pause.
 *
 * Each writer owns the pages p % threads == t and visits them in a
 * scattered order, storing (page, generation) in the page's first word;
 * every run's snapshot is opened, verified against its hashes and read
 * back through a lazy restore, and every page must hold its generation at
 * the instant (recorded while the writers are paused for it).
 *
 * --backing anon,hugetlb runs every contender on each backing: the writers
 * still write 4 KiB pages, but on hugetlb the snapshot's unit is the 2 MiB
 * page (a first write copies 2 MiB), and each figure gets its ratio to the
 * same contender on anon.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/lazymem.h>

#include "bench.h"
#include "cli/cli.h"
#include "util/error.h"
#include "util/fs.h"

#define PS 4096ull			/* the writers' page */
#define HPS (2ull << 20)		/* a hugetlb page */
#define MAX_THREADS 64
#define SAMPLE_MS 10
#define MAX_SAMPLES 30000

enum { C_STOP, C_FORK, C_COW_HANDLER, C_COW_SELF, C_ITERATE, NR_C };
static const char *const names[NR_C] = {
	"stop-and-copy", "fork", "cow-handler", "cow-self", "iterate",
};

enum { B_ANON, B_HUGETLB, NR_B };
static const char *const backing_names[NR_B] = { "anon", "hugetlb" };

/* The snapshot's page: the backing's. */
static uint64_t backing_ps(int b) { return b == B_HUGETLB ? HPS : PS; }

struct writers {
	uint64_t *mem;			/* words; page p at p * PS / 8 */
	uint64_t nr;
	unsigned n;
	pthread_t tid[MAX_THREADS];
	struct wthread {
		struct writers *w;
		unsigned t;
	} th[MAX_THREADS];
	_Atomic uint32_t *gen;		/* per page, after its write */
	uint32_t *at_instant;
	_Atomic bool pause_req, stop;
	_Atomic unsigned parked;
	_Atomic uint64_t writes;
	/* Writes slower than SLOW_NS: a fault (or a preemption) each. */
	_Atomic uint64_t slow, slow_ns;
	/* Their latencies while the snapshot runs (lm_lat_bucket scale):
	 * the median is the fault's cost; a mean would be a few
	 * preemptions of milliseconds on a loaded 2-CPU machine. */
	_Atomic bool measuring;
	_Atomic uint64_t hist[LM_LAT_BUCKETS];
};

#define SLOW_NS 2000

struct sample {
	double t;			/* seconds since the snapshot began */
	uint64_t writes;
};

struct result {
	int mode, backing;
	int rc;
	char err[300];
	double pause_ms, rate_before, rate_during, seconds, throttled_ms;
	uint64_t copied, extra_bytes, wp_faults;
	uint64_t buffer_peak;		/* cow: of extra_bytes, the buffer's */
	uint64_t slow, slow_ns;		/* slow writes during the snapshot */
	double fault_p50_us;		/* their median */
	double fault_p99_us;
	double pause_work_ms;		/* of the pause: the library's part */
	bool verified;
	struct sample *samples;
	unsigned nsamples;
};

/* The sampler: writes done every SAMPLE_MS, and the extra memory. */
struct sampler {
	pthread_t tid;
	struct writers *w;
	_Atomic bool stop;
	uint64_t t0;
	struct sample *s;
	_Atomic unsigned n;
	uint64_t dirty0;		/* Dirty + Writeback when it began */
	_Atomic uint64_t dirty_peak;
	_Atomic int child;		/* fork: the child whose copy counts */
	_Atomic uint64_t child_peak;
};

/* Writer t of w->n: its pages p = k * n + t, visited with a stride
 * coprime with their count (scattered, every page each lap). */
/*
 * The q-quantile (0..1) of the slowest `top` slow writes' latencies, in
 * us (top 0: of all of them). With top = the write-protect faults taken,
 * it is the faulting writes' quantile, on the assumption that a fault
 * costs more than the other slow writes (preemptions): on hugetlb a
 * fault is rare (one per 2 MiB page) and most slow writes are not one.
 */
static double hist_quantile_us(struct writers *w, uint64_t top, double q)
{
	uint64_t total = 0, at = 0, skip;

	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
		total += atomic_load(&w->hist[i]);
	if (!top || top > total)
		top = total;
	skip = total - top;
	for (unsigned i = 0; i < LM_LAT_BUCKETS && top; i++) {
		at += atomic_load(&w->hist[i]);
		if (at > skip && (double)(at - skip) >= q * (double)top)
			return (double)lm_lat_bucket_ns(i) / 1e3;
	}
	return 0;
}

static void *writer_loop(void *arg)
{
	struct wthread *me = arg;
	struct writers *w = me->w;
	unsigned t = me->t;
	uint64_t mine = (w->nr - t + w->n - 1) / w->n, k = 0, stride = 7919;

	while (mine % stride == 0)
		stride += 2;
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		uint64_t p, t0, dt;
		uint32_t g;

		if (atomic_load_explicit(&w->pause_req, memory_order_acquire)) {
			atomic_fetch_add(&w->parked, 1);
			while (atomic_load(&w->pause_req))
				usleep(50);
			atomic_fetch_sub(&w->parked, 1);
		}
		p = (k++ * stride) % mine * w->n + t;
		g = atomic_load_explicit(&w->gen[p], memory_order_relaxed) + 1;
		t0 = lm_now_ns();
		((volatile uint64_t *)w->mem)[p * PS / 8] = p << 32 | g;
		dt = lm_now_ns() - t0;
		atomic_store_explicit(&w->gen[p], g, memory_order_release);
		atomic_fetch_add_explicit(&w->writes, 1, memory_order_relaxed);
		if (dt > SLOW_NS &&
		    atomic_load_explicit(&w->measuring, memory_order_relaxed)) {
			atomic_fetch_add_explicit(&w->slow, 1,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&w->slow_ns, dt,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&w->hist[lm_lat_bucket(dt)],
						  1, memory_order_relaxed);
		}
	}
	return NULL;
}

static int pause_writers(void *arg)
{
	struct writers *w = arg;

	atomic_store(&w->pause_req, true);
	while (atomic_load(&w->parked) < w->n)
		sched_yield();
	for (uint64_t p = 0; p < w->nr; p++)
		w->at_instant[p] = atomic_load(&w->gen[p]);
	return 0;
}

static void resume_writers(void *arg)
{
	struct writers *w = arg;

	atomic_store(&w->pause_req, false);
}

static uint64_t meminfo_dirty(void)
{
	char line[256];
	uint64_t sum = 0, v;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Dirty: %lu kB", &v) == 1 ||
		    sscanf(line, "Writeback: %lu kB", &v) == 1)
			sum += v << 10;
	fclose(f);
	return sum;
}

/* A fork child's memory of its own: what the parent's writes copied. */
static uint64_t child_private(int pid)
{
	char path[64], line[256];
	uint64_t sum = 0, v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Private_Dirty: %lu kB", &v) == 1)
			sum += v << 10;
	fclose(f);
	return sum;
}

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;

	while (!atomic_load(&s->stop)) {
		unsigned n = atomic_load(&s->n);
		uint64_t d = meminfo_dirty();
		int child = atomic_load(&s->child);

		if (n < MAX_SAMPLES) {
			s->s[n].t = (double)(lm_now_ns() - s->t0) / 1e9;
			s->s[n].writes = atomic_load(&s->w->writes);
			atomic_store(&s->n, n + 1);
		}
		if (d > s->dirty0 && d - s->dirty0 > atomic_load(&s->dirty_peak))
			atomic_store(&s->dirty_peak, d - s->dirty0);
		if (child > 0) {
			uint64_t c = child_private(child);

			if (c > atomic_load(&s->child_peak))
				atomic_store(&s->child_peak, c);
		}
		usleep(SAMPLE_MS * 1000);
	}
	return NULL;
}

static double rate_over(struct writers *w, unsigned ms)
{
	uint64_t a = atomic_load(&w->writes), t0 = lm_now_ns(), b;

	usleep(ms * 1000);
	b = atomic_load(&w->writes);
	return (double)(b - a) / ((double)(lm_now_ns() - t0) / 1e9);
}

static void meta_for(struct lm_snap_meta *m, struct lm_snap_vcpu *v,
		     uint64_t mem, int backing)
{
	memset(m, 0, sizeof(*m));
	memset(v, 0, sizeof(*v));
	m->page_size = backing_ps(backing);
	m->mem_size = mem;
	m->nr_regions = 1;
	m->regions[0].size = mem;
	m->nr_vcpus = 1;
	m->vcpus = v;
}

/* Open, verify and read back DIR through a lazy restore: every page must
 * hold its generation at the instant in word 0 and the pattern after. */
static int verify_snapshot(const char *dir, const struct writers *w,
			   char *why, size_t len)
{
	struct lm_snap_meta m;
	struct lm_source *src = NULL;
	struct lm_region *r = NULL;
	uint64_t bad = 0, first = 0;
	const uint64_t *mem;
	int rc = lm_snap_open(dir, &m);

	if (!rc)
		rc = lm_snap_verify(dir, &m, &bad, &first, NULL, NULL);
	if (!rc)
		rc = lm_snap_source_open(dir, &m, &src);
	if (!rc) {
		/* A snapshot in 2 MiB pages is read (and hash-checked)
		 * 2 MiB at a time: restored onto hugetlb. */
		bool huge = m.page_size == HPS;
		struct lm_region_config rc_ = {
			.name = "bench-restore", .size = m.mem_size,
			.backing = huge ? LM_BACKING_HUGETLB : LM_BACKING_ANON,
			.install = LM_INSTALL_COPY,
			.delivery = LM_DELIVERY_SELF, .source = src,
			.fault_around = huge ? 1 : 16,
		};

		rc = lm_region_create(&rc_, &r);
	}
	if (rc) {
		snprintf(why, len, "%s", lm_last_error());
		goto out;
	}
	mem = lm_region_addr(r);
	for (uint64_t p = 0; p < w->nr && !rc; p++) {
		const uint64_t *pg = mem + p * PS / 8;

		if (pg[0] != (p << 32 | w->at_instant[p])) {
			snprintf(why, len, "page %llu holds generation %u, at "
				 "the instant it had %u",
				 (unsigned long long)p, (unsigned)pg[0],
				 w->at_instant[p]);
			rc = -EBADMSG;
		}
		for (uint64_t i = 1; i < PS / 8 && !rc; i++)
			if (pg[i] != bench_pattern(p, i)) {
				snprintf(why, len, "page %llu word %llu is "
					 "not the pattern",
					 (unsigned long long)p,
					 (unsigned long long)i);
				rc = -EBADMSG;
			}
	}
out:
	lm_region_destroy(r);
	if (src)
		lm_source_destroy(src);
	if (!rc || rc == -EBADMSG)
		lm_snap_meta_free(&m);
	return rc;
}

/* The memory the writers use: plain private anonymous memory for the
 * stop-and-copy and fork contenders, a write-protect region otherwise. */
static int memory_for(int mode, int backing, uint64_t size,
		      struct lm_source **src, struct lm_region **r,
		      uint64_t **mem)
{
	bool huge = backing == B_HUGETLB;
	int err;

	*r = NULL;
	*src = NULL;
	if (mode == C_STOP || mode == C_FORK) {
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS |
			       (huge ? MAP_HUGETLB : 0), -1, 0);

		if (p == MAP_FAILED)
			return util_error(-errno, "mmap of %llu bytes%s: %s%s",
					  (unsigned long long)size,
					  huge ? " of hugetlb pages" : "",
					  strerror(errno),
					  huge ? "; reserve them in /proc/sys/"
						 "vm/nr_hugepages" : "");
		if (!huge)
			madvise(p, size, MADV_NOHUGEPAGE);
		*mem = p;
		return 0;
	}
	err = lm_source_zero_create(size, src);
	if (!err) {
		struct lm_region_config c = {
			.name = names[mode], .size = size,
			.backing = huge ? LM_BACKING_HUGETLB : LM_BACKING_ANON,
			.install = LM_INSTALL_COPY,
			.delivery = mode == C_COW_HANDLER ? LM_DELIVERY_HANDLER
							  : LM_DELIVERY_SELF,
			.handler_threads = 1, .source = *src,
			.write_protect = mode == C_ITERATE ? LM_WP_ASYNC
							   : LM_WP_SYNC,
		};

		err = lm_region_create(&c, r);
	}
	if (err)
		return util_error(err, "%s", lm_last_error());
	*mem = lm_region_addr(*r);
	return 0;
}

/* stop-and-copy: the whole save is the pause. */
static int snap_stop(const char *dir, struct writers *w, uint64_t size,
		     struct result *res)
{
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	uint64_t t0 = lm_now_ns();
	int rc;

	meta_for(&m, &v, size, res->backing);
	pause_writers(w);
	rc = lm_snap_save(dir, &m, w->mem, NULL, NULL);
	resume_writers(w);
	res->pause_ms = (double)(lm_now_ns() - t0) / 1e6;
	return rc ? util_error(rc, "%s", lm_last_error()) : 0;
}

/* fork: the pause is the fork; the child saves what it sees. */
static int snap_fork(const char *dir, struct writers *w, uint64_t size,
		     struct result *res, struct sampler *s)
{
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	uint64_t t0 = lm_now_ns();
	int status = 0, pid;

	meta_for(&m, &v, size, res->backing);
	pause_writers(w);
	pid = fork();
	if (pid == 0)
		_exit(lm_snap_save(dir, &m, w->mem, NULL, NULL) ? 1 : 0);
	resume_writers(w);
	res->pause_ms = (double)(lm_now_ns() - t0) / 1e6;
	if (pid < 0)
		return util_error(-errno, "fork: %s", strerror(errno));
	atomic_store(&s->child, pid);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	atomic_store(&s->child, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return util_error(-EIO, "fork: the child's save failed "
				  "(status 0x%x)", status);
	return 0;
}

static int snap_live(const char *dir, struct writers *w, uint64_t size,
		     struct lm_region *r, int mode, uint64_t max_buffer,
		     struct result *res)
{
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_report rep;
	struct lm_live_config c = {
		.mode = mode == C_ITERATE ? LM_LIVE_ITERATE : LM_LIVE_COW,
		.max_buffer = max_buffer,
		.pause = pause_writers, .resume = resume_writers, .arg = w,
	};
	int rc;

	meta_for(&m, &v, size, res->backing);
	rc = lm_snap_live_save(dir, &m, r, &c, &rep);
	res->pause_ms = (double)rep.pause_ns / 1e6;
	res->pause_work_ms = (double)rep.pause_work_ns / 1e6;
	res->copied = rep.copied_before_write;
	res->throttled_ms = (double)rep.throttled_ns / 1e6;
	res->extra_bytes = rep.buffer_peak;
	res->buffer_peak = rep.buffer_peak;
	return rc ? util_error(rc, "%s", lm_last_error()) : 0;
}

static void run_one(int mode, int backing, const char *dir, uint64_t size,
		    unsigned nthr, uint64_t max_buffer, struct result *res)
{
	struct writers w = { .nr = size / PS, .n = nthr };
	struct sampler s = { .w = &w };
	struct lm_source *src;
	struct lm_region *r;
	uint64_t t0;
	int rc;

	memset(res, 0, sizeof(*res));
	res->mode = mode;
	res->backing = backing;
	w.gen = calloc(w.nr, sizeof(*w.gen));
	w.at_instant = calloc(w.nr, sizeof(*w.at_instant));
	s.s = calloc(MAX_SAMPLES, sizeof(*s.s));
	rc = w.gen && w.at_instant && s.s ? 0 : util_error(-ENOMEM, "out of memory");
	if (!rc)
		rc = memory_for(mode, backing, size, &src, &r, &w.mem);
	if (rc) {
		res->rc = rc;
		snprintf(res->err, sizeof(res->err), "%s", util_last_error());
		goto out_free;
	}
	for (uint64_t p = 0; p < w.nr; p++)
		for (uint64_t i = 0; i < PS / 8; i++)
			w.mem[p * PS / 8 + i] = i ? bench_pattern(p, i) : p << 32;
	for (unsigned i = 0; i < nthr; i++) {
		w.th[i] = (struct wthread){ &w, i };
		pthread_create(&w.tid[i], NULL, writer_loop, &w.th[i]);
	}
	res->rate_before = rate_over(&w, 300);
	s.dirty0 = meminfo_dirty();
	s.t0 = lm_now_ns();
	pthread_create(&s.tid, NULL, sampler_main, &s);
	{
		uint64_t a = atomic_load(&w.writes);

		atomic_store(&w.measuring, true);

		t0 = lm_now_ns();
		if (mode == C_STOP)
			rc = snap_stop(dir, &w, size, res);
		else if (mode == C_FORK)
			rc = snap_fork(dir, &w, size, res, &s);
		else
			rc = snap_live(dir, &w, size, r, mode, max_buffer, res);
		res->seconds = (double)(lm_now_ns() - t0) / 1e9;
		res->rate_during = (double)(atomic_load(&w.writes) - a) /
				   res->seconds;
		atomic_store(&w.measuring, false);
		res->slow = atomic_load(&w.slow);
		res->slow_ns = atomic_load(&w.slow_ns);
	}
	atomic_store(&s.stop, true);
	pthread_join(s.tid, NULL);
	atomic_store(&w.stop, true);
	for (unsigned i = 0; i < nthr; i++)
		pthread_join(w.tid[i], NULL);
	/* Page cache dirtied by the save counts as extra memory; a fork's
	 * child's copies instead of the buffer. */
	res->extra_bytes += atomic_load(&s.dirty_peak) +
			    atomic_load(&s.child_peak);
	if (r) {
		struct lm_stats st;

		lm_region_stats(r, &st);
		res->wp_faults = st.wp_faults;
	}
	res->fault_p50_us = hist_quantile_us(&w, res->wp_faults, 0.5);
	res->fault_p99_us = hist_quantile_us(&w, res->wp_faults, 0.99);
	res->rc = rc;
	if (rc)
		snprintf(res->err, sizeof(res->err), "%s", util_last_error());
	/* The memory goes before the check's restore, so a hugetlb run
	 * needs its size in huge pages once, not twice. */
	if (r) {
		lm_region_destroy(r);
		lm_source_destroy(src);
	} else {
		munmap(w.mem, size);
	}
	if (!rc)
		res->rc = verify_snapshot(dir, &w, res->err, sizeof(res->err));
	res->verified = res->rc == 0;
	res->samples = s.s;
	res->nsamples = atomic_load(&s.n);
	s.s = NULL;
out_free:
	free(w.gen);
	free(w.at_instant);
	free(s.s);
}

/* "cow-self,iterate" -> which contenders run; -EINVAL on a bad name. */
static int parse_modes(const char *list, bool *want)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	memset(want, 0, NR_C * sizeof(*want));
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int m = 0;

		while (m < NR_C && strcmp(t, names[m]))
			m++;
		if (m == NR_C)
			return -EINVAL;
		want[m] = true;
	}
	return 0;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"Save memory as it was at one instant while writer threads keep\n"
		"rewriting it (scattered, with generation numbers): stop-and-copy,\n"
		"fork, cow-handler, cow-self, iterate. Every snapshot is verified\n"
		"and read back through a lazy restore. On plain threads (the\n"
		"writers stand in for vCPUs; no /dev/kvm needed).\n\n"
		"  --mem SIZE         memory saved (default 256M)\n"
		"  --threads N        writer threads (default 2)\n"
		"  --max-buffer SIZE  cow: copy-before-write buffer (default 64M;\n"
		"                     at least one page: 2M with hugetlb)\n"
		"  --backing LIST     anon, hugetlb or anon,hugetlb (default anon):\n"
		"                     every contender on each; hugetlb needs SIZE\n"
		"                     of free 2 MiB pages (/proc/sys/vm/nr_hugepages)\n"
		"                     and gets ratios to anon when both run; fork\n"
		"                     is not run on hugetlb (its copy on write\n"
		"                     would need a second SIZE of huge pages)\n"
		"  --dir DIR          where snapshots go (default a new directory\n"
		"                     under /var/tmp, removed afterwards)\n"
		"  --timeline FILE    writes per second over time per contender\n"
		"                     (CSV: mode,seconds,writes_per_s)\n"
		"  --modes LIST       contenders to run, comma-separated (default\n"
		"                     all; ratios need stop-and-copy)\n"
		"  --json             one JSON object on stdout\n"
		"  -h, --help         this text\n", prog);
}

/* "cow-self" on anon, "cow-self/hugetlb" otherwise. */
static const char *row_name(const struct result *r, char *buf, size_t len)
{
	if (r->backing == B_ANON)
		return names[r->mode];
	snprintf(buf, len, "%s/%s", names[r->mode], backing_names[r->backing]);
	return buf;
}

static bool ran(const struct result *r)
{
	return r->rc != -ECANCELED && r->rc != -EOPNOTSUPP;
}

static void write_timeline(const char *path, const struct result *res, int n)
{
	FILE *f = fopen(path, "w");
	char nm[64];

	if (!f) {
		fprintf(stderr, "lazymem: %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(f, "mode,seconds,writes_per_s\n");
	for (int i = 0; i < n; i++)
		for (unsigned k = 1; k < res[i].nsamples; k++) {
			const struct sample *a = &res[i].samples[k - 1],
					    *b = &res[i].samples[k];

			if (b->t > a->t)
				fprintf(f, "%s,%.4f,%.0f\n",
					row_name(&res[i], nm, sizeof(nm)),
					b->t, (double)(b->writes - a->writes) /
					(b->t - a->t));
		}
	fclose(f);
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

/* The median time of a write that faulted during the snapshot (the
 * slowest wp_faults of those over SLOW_NS; all of them for stop-and-copy
 * and fork): the cost a writer sees per fault. */
static double us_per_fault(const struct result *r)
{
	return r->fault_p50_us;
}

static json_object *json_result(const struct result *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "mode", json_object_new_string(names[r->mode]));
	json_object_object_add(o, "backing", json_object_new_string(backing_names[r->backing]));
	json_object_object_add(o, "page_size", json_object_new_int64((int64_t)backing_ps(r->backing)));
	json_object_object_add(o, "pause_ms", json_object_new_double(r->pause_ms));
	json_object_object_add(o, "pause_work_ms", json_object_new_double(r->pause_work_ms));
	json_object_object_add(o, "work_ratio", json_object_new_double(ratio(r->rate_during, r->rate_before)));
	json_object_object_add(o, "copied_before_write", json_object_new_int64((int64_t)r->copied));
	json_object_object_add(o, "throttled_ms", json_object_new_double(r->throttled_ms));
	json_object_object_add(o, "extra_bytes", json_object_new_int64((int64_t)r->extra_bytes));
	json_object_object_add(o, "buffer_peak_bytes", json_object_new_int64((int64_t)r->buffer_peak));
	json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
	json_object_object_add(o, "slow_writes", json_object_new_int64((int64_t)r->slow));
	json_object_object_add(o, "wp_faults", json_object_new_int64((int64_t)r->wp_faults));
	json_object_object_add(o, "us_per_fault", json_object_new_double(us_per_fault(r)));
	json_object_object_add(o, "us_per_fault_p99", json_object_new_double(r->fault_p99_us));
	json_object_object_add(o, "verified", json_object_new_boolean(r->verified));
	if (r->rc)
		json_object_object_add(o, "error", json_object_new_string(r->err));
	return o;
}

static void print_json(const struct result *res, int n, uint64_t mem,
		       unsigned nthr, uint64_t max_buffer)
{
	json_object *root = json_object_new_object(),
		    *cfg = json_object_new_object(),
		    *arr = json_object_new_array();

	json_object_object_add(root, "benchmark", json_object_new_string("live-snapshot"));
	json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)mem));
	json_object_object_add(cfg, "threads", json_object_new_int64(nthr));
	json_object_object_add(cfg, "max_buffer", json_object_new_int64((int64_t)max_buffer));
	json_object_object_add(cfg, "vcpus", json_object_new_string(
		"plain writer threads (no /dev/kvm); cow-self is the thread-level cow-exit"));
	json_object_object_add(cfg, "writes", json_object_new_string(
		"one word per 4 KiB page on every backing; on hugetlb the snapshot's page is 2 MiB"));
	json_object_object_add(cfg, "fork_memory", json_object_new_string(
		"private anonymous: the parent's writes are copied on write"));
	json_object_object_add(cfg, "extra_bytes", json_object_new_string(
		"/proc/meminfo Dirty+Writeback peak delta, plus the cow buffer's "
		"peak, plus a fork child's Private_Dirty peak"));
	json_object_object_add(cfg, "cpus", json_object_new_int64(bench_ncpus()));
	json_object_object_add(root, "config", cfg);
	for (int i = 0; i < n; i++)
		if (ran(&res[i]))
			json_object_array_add(arr, json_result(&res[i]));
	json_object_object_add(root, "results", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static void print_row(const struct result *r, const struct result *stop)
{
	char nm[64];
	const char *name = row_name(r, nm, sizeof(nm));

	if (r->rc == -EOPNOTSUPP) {
		printf("%-21s not run: %s\n", name, r->err);
		return;
	}
	if (r->rc && !r->seconds) {
		printf("%-21s FAILED: %s\n", name, r->err);
		return;
	}
	printf("%-21s %9.2f %7.3f %11.2f %9llu %8.1f %11.1f %7.1f %9.3f "
	       "%8.2f %9llu %9llu %8.2f %8.1f %9s\n", name, r->pause_ms,
	       ratio(r->pause_ms, stop->pause_ms),
	       ratio(r->rate_during, r->rate_before),
	       (unsigned long long)r->copied, r->throttled_ms,
	       (double)r->extra_bytes / (1 << 20),
	       (double)r->buffer_peak / (1 << 20), r->seconds,
	       ratio(r->seconds, stop->seconds), (unsigned long long)r->slow,
	       (unsigned long long)r->wp_faults, us_per_fault(r),
	       r->fault_p99_us, r->verified ? "yes" : "NO");
	if (r->rc)
		printf("  %s\n", r->err);
}

static void print_goals(const struct result *res, int n, uint64_t max_buffer)
{
	const struct result *stop = &res[C_STOP];
	char nm[64];

	for (int i = C_COW_HANDLER; i < n; i++) {
		const struct result *r = &res[i];
		double p = ratio(r->pause_ms, stop->pause_ms),
		       t = ratio(r->seconds, stop->seconds);
		bool mem_ok = r->extra_bytes <= max_buffer + (8u << 20);

		if (!ran(r))
			continue;
		printf("  %-20s pause %.3fx stop (<= 0.05: %s), total %.2fx "
		       "(<= 1.5: %s), extra %.1f MiB (<= buffer + 8: %s)\n",
		       row_name(r, nm, sizeof(nm)), p,
		       p <= 0.05 ? "met" : "MISSED", t,
		       t <= 1.5 ? "met" : "MISSED",
		       (double)r->extra_bytes / (1 << 20),
		       mem_ok ? "met" : "MISSED");
	}
	if (ran(&res[C_COW_HANDLER]) && ran(&res[C_COW_SELF])) {
		double h = us_per_fault(&res[C_COW_HANDLER]),
		       s = us_per_fault(&res[C_COW_SELF]),
		       w = ratio(res[C_COW_SELF].rate_during,
				 res[C_COW_SELF].rate_before);

		printf("  %-20s median faulting write %.2f us vs "
		       "cow-handler %.2f us: %.2fx (<= 0.5: %s); work ratio "
		       "%.2f (>= 0.7: %s)\n",
		       row_name(&res[C_COW_SELF], nm, sizeof(nm)), s, h,
		       ratio(s, h), h > 0 && ratio(s, h) <= 0.5 ? "met"
								: "MISSED",
		       w, w >= 0.7 ? "met" : "MISSED");
	}
}

/* res[b * NR_C + m]: one table over every backing that ran, each row's
 * "x stop" against stop-and-copy on its own backing. */
static void print_table(const struct result *res, const bool *backing,
			uint64_t mem, unsigned nthr, uint64_t max_buffer)
{
	printf("live snapshot of %llu MiB rewritten by %u writer thread%s "
	       "(plain threads: no /dev/kvm; cow-self stands for cow-exit), "
	       "%d CPUs, max buffer %llu MiB; writes of one word per 4 KiB "
	       "page, snapshot page 4 KiB on anon, 2 MiB on hugetlb; fork on "
	       "private anonymous memory (copy-on-write); extra memory = "
	       "meminfo Dirty+Writeback peak delta + cow buffer peak + fork "
	       "child's copies\n",
	       (unsigned long long)(mem >> 20), nthr, nthr == 1 ? "" : "s",
	       bench_ncpus(), (unsigned long long)(max_buffer >> 20));
	printf("%-21s %9s %7s %11s %9s %8s %11s %7s %9s %8s %9s %9s %8s %8s "
	       "%9s\n", "mode", "pause ms", "x stop", "work ratio", "copied",
	       "thr ms", "extra MiB", "buf MiB", "seconds", "x stop",
	       "slow wr", "wp faults", "us p50", "us p99", "verified");
	for (int b = 0; b < NR_B; b++)
		for (int i = 0; backing[b] && i < NR_C; i++)
			if (res[b * NR_C + i].rc != -ECANCELED)
				print_row(&res[b * NR_C + i],
					  &res[b * NR_C + C_STOP]);
	printf("(of the pause, the library's part:");
	for (int b = 0; b < NR_B; b++)
		for (int i = C_COW_HANDLER; backing[b] && i < NR_C; i++) {
			char nm[64];

			if (ran(&res[b * NR_C + i]))
				printf(" %s %.2f ms",
				       row_name(&res[b * NR_C + i], nm,
						sizeof(nm)),
				       res[b * NR_C + i].pause_work_ms);
		}
	printf("; the rest is the writers reaching their pause point)\n");
	printf("\ngoals (issue 13; measured here on threads, not vCPUs):\n");
	for (int b = 0; b < NR_B; b++)
		if (backing[b])
			print_goals(res + b * NR_C, NR_C, max_buffer);
	if (backing[B_ANON] && ran(&res[C_FORK]))
		printf("  fork                 extra %.1f MiB (printed beside "
		       "cow's)\n", (double)res[C_FORK].extra_bytes / (1 << 20));
	printf("  qemu                 skipped: background-snapshot needs a "
	       "VM (no /dev/kvm here)\n");
}

/* hugetlb against anon, contender by contender: what 2 MiB pages cost. */
static void print_vs_anon(const struct result *res)
{
	printf("\nhugetlb / anon, same contender (ratios; > 1: hugetlb "
	       "higher):\n%-14s %9s %9s %9s %11s %11s %9s\n", "mode", "pause",
	       "us p50", "us p99", "work ratio", "extra MiB", "seconds");
	for (int i = 0; i < NR_C; i++) {
		const struct result *a = &res[B_ANON * NR_C + i],
				    *h = &res[B_HUGETLB * NR_C + i];

		if (!ran(a) || !ran(h) || a->rc || h->rc)
			continue;
		printf("%-14s %9.2f %9.2f %9.2f %11.2f %11.2f %9.2f\n",
		       names[i], ratio(h->pause_ms, a->pause_ms),
		       ratio(h->fault_p50_us, a->fault_p50_us),
		       ratio(h->fault_p99_us, a->fault_p99_us),
		       ratio(ratio(h->rate_during, h->rate_before),
			     ratio(a->rate_during, a->rate_before)),
		       ratio((double)h->extra_bytes, (double)a->extra_bytes),
		       ratio(h->seconds, a->seconds));
	}
}

/* "anon,hugetlb" -> which backings run; -EINVAL on a bad name. */
static int parse_backings(const char *list, bool *want)
{
	char buf[64], *save = NULL;
	bool any = false;

	snprintf(buf, sizeof(buf), "%s", list);
	memset(want, 0, NR_B * sizeof(*want));
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int b = 0;

		while (b < NR_B && strcmp(t, backing_names[b]))
			b++;
		if (b == NR_B)
			return -EINVAL;
		want[b] = any = true;
	}
	return any ? 0 : -EINVAL;
}

struct opts {
	uint64_t mem, max_buffer;
	unsigned nthr;
	const char *dir, *timeline;
	bool want[NR_C], backing[NR_B], json, help;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-buffer", required_argument, NULL, 'b' },
		{ "backing", required_argument, NULL, 'B' },
		{ "dir", required_argument, NULL, 'd' },
		{ "timeline", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "modes", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_size(optarg, &o->mem) || !o->mem || o->mem % PS)
				return cli_usage_error("--mem '%s': expected a size, a multiple of 4K, like 256M", optarg);
			break;
		case 't':
			if (cli_parse_size(optarg, &n) || !n || n > MAX_THREADS)
				return cli_usage_error("--threads '%s': expected 1..%d", optarg, MAX_THREADS);
			o->nthr = (unsigned)n;
			break;
		case 'b':
			if (cli_parse_size(optarg, &o->max_buffer) || o->max_buffer < PS)
				return cli_usage_error("--max-buffer '%s': expected a size of at least 4K", optarg);
			break;
		case 'B':
			if (parse_backings(optarg, o->backing))
				return cli_usage_error("--backing '%s': expected anon, hugetlb or anon,hugetlb", optarg);
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'T':
			o->timeline = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'M':
			if (parse_modes(optarg, o->want))
				return cli_usage_error("--modes '%s': expected a comma list of stop-and-copy, fork, cow-handler, cow-self, iterate", optarg);
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
	if (o->mem / PS < o->nthr)
		return cli_usage_error("--mem: fewer pages than writer threads");
	if (o->backing[B_HUGETLB] && o->mem % HPS)
		return cli_usage_error("--mem %llu: hugetlb needs a multiple of 2M",
				       (unsigned long long)o->mem);
	if (o->backing[B_HUGETLB] && o->max_buffer < HPS)
		return cli_usage_error("--max-buffer %llu: hugetlb copies whole 2 MiB pages; give at least 2M",
				       (unsigned long long)o->max_buffer);
	return 0;
}

/* Every wanted contender on every wanted backing, into res[b][m]. */
static bool run_all(const struct opts *o, const char *dir, struct result *res)
{
	bool all = true;

	for (int b = 0; b < NR_B; b++)
		for (int m = 0; m < NR_C; m++) {
			struct result *r = &res[b * NR_C + m];
			char nm[64];

			r->mode = m;
			r->backing = b;
			if (!o->backing[b] || !o->want[m]) {
				r->rc = -ECANCELED;
				snprintf(r->err, sizeof(r->err), "not asked for");
				continue;
			}
			if (b == B_HUGETLB && m == C_FORK) {
				r->rc = -EOPNOTSUPP;
				snprintf(r->err, sizeof(r->err), "fork's copy on "
					 "write of private hugetlb memory takes a "
					 "free huge page per page written (a second "
					 "--mem of them), or kills the child");
				continue;
			}
			if (!o->json)
				fprintf(stderr, "  %s ...\n", row_name(r, nm, sizeof(nm)));
			run_one(m, b, dir, o->mem, o->nthr, o->max_buffer, r);
			all = all && r->verified;
		}
	return all;
}

int cmd_bench_live_snapshot(int argc, char **argv)
{
	struct opts o = {
		.mem = 256ull << 20, .max_buffer = 64ull << 20, .nthr = 2,
		.want = { true, true, true, true, true },
		.backing = { true, false },
	};
	char tmpdir[] = "/var/tmp/lazymem-bench-live.XXXXXX";
	struct result res[NR_B * NR_C];
	const char *dir;
	bool all;
	int rc = parse_opts(argc, argv, &o);

	if (rc || o.help)
		return rc;
	dir = o.dir;
	if (!dir) {
		if (!mkdtemp(tmpdir))
			return cli_fail("bench live-snapshot: mkdtemp %s: %s", tmpdir, strerror(errno));
		dir = tmpdir;
	}
	memset(res, 0, sizeof(res));
	all = run_all(&o, dir, res);
	if (o.json) {
		print_json(res, NR_B * NR_C, o.mem, o.nthr, o.max_buffer);
	} else {
		print_table(res, o.backing, o.mem, o.nthr, o.max_buffer);
		if (o.backing[B_ANON] && o.backing[B_HUGETLB])
			print_vs_anon(res);
	}
	if (o.timeline)
		write_timeline(o.timeline, res, NR_B * NR_C);
	for (int i = 0; i < NR_B * NR_C; i++)
		free(res[i].samples);
	if (dir == tmpdir) {
		int e = util_remove_tree(tmpdir);

		if (e)
			fprintf(stderr, "lazymem: could not remove %s: %s\n",
				tmpdir, strerror(-e));
	}
	return all ? 0 : 1;
}
