/*
 * cmd_demo_threads.c - `lazymem demo` without KVM: the same four steps as
 * the VM demo (cmd_demo.c), run by plain threads instead of vCPUs.
 *
 * Why: the VM demo needs /dev/kvm, which many CI runners and cloud VMs do
 * not have, yet the library's core job - memory filled lazily from a
 * snapshot, each fault resolved by the thread that took it (SIGBUS
 * self-resolve) - needs none. So when /dev/kvm cannot be opened (or with
 * --no-kvm) the demo shows that job with the library's public API alone:
 *
 * 1. Threads fill memory with the guests' pattern (every word a function
 *    of its offset and a generation, lm_pattern) and it is saved with
 *    lm_snap_save: meta.json, memory.img, one XXH3 hash per page, the
 *    format the VM demo writes.
 * 2. It is restored lazily into a new region (memfd, CONTINUE install,
 *    SIGBUS self-resolve, as the VM demo's RAM): each thread touches a
 *    scattered 10% of its slice and checks every word; the pages touched
 *    are recorded, first touch first, as a working-set file.
 * 3. Restored again with that working set prefetched (lm_region_fault
 *    from a prefetch pass) before the threads start: they take (almost)
 *    no faults, and check again.
 * 4. One bit of page 1000 of memory.img is flipped and the restore
 *    repeated: the snapshot source's hash check refuses the page
 *    (-EBADMSG), the region fails it, and the thread that touches it is
 *    stopped by the region's on_fail (siglongjmp) instead of reading it.
 *    The step passes only if exactly that page is refused, on exactly
 *    that thread, and every other word touched is right.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <lazymem/lazymem.h>
#include "util/clock.h"
#include "cli/cli.h"
#include "fcproto/wsfile.h"
#include "vmm/guest_abi.h"

#define GEN 7
#define PS 4096ull
#define PRIME 2654435761ull	/* the guests' scatter: larger than any slice */
#define SEED 1
#define BAD_PAGE 1000		/* the page step 4 corrupts, as the VM demo */
#define JOIN_TIMEOUT_S 120	/* a thread not back by then has hung */

struct tdemo {
	const char *dir;
	char ws_path[300];
	uint64_t mem, pages;
	unsigned nthreads;
};

/* One row of the closing table. */
struct row {
	const char *step;
	double seconds, first_ms;	/* first_ms < 0: no restore */
	uint64_t faults, prefetched, pages_per_s;
	char verified[48];
	bool ok;
};

/* A stand-in vCPU: touches its working set in the region, checking it. */
struct worker {
	const uint8_t *base;
	uint64_t first, n, k;	/* slice [first, first+n) pages, k touched */
	uint64_t extra_off;	/* touched after the working set, or ~0 */
	uint64_t *rec;		/* offsets touched, in order, or NULL */
	uint64_t touched, words, mismatches, bad_off;
	uint64_t first_ns;	/* when its first read returned */
	bool failed;		/* on_fail stopped it */
	uint64_t fail_off;
	int fail_err;
	sigjmp_buf jmp;
	struct gate *start;
	pthread_t thread;
};

/* Where the workers wait until all are created, so they start together. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
};

static void gate_wait(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static __thread struct worker *this_worker;

/* The region's on_fail, in the SIGBUS handler of the thread that touched
 * a page that cannot be fetched: note it and leave the access. */
static void worker_failed(struct lm_region *r, uint64_t off, int err,
			  void *arg)
{
	struct worker *w = this_worker;

	(void)r;
	(void)arg;
	w->failed = true;
	w->fail_off = off;
	w->fail_err = err;
	siglongjmp(w->jmp, 1);
}

