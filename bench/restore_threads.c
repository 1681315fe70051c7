/*
 * restore_threads.c - "lazymem bench restore" where /dev/kvm cannot be
 * opened (or with --no-kvm): the same restore contenders with plain
 * threads standing in for vCPUs, plus the one a Firecracker user has by
 * default, the memory file mapped MAP_PRIVATE.
 *
 * A region filled with the guests' pattern (every word a function of its
 * offset and a generation) is saved as a snapshot (lm_snap_save), then
 * restored each way while N threads touch their share of the working set
 * (a scattered fraction of their slice, the same pages in the same order
 * in every mode) checking every word:
 *
 *   eager     all of memory.img read and checked against its hashes into
 *             plain memory, then the threads start (the baseline);
 *   lazy      a region (anonymous, UFFDIO_COPY, SIGBUS self-resolve on
 *             the touching thread) over the snapshot's checking source, with
 *             the background fill streaming the rest;
 *   prefetch  lazy, plus the working set recorded by an earlier lazy
 *             restore installed ahead by a thread reading its image;
 *   limit     as eager, but the clock starts once memory is in;
 *   mmap      memory.img mapped MAP_PRIVATE: the kernel's page cache,
 *             read-around and fault-around do the lazy loading; no hashes.
 *
 * memory.img holds byte N of memory at offset N (zero pages are holes,
 * which read as zeroes), so the mapping needs no translation.
 *
 * Each mode runs cold (POSIX_FADV_DONTNEED on the snapshot's files, and
 * drop_caches when allowed; the files' residency is measured with
 * mincore() before the run and a run is only called cold when memory.img
 * is less than 1% resident) and warm (the files read beforehand). Times
 * are from the restore call: to the threads being let go (the "first
 * instruction") and to the last thread done ("completion").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/lazymem.h>

#include "util/clock.h"
#include "cli/cli.h"
#include "fcproto/wsfile.h"
#include "vmm/guest_abi.h"
#include "bench.h"

#define PS 4096ull
#define GEN 3
#define PRIME 2654435761ull	/* the scatter: larger than any slice */
#define SEED 1
#define COLD_MAX 0.01		/* resident fraction still called cold */
#define PF_CHUNK 512		/* pages per read of the working-set image */

enum { M_EAGER, M_LAZY, M_PREFETCH, M_LIMIT, M_MMAP, NR_MODES };

/* The restore call's steps, timed one after the other; the prefetch
 * thread is started after the threads are let go (ctx_start_rest). */
enum { ST_META, ST_HASHES, ST_MEMORY, ST_PREFETCH, NR_STEPS };
static const char *const step_names[NR_STEPS] = {
	"meta", "hashes", "memory", "prefetch_thread",
};
static const char *const mode_names[NR_MODES] = {
	"eager", "lazy", "prefetch", "limit", "mmap",
};

/* The files of the snapshot directory the cache state applies to. */
static const char *const snap_files[] = {
	"meta.json", "memory.img", "pages.xxh", "ws.lmws",
	"ws.lmws.img/meta.json", "ws.lmws.img/memory.img",
	"ws.lmws.img/pages.xxh",
};
#define NR_SNAP_FILES (sizeof(snap_files) / sizeof(snap_files[0]))

struct trun {
	int mode;
	bool cold;		/* asked for */
	bool cold_ok;		/* and measured: memory.img < 1% resident */
	double resident[NR_SNAP_FILES];	/* before the run, -1 if absent */
	double first_ms, seconds;
	double step_ms[NR_STEPS];	/* each step of the restore call */
	uint64_t touched, words, mismatches, bad_word;
	uint64_t faults, pages_prefetched, pages_background;
	int rc;
	char err[256];
};

/* A stand-in vCPU: its slice, the pages it touches, what it found. */
struct worker {
	struct tctx *ctx;
	uint64_t first, n, k;	/* slice [first, first+n) pages, k touched */
	uint64_t *rec;		/* offsets touched, in order, or NULL */
	uint64_t touched, words, mismatches, bad_word, done_ns;
	bool failed;
	uint64_t fail_off;
	int fail_err;
	sigjmp_buf jmp;
	pthread_t thread;
};