static void check_page(struct worker *w, uint64_t off)
{
	/* page-aligned: off is a multiple of PS from an mmap base */
	const volatile uint64_t *p =
		(const volatile uint64_t *)(const volatile void *)(w->base + off);
	uint64_t first = p[0];

	if (!w->first_ns)
		w->first_ns = lm_now_ns();
	for (uint64_t k = 0; k < PS / 8; k++) {
		uint64_t v = k ? p[k] : first;

		if (v != lm_pattern(off + k * 8, GEN) && !w->mismatches++)
			w->bad_off = off + k * 8;
	}
	w->words += PS / 8;
	w->touched++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	this_worker = w;
	gate_wait(w->start);
	if (sigsetjmp(w->jmp, 1))
		return NULL;	/* stopped at a refused page */
	for (uint64_t i = 0; i < w->k; i++) {
		uint64_t off = (w->first + (i * PRIME + SEED) % w->n) * PS;

		if (w->rec)
			w->rec[i] = off;
		check_page(w, off);
	}
	if (w->extra_off != UINT64_MAX)
		check_page(w, w->extra_off);
	return NULL;
}

/* Wait for a thread, but not forever: a hung thread is the one failure
 * that must not look like a slow demo. */
static void join_or_die(struct worker *w, unsigned i)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_TIMEOUT_S;
	if (pthread_timedjoin_np(w->thread, NULL, &ts) == ETIMEDOUT) {
		fprintf(stderr, "lazymem: demo: thread %u has not finished "
			"after %d s: hung on a fault\n", i, JOIN_TIMEOUT_S);
		exit(1);
	}
}

/* ---------------- step 1: fill and save ---------------- */

struct filler {
	uint64_t *mem, first, n;	/* words */
	pthread_t thread;
};

static void *fill_main(void *arg)
{
	struct filler *f = arg;

	for (uint64_t i = f->first; i < f->first + f->n; i++)
		f->mem[i] = lm_pattern(i * 8, GEN);
	return NULL;
}