/* One restore: what it holds, released in ctx_close. */
struct tctx {
	const struct bench_restore_threads *c;
	int mode;
	bool record;			/* the unmeasured recording run */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool go;
	const uint8_t *base;		/* where the workers read */
	uint64_t step_ns[NR_STEPS];	/* when each step ended */
	struct lm_snap_meta m;
	bool have_meta;
	struct lm_source *src;
	struct lm_region *r;
	void *map;			/* eager / limit memory, or the mmap */
	/* prefetch */
	pthread_t pf;
	bool pf_running;
	atomic_bool pf_stop;
	atomic_uint_fast64_t pf_pages;
	char pf_err[256];
};

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

static void check_page(struct worker *w, const uint8_t *base, uint64_t off)
{
	const volatile uint64_t *p =
		(const volatile uint64_t *)(const volatile void *)(base + off);

	for (uint64_t k = 0; k < PS / 8; k++)
		if (p[k] != lm_pattern(off + k * 8, GEN) && !w->mismatches++)
			w->bad_word = off + k * 8;
	w->words += PS / 8;
	w->touched++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct tctx *x = w->ctx;

	this_worker = w;
	pthread_mutex_lock(&x->lock);
	while (!x->go)
		pthread_cond_wait(&x->cond, &x->lock);
	pthread_mutex_unlock(&x->lock);
	if (!sigsetjmp(w->jmp, 1)) {
		for (uint64_t i = 0; i < w->k; i++) {
			uint64_t off = (w->first + (i * PRIME + SEED) % w->n) * PS;

			if (w->rec)
				w->rec[i] = off;
			check_page(w, x->base, off);
		}
	}
	w->done_ns = lm_now_ns();
	return NULL;
}

/* ---------------- the snapshot ---------------- */

static int save_snapshot(const struct bench_restore_threads *c)
{
	struct lm_snap_vcpu none = { 0 };
	struct lm_snap_meta m = {
		.version = LM_SNAP_VERSION, .page_size = PS,
		.mem_size = c->mem, .nr_regions = 1, .nr_vcpus = 1,
		.vcpus = &none,
		.workload = (char *)"{\"kind\":\"bench restore threads\"}",
	};
	uint64_t *mem;
	int err;

	m.regions[0] = (struct lm_snap_region){ .size = c->mem };
	mem = mmap(NULL, c->mem, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return cli_fail("bench restore: %llu MiB of memory: %s",
				(unsigned long long)(c->mem >> 20),
				strerror(errno));
	for (uint64_t i = 0; i < c->mem / 8; i++)
		mem[i] = lm_pattern(i * 8, GEN);
	err = lm_snap_save(c->dir, &m, mem, NULL, NULL);
	munmap(mem, c->mem);
	if (err)
		return cli_fail("bench restore: save: %s", lm_last_error());
	return 0;
}

static void path_in(char *buf, size_t len, const char *dir, const char *f)
{
	snprintf(buf, len, "%s/%s", dir, f);
}

/* ---------------- one restore, by mode ---------------- */

/* Every page of memory.img through the checking source into plain
 * memory, 2 MiB per read. */
static int load_all(struct tctx *x)
{
	const uint64_t chunk = 512 * PS;
	int err;

	x->map = mmap(NULL, x->c->mem, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (x->map == MAP_FAILED) {
		x->map = NULL;
		return -errno;
	}
	for (uint64_t off = 0; off < x->c->mem; off += chunk) {
		uint64_t n = x->c->mem - off < chunk ? x->c->mem - off : chunk;

		err = lm_source_read(x->src, off, (uint8_t *)x->map + off, n);
		if (err)
			return err;
	}
	x->base = x->map;
	return 0;
}

/*
 * Anonymous memory and UFFDIO_COPY: a process's own memory needs no
 * second view, and memfd + CONTINUE (the VM's RAM) measured 2-4x slower
 * here for the same restores (shmem page allocation plus the alias
 * write: lazy warm 0.42-0.89 s against 0.18-0.19 s, 256 MiB).
 */
static int open_region(struct tctx *x)
{
	struct lm_region_config rc = {
		.name = "bench-restore", .size = x->c->mem,
		.backing = LM_BACKING_ANON, .install = LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF, .source = x->src,
		.background = !x->record,
		/* started after the threads are let go: ctx_start_rest */
		.background_deferred = true,
		.on_fail = worker_failed,
	};
	int err = lm_region_create(&rc, &x->r);

	if (!err)
		x->base = lm_region_addr(x->r);
	return err;
}

/*
 * The prefetcher: the working set's offsets and its image (the pages'
 * content in first-touch order, a one-region snapshot of its own, so each
 * page is checked against its hash as it is read), read sequentially,
 * 16, 64, 256 and then 512 pages per read (short first reads: the first
 * pages are in before the threads reach them), each page installed at
 * its offset unless a thread got there first. Loading happens here, not
 * before the threads start, so prefetch starts as soon as lazy does.
 */
static int prefetch_load(struct tctx *x, struct fc_ws *ws,
			 struct lm_source **img)
{
	char path[4200], why[256];
	struct lm_snap_meta im;
	int err;

	path_in(path, sizeof(path), x->c->dir, "ws.lmws");
	if (fc_ws_load(path, x->c->mem, ws, why, sizeof(why))) {
		snprintf(x->pf_err, sizeof(x->pf_err), "%s", why);
		return -EINVAL;
	}
	path_in(path, sizeof(path), x->c->dir, "ws.lmws.img");
	err = lm_snap_open(path, &im);
	if (err) {
		snprintf(x->pf_err, sizeof(x->pf_err), "%s", lm_last_error());
		return err;
	}
	if (im.mem_size != ws->n * PS) {
		snprintf(x->pf_err, sizeof(x->pf_err), "working-set image %.150s: "
			 "%llu bytes for %zu pages", path,
			 (unsigned long long)im.mem_size, ws->n);
		err = -EINVAL;
	} else if ((err = lm_snap_source_open(path, &im, img))) {
		snprintf(x->pf_err, sizeof(x->pf_err), "%s", lm_last_error());
	}
	lm_snap_meta_free(&im);
	return err;
}

static void *prefetch_main(void *arg)
{
	struct tctx *x = arg;
	struct lm_source *img = NULL;
	struct fc_ws ws = { 0 };
	uint8_t *buf = malloc(PF_CHUNK * PS);
	size_t want = 16, k;

	if (!buf || prefetch_load(x, &ws, &img)) {
		if (!buf)
			snprintf(x->pf_err, sizeof(x->pf_err), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ws.n && !atomic_load(&x->pf_stop); i += k) {
		k = ws.n - i < want ? ws.n - i : want;
		want = want * 4 < PF_CHUNK ? want * 4 : PF_CHUNK;
		if (lm_source_read(img, i * PS, buf, k * PS)) {
			snprintf(x->pf_err, sizeof(x->pf_err),
				 "working-set image, pages %zu-%zu: %s", i,
				 i + k - 1, lm_last_error());
			break;	/* the threads fault the rest in */
		}
		for (size_t j = 0; j < k && !atomic_load(&x->pf_stop); j++) {
			struct lm_install_run run = { 0 };

			lm_region_install_run(x->r, ws.off[i + j], 1,
					      buf + j * PS,
					      LM_ORIGIN_BACKGROUND, &run);
			atomic_fetch_add(&x->pf_pages, run.nr_installed);
		}
	}
out:
	free(buf);
	if (img)
		lm_source_destroy(img);
	fc_ws_free(&ws);
	return NULL;
}

/* The restore call itself: from here to x->base the clock runs. */
static int map_file(struct tctx *x, char *why, size_t len)
{
	char path[4200];
	int err, fd;

	path_in(path, sizeof(path), x->c->dir, "memory.img");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, len, "%.200s: %.40s", path, strerror(-err));
		return err;
	}
	x->map = mmap(NULL, x->c->mem, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		      fd, (off_t)x->m.regions[0].offset);
	err = x->map == MAP_FAILED ? -errno : 0;
	close(fd);
	if (err) {
		x->map = NULL;
		snprintf(why, len, "mmap %.200s: %.40s", path, strerror(-err));
		return err;
	}
	x->base = x->map;
	return 0;
}

/*
 * The restore call itself: from here to x->base the clock runs. Each
 * step's end is noted (x->step_ns), so the time to the first touch can be
 * told apart: meta.json, the checking source (pages.xxh opened, its
 * blocks read when first needed), the memory (region, full read or
 * mapping); the prefetch and fill threads come after the first touch
 * (ctx_start_rest).
 */
static int ctx_restore(struct tctx *x, char *why, size_t len)
{
	int err = lm_snap_open(x->c->dir, &x->m);

	x->step_ns[ST_META] = lm_now_ns();
	if (err) {
		snprintf(why, len, "%s", lm_last_error());
		return err;
	}
	x->have_meta = true;
	if (x->mode == M_MMAP) {
		err = map_file(x, why, len);
		x->step_ns[ST_HASHES] = x->step_ns[ST_META];
		x->step_ns[ST_MEMORY] = x->step_ns[ST_PREFETCH] = lm_now_ns();
		return err;
	}
	err = lm_snap_source_open(x->c->dir, &x->m, &x->src);
	x->step_ns[ST_HASHES] = lm_now_ns();
	if (!err)
		err = x->mode == M_EAGER || x->mode == M_LIMIT ?
		      load_all(x) : open_region(x);
	x->step_ns[ST_MEMORY] = x->step_ns[ST_PREFETCH] = lm_now_ns();
	if (err)
		snprintf(why, len, "%s", lm_last_error());
	return err;
}

/*
 * The rest of the restore call, after the threads are let go: the
 * prefetch thread, then the background fill's. Nothing the threads touch
 * needs either (a page not installed yet is faulted in), so they need not
 * wait for their creation (0.15-1.85 ms here for the prefetch thread, a
 * thread's stack and clone, when it came first; about 0.1 ms for the
 * fill's, inside region creation before lm_region_config's
 * background_deferred); the prefetcher's first install still comes well
 * before the threads reach most of the working set.
 */
static int ctx_start_rest(struct tctx *x, char *why, size_t len)
{
	int err = 0;

	if (x->mode == M_PREFETCH) {
		err = -pthread_create(&x->pf, NULL, prefetch_main, x);
		x->pf_running = !err;
		x->step_ns[ST_PREFETCH] = lm_now_ns();
		if (err)
			snprintf(why, len, "starting the prefetch thread: %s",
				 strerror(-err));
	}
	if (!err && x->r && !x->record &&
	    (err = lm_region_background_start(x->r)))
		snprintf(why, len, "%s", lm_last_error());
	return err;
}

static void ctx_close(struct tctx *x)
{
	if (x->pf_running) {
		atomic_store(&x->pf_stop, true);
		pthread_join(x->pf, NULL);
	}
	if (x->r)
		lm_region_destroy(x->r);
	if (x->src)
		lm_source_destroy(x->src);
	if (x->map)
		munmap(x->map, x->c->mem);
	if (x->have_meta)
		lm_snap_meta_free(&x->m);
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->cond);
}