static int step_fill_and_save(struct tdemo *d, struct row *row)
{
	struct filler f[LM_SNAP_MAX_VCPUS];
	struct lm_snap_meta m = { .page_size = PS, .mem_size = d->mem };
	uint64_t words = d->mem / 8, t0 = lm_now_ns(), t1;
	char workload[160];
	uint64_t *mem;
	int err;

	printf("1. fill %llu MiB on %u threads with the guests' pattern "
	       "(every word a function of its offset and generation %d); "
	       "save it as a snapshot\n",
	       (unsigned long long)(d->mem >> 20), d->nthreads, GEN);
	mem = mmap(NULL, d->mem, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return cli_fail("demo: %llu MiB of memory: %s",
				(unsigned long long)(d->mem >> 20),
				strerror(errno));
	for (unsigned i = 0; i < d->nthreads; i++) {
		f[i] = (struct filler){
			.mem = mem, .first = words * i / d->nthreads,
			.n = words * (i + 1) / d->nthreads -
			     words * i / d->nthreads,
		};
		err = pthread_create(&f[i].thread, NULL, fill_main, &f[i]);
		if (err) {
			while (i--)
				pthread_join(f[i].thread, NULL);
			munmap(mem, d->mem);
			return cli_fail("demo: fill thread: %s", strerror(err));
		}
	}
	for (unsigned i = 0; i < d->nthreads; i++)
		pthread_join(f[i].thread, NULL);
	t1 = lm_now_ns();
	printf("  filled in %.3f s\n", (double)(t1 - t0) / 1e9);

	/* One region of memory at offset 0; one entry per thread where the
	 * VM demo has its vCPUs' registers (no state to keep here). */
	m.nr_regions = 1;
	m.regions[0] = (struct lm_snap_region){ .size = d->mem };
	m.nr_vcpus = d->nthreads;
	m.vcpus = calloc(d->nthreads, sizeof(*m.vcpus));
	snprintf(workload, sizeof(workload),
		 "{\"kind\":\"threads\",\"gen\":%d,\"threads\":%u,"
		 "\"ws_percent\":10,\"seed\":%d}", GEN, d->nthreads, SEED);
	m.workload = strdup(workload);
	if (!m.vcpus || !m.workload) {
		lm_snap_meta_free(&m);
		munmap(mem, d->mem);
		return cli_fail("demo: out of memory");
	}
	for (unsigned i = 0; i < d->nthreads; i++)
		m.vcpus[i].id = i;
	err = lm_snap_save(d->dir, &m, mem,
			   cli_progress_enabled() ? cli_progress : NULL,
			   (void *)"save");
	munmap(mem, d->mem);
	if (err) {
		lm_snap_meta_free(&m);
		return cli_fail("demo: %s", lm_last_error());
	}
	row->seconds = (double)(lm_now_ns() - t0) / 1e9;
	printf("  saved to %s in %.3f s: %llu MiB, %llu pages stored, each "
	       "with an XXH3 hash (meta.json, memory.img, pages.xxh)\n",
	       d->dir, (double)(lm_now_ns() - t1) / 1e9,
	       (unsigned long long)(d->mem >> 20),
	       (unsigned long long)m.nonzero_pages);
	lm_snap_meta_free(&m);
	snprintf(row->verified, sizeof(row->verified), "-");
	row->ok = true;
	return 0;
}

/* ---------------- steps 2-4: restores ---------------- */

struct restore {
	const struct fc_ws *prefetch;	/* install these first, or NULL */
	uint64_t bad_off;		/* step 4: the corrupt page, or ~0 */
	struct fc_ws *record;		/* step 2: the pages touched */
	/* out */
	struct lm_stats st;
	uint64_t t_call, t_start, t_end, first_ns;
	uint64_t prefetch_ns;		/* the prefetch pass */
	uint64_t touched, words, mismatches, bad_word;
	int region_err;
	uint64_t region_err_off;
	unsigned failed_threads, failed_thread;
	uint64_t fail_off;
	int fail_err;
};

/*
 * Record the workers' pages as one working set, in the order they were
 * first touched as nearly as it can be rebuilt: the threads' lists
 * interleaved.
 */
static int record_ws(const struct tdemo *d, struct worker *w,
		     struct fc_ws *ws)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < d->nthreads; i++)
		total += w[i].touched;
	ws->page_size = PS;
	ws->n = 0;
	ws->off = malloc((total ? total : 1) * sizeof(*ws->off));
	if (!ws->off)
		return -ENOMEM;
	for (uint64_t j = 0; ws->n < total; j++)
		for (unsigned i = 0; i < d->nthreads; i++)
			if (j < w[i].touched)
				ws->off[ws->n++] = w[i].rec[j];
	return 0;
}