/* ---------------- the working set, recorded ---------------- */

/*
 * The pages the workers touched, their lists interleaved (first touch
 * first, as nearly as it can be rebuilt), written as ws.lmws; their
 * content, in the same order, as the one-region snapshot ws.lmws.img
 * (read from the region, where each page was checked on its way in).
 */
static int record_ws(const struct tctx *x, const struct worker *w)
{
	const struct bench_restore_threads *c = x->c;
	struct lm_snap_vcpu none = { 0 };
	struct lm_snap_meta im = {
		.version = LM_SNAP_VERSION, .page_size = PS, .nr_regions = 1,
		.nr_vcpus = 1, .vcpus = &none,
		.workload = (char *)"{\"kind\":\"working-set image\"}",
	};
	struct fc_ws ws = { .page_size = PS };
	char path[4200], why[256];
	uint64_t total = 0;
	uint8_t *buf;
	int err;

	for (unsigned i = 0; i < c->threads; i++)
		total += w[i].touched;
	ws.off = malloc((total ? total : 1) * sizeof(*ws.off));
	buf = malloc((total ? total : 1) * PS);
	if (!ws.off || !buf) {
		free(ws.off);
		free(buf);
		return cli_fail("bench restore: out of memory");
	}
	for (uint64_t j = 0; ws.n < total; j++)
		for (unsigned i = 0; i < c->threads; i++)
			if (j < w[i].touched) {
				memcpy(buf + ws.n * PS, x->base + w[i].rec[j], PS);
				ws.off[ws.n++] = w[i].rec[j];
			}
	path_in(path, sizeof(path), c->dir, "ws.lmws");
	err = fc_ws_write(path, &ws, why, sizeof(why));
	if (err) {
		err = cli_fail("bench restore: %s", why);
	} else {
		im.mem_size = ws.n * PS;
		im.regions[0] = (struct lm_snap_region){ .size = im.mem_size };
		path_in(path, sizeof(path), c->dir, "ws.lmws.img");
		if (lm_snap_save(path, &im, buf, NULL, NULL))
			err = cli_fail("bench restore: working-set image %s: %s",
				       path, lm_last_error());
	}
	free(ws.off);
	free(buf);
	return err;
}

/* ---------------- one run ---------------- */

static int start_workers(struct tctx *x, struct worker *w, unsigned *started)
{
	const struct bench_restore_threads *c = x->c;
	uint64_t pages = c->mem / PS;

	for (unsigned i = 0; i < c->threads; i++) {
		uint64_t first = pages * i / c->threads;
		uint64_t n = pages * (i + 1) / c->threads - first;
		uint64_t k = (uint64_t)((double)n * c->ws);

		w[i] = (struct worker){
			.ctx = x, .first = first, .n = n, .k = k ? k : 1,
		};
		if (x->record) {
			w[i].rec = malloc(w[i].k * sizeof(*w[i].rec));
			if (!w[i].rec)
				return -ENOMEM;
		}
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]))
			return -EAGAIN;
		(*started)++;
	}
	return 0;
}

/* What the workers found, and whether the run is verified. */
static void collect(struct tctx *x, struct worker *w, unsigned n,
		    struct trun *b)
{
	uint64_t expect = 0, off = 0;
	int rerr = 0;

	for (unsigned i = 0; i < n; i++) {
		expect += w[i].k;
		b->touched += w[i].touched;
		b->words += w[i].words;
		if (w[i].mismatches && !b->mismatches)
			b->bad_word = w[i].bad_word;
		b->mismatches += w[i].mismatches;
		if (w[i].failed && !b->rc) {
			b->rc = w[i].fail_err;
			snprintf(b->err, sizeof(b->err), "thread %u: page at "
				 "offset 0x%llx cannot be fetched: %s", i,
				 (unsigned long long)w[i].fail_off,
				 strerror(-w[i].fail_err));
		}
	}
	if (x->r) {
		struct lm_stats st;

		lm_region_stats(x->r, &st);
		b->faults = st.faults[LM_ORIGIN_SIGBUS];
		b->pages_background = st.pages_background;
		rerr = lm_region_error(x->r, &off);
	}
	b->pages_prefetched = atomic_load(&x->pf_pages);
	if (!b->rc && rerr) {
		b->rc = rerr;
		snprintf(b->err, sizeof(b->err), "page at offset 0x%llx "
			 "failed: %s", (unsigned long long)off, strerror(-rerr));
	}
	if (!b->rc && x->pf_err[0]) {
		b->rc = -EIO;
		snprintf(b->err, sizeof(b->err), "prefetch: %.200s", x->pf_err);
	}
	if (!b->rc && b->mismatches) {
		b->rc = -EBADMSG;
		snprintf(b->err, sizeof(b->err), "%llu words wrong, the first "
			 "at offset 0x%llx", (unsigned long long)b->mismatches,
			 (unsigned long long)b->bad_word);
	}
	if (!b->rc && b->touched != expect) {
		b->rc = -EIO;
		snprintf(b->err, sizeof(b->err), "%llu pages touched, %llu "
			 "expected", (unsigned long long)b->touched,
			 (unsigned long long)expect);
	}
}

/*
 * The workers are created first and wait, as a VM's vCPU threads exist
 * before its memory does; then the clock starts, the restore runs, and
 * they are let go at once (an error: let go with nothing to touch).
 */