static int run_restore(const struct tdemo *d, struct restore *rs)
{
	struct worker *w = calloc(d->nthreads, sizeof(*w));
	struct lm_snap_meta m;
	struct lm_source *src = NULL;
	struct lm_region *r = NULL;
	struct gate start = {
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false
	};
	unsigned started = 0;
	int err;

	if (!w)
		return cli_fail("demo: out of memory");
	rs->t_call = lm_now_ns();
	err = lm_snap_open(d->dir, &m);
	if (err) {
		free(w);
		return cli_fail("demo: %s", lm_last_error());
	}
	err = lm_snap_source_open(d->dir, &m, &src);
	if (!err) {
		struct lm_region_config c = {
			.name = "demo-memory", .size = m.mem_size,
			.backing = LM_BACKING_MEMFD,
			.install = LM_INSTALL_CONTINUE,
			.delivery = LM_DELIVERY_SELF,
			.source = src, .on_fail = worker_failed,
		};

		err = lm_region_create(&c, &r);
	}
	lm_snap_meta_free(&m);
	if (err) {
		err = cli_fail("demo: restore from %s: %s", d->dir,
			       lm_last_error());
		goto out;
	}
	/* Prefetch: the working set in first-touch order, each page read
	 * and checked like a fault, on this thread, ahead of the workers. */
	rs->prefetch_ns = lm_now_ns();
	for (size_t i = 0; rs->prefetch && i < rs->prefetch->n; i++) {
		err = lm_region_fault(r, rs->prefetch->off[i],
				      LM_ORIGIN_BACKGROUND);
		if (err) {
			err = cli_fail("demo: prefetch of the page at offset "
				       "0x%llx: %s",
				       (unsigned long long)rs->prefetch->off[i],
				       lm_last_error());
			goto out;
		}
	}
	rs->prefetch_ns = lm_now_ns() - rs->prefetch_ns;

	for (unsigned i = 0; i < d->nthreads; i++) {
		uint64_t first = d->pages * i / d->nthreads;
		uint64_t n = d->pages * (i + 1) / d->nthreads - first;

		w[i] = (struct worker){
			.base = lm_region_addr(r), .first = first, .n = n,
			.k = n / 10 ? n / 10 : 1, .start = &start,
			.extra_off = rs->bad_off / PS >= first &&
				     rs->bad_off / PS < first + n ?
				     rs->bad_off : UINT64_MAX,
		};
		if (rs->record)
			w[i].rec = malloc(w[i].k * sizeof(*w[i].rec));
		if ((rs->record && !w[i].rec) ||
		    pthread_create(&w[i].thread, NULL, worker_main, &w[i]))
			break;
		started++;
	}
	/* If not all could start, the ones that did still run, then the
	 * step fails. */
	rs->t_start = lm_now_ns();
	gate_open(&start);
	for (unsigned i = 0; i < started; i++)
		join_or_die(&w[i], i);
	rs->t_end = lm_now_ns();
	if (started < d->nthreads) {
		err = cli_fail("demo: could not start %u threads",
			       d->nthreads);
		goto out;
	}

	lm_region_stats(r, &rs->st);
	rs->region_err = lm_region_error(r, &rs->region_err_off);
	rs->first_ns = UINT64_MAX;
	for (unsigned i = 0; i < d->nthreads; i++) {
		if (w[i].first_ns && w[i].first_ns < rs->first_ns)
			rs->first_ns = w[i].first_ns;
		rs->touched += w[i].touched;
		rs->words += w[i].words;
		if (w[i].mismatches && !rs->mismatches)
			rs->bad_word = w[i].bad_off;
		rs->mismatches += w[i].mismatches;
		if (w[i].failed && !rs->failed_threads++) {
			rs->failed_thread = i;
			rs->fail_off = w[i].fail_off;
			rs->fail_err = w[i].fail_err;
		}
	}
	if (rs->record) {
		err = record_ws(d, w, rs->record);
		if (err)
			err = cli_fail("demo: out of memory");
	}
out:
	for (unsigned i = 0; i < d->nthreads; i++)
		free(w[i].rec);
	free(w);
	if (r)
		lm_region_destroy(r);
	if (src)
		lm_source_destroy(src);
	return err;
}

/* The figures every restore step prints and tabulates. */
static void restore_row(const struct restore *rs, struct row *row)
{
	double run_s = (double)(rs->t_end - rs->t_start) / 1e9;
	char p50[32] = "";

	row->seconds = (double)(rs->t_end - rs->t_call) / 1e9;
	row->first_ms = rs->first_ns == UINT64_MAX ? -1 :
			(double)(rs->first_ns - rs->t_call) / 1e6;
	row->faults = rs->st.faults[LM_ORIGIN_SIGBUS];
	row->prefetched = rs->st.pages_background;
	row->pages_per_s = run_s > 0 ? (uint64_t)((double)rs->touched / run_s)
				     : 0;
	if (rs->prefetch)
		printf("  prefetched %llu pages in %.3f s before the threads "
		       "started\n", (unsigned long long)row->prefetched,
		       (double)rs->prefetch_ns / 1e9);
	if (rs->st.lat_count)
		snprintf(p50, sizeof(p50), " (p50 %.1f us)",
			 (double)rs->st.lat_p50_ns / 1e3);
	printf("  first access %.2f ms after the restore call; done at "
	       "%.3f s; %llu faults resolved by the threads themselves%s, "
	       "%llu pages prefetched; %llu pages touched (%llu pages/s); "
	       "%llu words checked: %s\n",
	       row->first_ms, row->seconds,
	       (unsigned long long)row->faults, p50,
	       (unsigned long long)row->prefetched,
	       (unsigned long long)rs->touched,
	       (unsigned long long)row->pages_per_s,
	       (unsigned long long)rs->words,
	       rs->mismatches ? "MISMATCH" : "all correct");
}