static int run_one(const struct bench_restore_threads *c, int mode,
		   bool record, struct trun *b)
{
	struct tctx x = {
		.c = c, .mode = mode, .record = record,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct worker *w = calloc(c->threads, sizeof(*w));
	uint64_t t0, t1, tend = 0;
	unsigned started = 0;
	int err;

	if (!w)
		return cli_fail("bench restore: out of memory");
	b->mode = mode;
	err = start_workers(&x, w, &started);
	if (err)
		snprintf(b->err, sizeof(b->err), "starting %u threads: %s",
			 c->threads, strerror(-err));
	t0 = lm_now_ns();
	if (!err)
		err = ctx_restore(&x, b->err, sizeof(b->err));
	if (mode == M_LIMIT)
		t0 = lm_now_ns();	/* the limit: memory in before the clock */
	t1 = lm_now_ns();
	pthread_mutex_lock(&x.lock);
	for (unsigned i = 0; err && i < started; i++)
		w[i].k = 0;
	x.go = true;
	pthread_cond_broadcast(&x.cond);
	pthread_mutex_unlock(&x.lock);
	if (!err)
		err = ctx_start_rest(&x, b->err, sizeof(b->err));
	for (unsigned i = 0; i < started; i++) {
		pthread_join(w[i].thread, NULL);
		tend = BENCH_MAX(tend, w[i].done_ns);
	}
	b->rc = err;
	b->first_ms = (double)(t1 - t0) / 1e6;
	for (int s = 0; !err && mode != M_LIMIT && s < ST_PREFETCH; s++)
		b->step_ms[s] = (double)(x.step_ns[s] -
				 (s ? x.step_ns[s - 1] : t0)) / 1e6;
	/* the prefetch thread's start counts from the let-go */
	if (!err && mode == M_PREFETCH)
		b->step_ms[ST_PREFETCH] =
			(double)(x.step_ns[ST_PREFETCH] - t1) / 1e6;
	b->seconds = (double)(tend - t0) / 1e9;
	if (!err)
		collect(&x, w, started, b);
	if (!b->rc && record)
		b->rc = record_ws(&x, w) ? -EIO : 0;
	ctx_close(&x);
	for (unsigned i = 0; i < c->threads; i++)
		free(w[i].rec);
	free(w);
	return b->rc;
}

/* ---------------- the page cache ---------------- */

static void cache_prepare(const struct bench_restore_threads *c, bool cold,
			  bool can_drop, struct trun *b)
{
	char path[4200], why[256];

	for (size_t i = 0; i < NR_SNAP_FILES; i++) {
		path_in(path, sizeof(path), c->dir, snap_files[i]);
		if (cold)
			bench_file_drop(path);
		else
			bench_file_warm(path);
	}
	if (cold && can_drop)
		bench_drop_caches(why, sizeof(why));
	b->cold = cold;
	b->cold_ok = cold;
	for (size_t i = 0; i < NR_SNAP_FILES; i++) {
		path_in(path, sizeof(path), c->dir, snap_files[i]);
		if (bench_file_resident(path, &b->resident[i]))
			b->resident[i] = -1;
		else if (b->resident[i] >= COLD_MAX)
			b->cold_ok = false;
	}
}

static const char *cache_name(const struct trun *b)
{
	return !b->cold ? "warm" : b->cold_ok ? "cold" : "not-cold";
}

static void print_resident(const struct trun *b)
{
	fprintf(stderr, "  %-8s page cache %s: resident before the run:",
		mode_names[b->mode], cache_name(b));
	for (size_t i = 0; i < NR_SNAP_FILES; i++)
		if (b->resident[i] >= 0)
			fprintf(stderr, " %s %.1f%%", snap_files[i],
				b->resident[i] * 100);
	fprintf(stderr, "\n");
}

/* ---------------- output ---------------- */

static json_object *run_json(const struct trun *b)
{
	json_object *o = json_object_new_object(),
		    *res = json_object_new_object(),
		    *steps = json_object_new_object();

	json_object_object_add(o, "mode", json_object_new_string(mode_names[b->mode]));
	json_object_object_add(o, "cache", json_object_new_string(cache_name(b)));
	for (size_t i = 0; i < NR_SNAP_FILES; i++)
		if (b->resident[i] >= 0)
			json_object_object_add(res, snap_files[i],
					       json_object_new_double(b->resident[i]));
	json_object_object_add(o, "resident_before", res);
	json_object_object_add(o, "first_instruction_ms", json_object_new_double(b->first_ms));
	for (int s = 0; s < NR_STEPS; s++)
		json_object_object_add(steps, step_names[s], json_object_new_double(b->step_ms[s]));
	json_object_object_add(o, "restore_steps_ms", steps);
	json_object_object_add(o, "seconds", json_object_new_double(b->seconds));
	json_object_object_add(o, "pages_touched", json_object_new_int64((int64_t)b->touched));
	json_object_object_add(o, "words_checked", json_object_new_int64((int64_t)b->words));
	json_object_object_add(o, "pages_faulted", json_object_new_int64((int64_t)b->faults));
	json_object_object_add(o, "pages_prefetched", json_object_new_int64((int64_t)b->pages_prefetched));
	json_object_object_add(o, "pages_background", json_object_new_int64((int64_t)b->pages_background));
	json_object_object_add(o, "verified", json_object_new_boolean(!b->rc));
	if (b->rc)
		json_object_object_add(o, "error", json_object_new_string(b->err));
	return o;
}

static int write_json(const struct bench_restore_threads *c,
		      const struct trun *runs, int nruns, bool can_cold,
		      const char *cold_why, bool can_drop)
{
	json_object *root = json_object_new_object(),
		    *cfg = json_object_new_object(),
		    *arr = json_object_new_array();
	const char *text;
	int status = 0;

	json_object_object_add(root, "benchmark", json_object_new_string("restore"));
	json_object_object_add(cfg, "guest", json_object_new_string("threads"));
	json_object_object_add(cfg, "why_not_kvm", json_object_new_string(c->why));
	json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)c->mem));
	json_object_object_add(cfg, "ws", json_object_new_double(c->ws));
	json_object_object_add(cfg, "threads", json_object_new_int64(c->threads));
	json_object_object_add(cfg, "page_size", json_object_new_int64((int64_t)PS));
	json_object_object_add(cfg, "host_cpus", json_object_new_int64(bench_ncpus()));
	json_object_object_add(cfg, "region", json_object_new_string("anon, copy, SIGBUS self-resolve"));
	json_object_object_add(cfg, "background_fill", json_object_new_boolean(true));
	json_object_object_add(cfg, "cold_cache", json_object_new_boolean(can_cold));
	if (!can_cold)
		json_object_object_add(cfg, "cold_cache_why", json_object_new_string(cold_why));
	json_object_object_add(cfg, "drop_caches", json_object_new_boolean(can_drop));
	json_object_object_add(root, "config", cfg);
	for (int i = 0; i < nruns; i++)
		json_object_array_add(arr, run_json(&runs[i]));
	json_object_object_add(root, "results", arr);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
	if (c->json)
		puts(text);
	if (c->json_out) {
		FILE *f = fopen(c->json_out, "w");

		if (!f || fprintf(f, "%s\n", text) < 0)
			status = cli_fail("bench restore: %s: %s", c->json_out,
					  strerror(errno));
		if (f)
			fclose(f);
	}
	json_object_put(root);
	return status;
}

static void print_goals(const struct trun *set)
{
	const struct trun *p = &set[M_PREFETCH], *mm = &set[M_MMAP];
	const char *cn = cache_name(p);
	double pm = mm->seconds > 0 ? p->seconds / mm->seconds : 0;
	bool ok = !p->rc && !mm->rc;

	printf("  %s: prefetch / mmap, completion             %6.2f  (goal <= 1.00: %s)\n",
	       cn, pm, ok && pm <= 1.0 ? "met" : "MISSED");
	printf("  %s: first touch, prefetch vs mmap (ms)  %6.2f vs %.2f  (goal: no later: %s)\n",
	       cn, p->first_ms, mm->first_ms,
	       ok && p->first_ms <= mm->first_ms ? "met" : "MISSED");
}

static void print_table(const struct bench_restore_threads *c,
			const struct trun *runs, int nruns, bool can_cold,
			bool can_drop, const char *cold_why)
{
	printf("restore of %llu MiB on plain threads (no KVM: %s), %u thread%s, "
	       "working set %.0f%% touched (scattered, every word checked), "
	       "pages of 4 KiB, %d host CPUs; lazy modes: anonymous region, "
	       "UFFDIO_COPY, SIGBUS self-resolve, background fill\n",
	       (unsigned long long)(c->mem >> 20), c->why, c->threads,
	       c->threads == 1 ? "" : "s", c->ws * 100, bench_ncpus());
	if (!can_cold)
		printf("cold page cache: not measured: %s\n", cold_why);
	else if (!can_drop)
		printf("cold page cache: POSIX_FADV_DONTNEED on the snapshot's "
		       "files only (%s)\n", cold_why);
	else
		printf("cold page cache: POSIX_FADV_DONTNEED on the snapshot's "
		       "files and drop_caches, checked with mincore()\n");
	printf("%-9s %-8s %13s %9s %8s %7s %8s %10s %9s\n", "mode", "cache",
	       "first-touch ms", "seconds", "x eager", "x mmap", "faulted",
	       "prefetched", "verified");
	for (int i = 0; i < nruns; i++) {
		const struct trun *b = &runs[i], *set = b - b->mode;
		double e = set[M_EAGER].seconds, m = set[M_MMAP].seconds;

		if (b->rc) {
			printf("%-9s %-8s FAILED: %s\n", mode_names[b->mode],
			       cache_name(b), b->err);
			continue;
		}
		printf("%-9s %-8s %13.3f %9.3f %8.2f %7.2f %8llu %10llu %9s\n",
		       mode_names[b->mode], cache_name(b), b->first_ms,
		       b->seconds, e > 0 ? b->seconds / e : 0,
		       m > 0 ? b->seconds / m : 0,
		       (unsigned long long)b->faults,
		       (unsigned long long)b->pages_prefetched, "yes");
	}
	printf("\nto the first touch, step by step (ms): meta.json; the "
	       "checking source (pages.xxh); the memory; then, after the "
	       "threads are let go, the prefetch thread's start\n");
	for (int i = 0; i < nruns; i++) {
		const struct trun *b = &runs[i];

		if (b->rc || b->mode == M_LIMIT || b->mode == M_EAGER)
			continue;
		printf("%-9s %-8s", mode_names[b->mode], cache_name(b));
		for (int s = 0; s < NR_STEPS; s++)
			printf(" %s %.3f", step_names[s], b->step_ms[s]);
		printf("\n");
	}
	printf("\ngoals (issue 12):\n");
	for (int base = 0; base < nruns; base += NR_MODES)
		print_goals(&runs[base]);
}