/* Step 2 or 3: a clean restore; every word right, no page failed. */
static int check_clean(const struct restore *rs, struct row *row)
{
	if (rs->mismatches)
		return cli_fail("demo: %llu words wrong, the first at offset "
				"0x%llx", (unsigned long long)rs->mismatches,
				(unsigned long long)rs->bad_word);
	if (rs->failed_threads || rs->region_err)
		return cli_fail("demo: page at offset 0x%llx failed: %s",
				(unsigned long long)rs->region_err_off,
				strerror(-rs->region_err));
	snprintf(row->verified, sizeof(row->verified), "yes (%llu words)",
		 (unsigned long long)rs->words);
	row->ok = true;
	return 0;
}

static int step_lazy(struct tdemo *d, struct fc_ws *ws, struct row *row)
{
	struct restore rs = { .bad_off = UINT64_MAX, .record = ws };
	char why[512];
	int err;

	printf("2. restore it lazily into a new region (memfd, continue, "
	       "SIGBUS self-resolve); %u threads check a scattered 10%% "
	       "working set\n", d->nthreads);
	err = run_restore(d, &rs);
	if (err)
		return err;
	restore_row(&rs, row);
	err = check_clean(&rs, row);
	if (err)
		return err;
	if (fc_ws_write(d->ws_path, ws, why, sizeof(why)))
		return cli_fail("demo: %s", why);
	printf("  recorded its working set: %zu pages, first touch first, "
	       "to %s\n", ws->n, d->ws_path);
	return 0;
}

static int step_prefetch(struct tdemo *d, uint64_t lazy_faults,
			 struct row *row)
{
	struct fc_ws ws = { 0 };
	struct restore rs = { .bad_off = UINT64_MAX, .prefetch = &ws };
	char why[512];
	int err;

	printf("3. restore again, with the recorded working set prefetched "
	       "ahead of the threads\n");
	if (fc_ws_load(d->ws_path, d->mem, &ws, why, sizeof(why)))
		return cli_fail("demo: %s", why);
	err = run_restore(d, &rs);
	fc_ws_free(&ws);
	if (err)
		return err;
	restore_row(&rs, row);
	err = check_clean(&rs, row);
	if (err)
		return err;
	/* The threads touch exactly the recorded pages: prefetched, they
	 * should fault on next to none of them. */
	if (row->faults * 10 > lazy_faults) {
		row->ok = false;
		return cli_fail("demo: the threads still took %llu faults "
				"with the working set prefetched (%llu "
				"without)", (unsigned long long)row->faults,
				(unsigned long long)lazy_faults);
	}
	return 0;
}

static int step_corrupt(struct tdemo *d, struct row *row)
{
	struct restore rs = { .bad_off = BAD_PAGE * PS };
	int err;

	printf("4. flip one bit of page %d in memory.img and restore again; "
	       "the thread whose slice holds it touches it last\n", BAD_PAGE);
	err = cli_demo_flip_bit(d->dir, BAD_PAGE * PS + 123);
	if (err)
		return err;
	err = run_restore(d, &rs);
	/* Flip it back: a kept snapshot must be a good one. */
	if (cli_demo_flip_bit(d->dir, BAD_PAGE * PS + 123) && !err)
		err = 1;
	if (err)
		return err;
	restore_row(&rs, row);
	if (!rs.failed_threads)
		return cli_fail("demo: a corrupt page reached the threads "
				"unnoticed");
	if (rs.failed_threads != 1 || rs.fail_off != rs.bad_off ||
	    rs.fail_err != -EBADMSG || rs.region_err != -EBADMSG ||
	    rs.region_err_off != rs.bad_off || rs.st.pages_failed != 1)
		return cli_fail("demo: expected exactly the page at offset "
				"0x%llx refused (%s) on one thread; got %u "
				"threads stopped, the first at 0x%llx (%s), "
				"%llu pages failed, region error at 0x%llx "
				"(%s)", (unsigned long long)rs.bad_off,
				strerror(EBADMSG), rs.failed_threads,
				(unsigned long long)rs.fail_off,
				strerror(-rs.fail_err),
				(unsigned long long)rs.st.pages_failed,
				(unsigned long long)rs.region_err_off,
				strerror(-rs.region_err));
	if (rs.mismatches)
		return cli_fail("demo: %llu words wrong, the first at offset "
				"0x%llx", (unsigned long long)rs.mismatches,
				(unsigned long long)rs.bad_word);
	printf("  refused, as it must be: snapshot %s: page at offset 0x%llx "
	       "does not match its hash (%s); thread %u was stopped there "
	       "without reading it; every other word touched was right\n",
	       d->dir, (unsigned long long)rs.fail_off,
	       strerror(-rs.fail_err), rs.failed_thread);
	snprintf(row->verified, sizeof(row->verified), "refused 0x%llx",
		 (unsigned long long)rs.fail_off);
	row->ok = true;
	return 0;
}

static void print_table(const struct row *rows, int n)
{
	printf("\n%-22s %9s %13s %11s %11s %10s  %s\n", "step", "time",
	       "first access", "faults on", "pages", "pages/s", "verified");
	printf("%-22s %9s %13s %11s %11s\n", "", "", "", "threads",
	       "prefetched");
	for (int i = 0; i < n; i++) {
		char first[16] = "-", faults[24] = "-", pf[24] = "-",
		     rate[24] = "-";

		if (rows[i].first_ms >= 0) {
			snprintf(first, sizeof(first), "%.2f ms",
				 rows[i].first_ms);
			snprintf(faults, sizeof(faults), "%llu",
				 (unsigned long long)rows[i].faults);
			snprintf(pf, sizeof(pf), "%llu",
				 (unsigned long long)rows[i].prefetched);
			snprintf(rate, sizeof(rate), "%llu",
				 (unsigned long long)rows[i].pages_per_s);
		}
		printf("%-22s %7.3f s %13s %11s %11s %10s  %s\n",
		       rows[i].step, rows[i].seconds, first, faults, pf, rate,
		       rows[i].ok ? rows[i].verified : "FAILED");
	}
}

int cli_demo_threads(const char *dir, uint64_t mem, unsigned nthreads)
{
	struct tdemo d = {
		.dir = dir, .mem = mem, .pages = mem / PS,
		.nthreads = nthreads,
	};
	struct row rows[4] = {
		{ .step = "1 fill + save", .first_ms = -1 },
		{ .step = "2 lazy restore", .first_ms = -1 },
		{ .step = "3 prefetched restore", .first_ms = -1 },
		{ .step = "4 corrupt page", .first_ms = -1 },
	};
	struct fc_ws ws = { 0 };
	int err, done = 0;

	snprintf(d.ws_path, sizeof(d.ws_path), "%s/ws.lmws", dir);
	err = step_fill_and_save(&d, &rows[done++]);
	if (!err)
		err = step_lazy(&d, &ws, &rows[done++]);
	fc_ws_free(&ws);
	if (!err)
		err = step_prefetch(&d, rows[1].faults, &rows[done++]);
	if (!err)
		err = step_corrupt(&d, &rows[done++]);
	print_table(rows, done);
	return err;
}