/* ---------------- the command ---------------- */

int bench_restore_threads(const struct bench_restore_threads *c)
{
	struct trun runs[2 * NR_MODES], rec = { 0 };
	char cold_why[256] = "";
	bool can_cold = c->want_cold, can_drop = false, all_ok = true;
	int nruns = 0, status;

	if (!c->json)
		fprintf(stderr, "no /dev/kvm (%s): plain threads stand in for "
			"vCPUs\nsaving %llu MiB to %s ...\n", c->why,
			(unsigned long long)(c->mem >> 20), c->dir);
	status = save_snapshot(c);
	if (status)
		return status;
	/* The working set, recorded by one unmeasured lazy restore. */
	if (run_one(c, M_LAZY, true, &rec))
		return cli_fail("bench restore: recording the working set: %s",
				rec.err);
	if (c->want_cold)
		can_drop = !bench_drop_caches(cold_why, sizeof(cold_why));
	else
		snprintf(cold_why, sizeof(cold_why), "not asked for (--cache warm)");
	for (int cache = 0; cache < 2; cache++) {
		if (cache == 0 && !can_cold)
			continue;
		for (int m = 0; m < NR_MODES; m++) {
			struct trun *b = &runs[nruns++];

			memset(b, 0, sizeof(*b));
			b->mode = m;
			cache_prepare(c, cache == 0, can_drop, b);
			if (!c->json)
				print_resident(b);
			if (run_one(c, m, false, b))
				all_ok = false;
		}
	}
	if (c->json || c->json_out)
		status = write_json(c, runs, nruns, can_cold, cold_why, can_drop);
	if (!c->json)
		print_table(c, runs, nruns, can_cold, can_drop, cold_why);
	if (status)
		return status;
	return all_ok ? 0 : 1;
}
