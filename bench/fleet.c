/*
 * fleet.c - `lazymem bench fleet`: VMs restoring one snapshot from object
 * storage (src/store), with a round-trip time injected by the delaying
 * proxy (lm_net_proxy) between them and the store.
 *
 * The "VMs" are processes running plain threads over a lazymem region
 * (SIGBUS self-resolve), as `lazymem demo --no-kvm` does: this machine
 * has no /dev/kvm. Each reads its working set (recorded in the snapshot
 * as ws.lmws) and checks every word.
 * The working set is 10 % of the pages in runs of 64 pages at scattered
 * places (each run straddles two 256 KiB chunks: offset 17 pages).
 * "first_insn_ms" is then the time from the start of the restore to the
 * first page read back; "seconds" the time until the working set has been
 * read and checked.
 *
 * Modes, per RTT:
 *   lazy            1 VM: store source, working set prefetched first, the
 *                   rest in the background, a fresh cache;
 *   pull            1 VM: `snapshot pull` of the whole snapshot with the
 *                   same parallel requests, then a local lazy restore;
 *   shared-cache    N VMs at once through one cache;
 *   separate-cache  N VMs at once, a cache each.
 * bytes_fetched is what crossed the proxy (requests and answers). The
 * dedup ratio: 10 snapshots of one base memory, each with 8 pages of its
 * own, pushed to one bucket: non-zero chunks referenced / chunks uploaded.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/lazymem.h>

#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "fcproto/wsfile.h"
#include "net/net.h"
#include "store/source.h"
#include "store/store.h"
#include "store/local.h"
#include "store/url.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"

#define PS 4096ull
#define THREADS 4
#define MAX_VMS 16

struct fleet {
	uint64_t mem, pages;
	unsigned vms;
	const char *url;		/* http://HOST:PORT/BUCKET */
	struct store_url su;
	char work[64];
	struct fc_ws ws;
	uint64_t base_chunks;		/* distinct non-zero chunks of "base" */
};

/* The memory every VM was saved with: page p's words; a quarter zero. */
static uint64_t word_of(uint64_t page, uint64_t k, unsigned variant)
{
	uint64_t x = (page * 512 + k) * 0x9e3779b97f4a7c15ull + variant;

	x ^= x >> 31;
	return x * 0xbf58476d1ce4e5b9ull;
}

static bool page_zero(const struct fleet *f, uint64_t p)
{
	return p >= f->pages * 3 / 4;
}

static void fill(const struct fleet *f, uint8_t *m, unsigned variant)
{
	for (uint64_t p = 0; p < f->pages; p++) {
		uint64_t *w = (uint64_t *)(void *)(m + p * PS);

		if (page_zero(f, p))
			continue;
		/* a variant differs from the base in 8 pages of its own */
		bool own = variant && p % (f->pages / 8 | 1) == variant % 8 + 1 &&
			   p / (f->pages / 8 | 1) < 8;

		for (uint64_t k = 0; k < PS / 8; k++)
			w[k] = word_of(p, k, own ? variant : 0);
	}
}

/* ---- one VM ---- */

struct reader {
	const uint8_t *base;
	const uint64_t *pages;
	uint64_t n, bad, first_ns;
	pthread_t t;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	for (uint64_t i = 0; i < r->n; i++) {
		const volatile uint64_t *w = (const volatile uint64_t *)
			(const volatile void *)(r->base + r->pages[i] * PS);

		for (uint64_t k = 0; k < PS / 8; k++)
			r->bad += w[k] != word_of(r->pages[i], k, 0);
		if (!r->first_ns)
			r->first_ns = lm_now_ns();
	}
	return NULL;
}

struct vm_result {
	double first_ms, seconds;
	uint64_t bad;
	uint64_t chunks_fetched, chunks_twice, requests;	/* lazy modes */
	int err;
};

static int run_region(const struct fleet *f, struct lm_source *src,
		      uint64_t t0, struct vm_result *res)
{
	struct reader rd[THREADS];
	struct lm_region *r;
	uint64_t first = UINT64_MAX;
	struct lm_region_config c = {
		.name = "fleet-vm", .size = f->mem,
		.backing = LM_BACKING_MEMFD, .install = LM_INSTALL_CONTINUE,
		.delivery = LM_DELIVERY_SELF, .source = src,
	};
	int err = lm_region_create(&c, &r);

	if (err)
		return util_error(err, "%s", lm_last_error());
	/* the working set as page numbers, split between the threads */
	uint64_t *pg = malloc(f->ws.n * sizeof(*pg));

	if (!pg) {
		lm_region_destroy(r);
		return -ENOMEM;
	}
	for (size_t j = 0; j < f->ws.n; j++)
		pg[j] = f->ws.off[j] / PS;
	for (int i = 0; i < THREADS; i++) {
		rd[i] = (struct reader){ .base = lm_region_addr(r) };
		rd[i].pages = pg + f->ws.n * (size_t)i / THREADS;
		rd[i].n = f->ws.n * (size_t)(i + 1) / THREADS -
			  f->ws.n * (size_t)i / THREADS;
		pthread_create(&rd[i].t, NULL, reader_main, &rd[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(rd[i].t, NULL);
		res->bad += rd[i].bad;
		if (rd[i].first_ns && rd[i].first_ns < first)
			first = rd[i].first_ns;
	}
	res->seconds = (double)(lm_now_ns() - t0) / 1e9;
	res->first_ms = first == UINT64_MAX ? 0 : (double)(first - t0) / 1e6;
	free(pg);
	lm_region_destroy(r);
	return 0;
}

static int vm_lazy(const struct fleet *f, const char *url, const char *cache,
		   struct vm_result *res)
{
	struct store_source_opts o = { .cache_dir = cache };
	uint64_t t0 = lm_now_ns();
	struct lm_source *src;
	int err;

	o.http.parallel = 8;
	if ((err = store_source_open(url, &o, &src)))
		return err;
	err = run_region(f, src, t0, res);
	if (!err) {
		struct store_source_stats st;

		store_source_stats(src, &st);
		res->chunks_fetched = st.chunks_fetched;
		res->chunks_twice = st.chunks_twice;
		res->requests = st.requests;
	}
	lm_source_destroy(src);
	return err;
}

static int vm_pull(const struct fleet *f, const char *url, const char *dir,
		   struct vm_result *res)
{
	struct store_opts o = { 0 };
	struct store_pull_result pr;
	struct lm_snap_meta m;
	struct lm_source *src;
	uint64_t t0 = lm_now_ns();
	int err;

	o.http.parallel = 8;
	if ((err = store_pull(url, dir, &o, &pr)))
		return err;
	if (lm_snap_open(dir, &m) || lm_snap_source_open(dir, &m, &src))
		return util_error(-EIO, "%s", lm_last_error());
	lm_snap_meta_free(&m);
	err = run_region(f, src, t0, res);
	lm_source_destroy(src);
	return err;
}

/* ---- the proxy, in a process of its own ---- */

/*
 * The delaying proxy runs in a child process, so that this process stays
 * single-threaded when it forks the VMs (a fork with other threads
 * running is what ThreadSanitizer cannot follow, and an unsafe habit
 * anyway). The child publishes its address once and its byte count every
 * millisecond through shared memory.
 */
struct proxy_shm {
	_Atomic uint64_t bytes;
	atomic_int ready;		/* 1 up, -1 failed */
	char address[64];
};

struct proxy {
	pid_t pid;
	struct proxy_shm *shm;
};

static int proxy_start(struct proxy *p, const char *connect, uint64_t rtt_ns)
{
	p->shm = mmap(NULL, sizeof(*p->shm), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->shm == MAP_FAILED)
		return util_error(-errno, "proxy: %s", strerror(errno));
	memset(p->shm, 0, sizeof(*p->shm));
	fflush(NULL);
	p->pid = fork();
	if (p->pid == 0) {
		struct lm_net_proxy *px;

		if (lm_net_proxy_create("127.0.0.1:0", connect, rtt_ns, &px)) {
			atomic_store(&p->shm->ready, -1);
			_exit(1);
		}
		snprintf(p->shm->address, sizeof(p->shm->address), "%s",
			 lm_net_proxy_address(px));
		atomic_store(&p->shm->ready, 1);
		for (;;) {	/* until killed */
			atomic_store(&p->shm->bytes, lm_net_proxy_bytes(px));
			usleep(1000);
		}
	}
	while (!atomic_load(&p->shm->ready))
		usleep(1000);
	if (atomic_load(&p->shm->ready) < 0) {
		waitpid(p->pid, NULL, 0);
		return util_error(-EIO, "proxy to %s: could not start", connect);
	}
	return 0;
}

static uint64_t proxy_bytes(struct proxy *p)
{
	usleep(5000);	/* the child's last count is at most 1 ms old */
	return atomic_load(&p->shm->bytes);
}

static void proxy_stop(struct proxy *p)
{
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	munmap(p->shm, sizeof(*p->shm));
}

/* ---- one mode: its VMs as processes at once ---- */

struct row {
	const char *mode;
	uint64_t rtt_us;
	unsigned vms;
	double first_ms, seconds;
	uint64_t bytes;
	uint64_t chunks_fetched, chunks_twice, requests;	/* lazy, summed */
	bool verified;
};

static int run_mode(struct fleet *f, struct proxy *px, const char *mode,
		    unsigned n, uint64_t rtt_ns, struct row *row)
{
	struct vm_result *res = mmap(NULL, MAX_VMS * sizeof(*res),
				     PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char url[700], cmd[200];
	uint64_t b0 = proxy_bytes(px);
	pid_t pid[MAX_VMS];
	int err = 0;

	if (res == MAP_FAILED)
		return -errno;
	snprintf(url, sizeof(url), "http://%s/%s/base", px->shm->address,
		 f->su.bucket);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/cache* %s/pulled*", f->work, f->work);
	if (system(cmd))
		return util_error(-EIO, "cannot clear %s", f->work);
	fflush(NULL);
	for (unsigned i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			char cache[200], dir[200];
			int e;

			snprintf(cache, sizeof(cache), "%s/cache%u", f->work,
				 strcmp(mode, "separate-cache") ? 0 : i);
			snprintf(dir, sizeof(dir), "%s/pulled%u", f->work, i);
			e = !strcmp(mode, "pull") ? vm_pull(f, url, dir, &res[i]) :
			    vm_lazy(f, url, cache, &res[i]);
			if (e)
				fprintf(stderr, "lazymem: bench fleet: %s VM %u: %s\n",
					mode, i, util_last_error());
			res[i].err = e;
			_exit(e ? 1 : 0);
		}
	}
	row->mode = mode;
	row->rtt_us = rtt_ns / 1000;
	row->vms = n;
	row->verified = true;
	row->first_ms = 1e18;
	for (unsigned i = 0; i < n; i++) {
		int st;

		waitpid(pid[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) || res[i].err)
			err = util_error(-EIO, "bench fleet: %s VM %u failed", mode, i);
		row->verified &= !res[i].bad && !res[i].err;
		if (res[i].first_ms < row->first_ms)
			row->first_ms = res[i].first_ms;
		if (res[i].seconds > row->seconds)
			row->seconds = res[i].seconds;
		row->chunks_fetched += res[i].chunks_fetched;
		row->chunks_twice += res[i].chunks_twice;
		row->requests += res[i].requests;
	}
	row->bytes = proxy_bytes(px) - b0;
	munmap(res, MAX_VMS * sizeof(*res));
	return err;
}

/* ---- set-up: the snapshots ---- */

static int save_push(struct fleet *f, uint8_t *m, const char *name,
		     bool with_ws, struct store_push_result *pr)
{
	struct lm_snap_vcpu vc = { 0 };
	struct lm_snap_meta meta = { .page_size = PS, .mem_size = f->mem,
				     .nr_regions = 1, .nr_vcpus = 1, .vcpus = &vc };
	struct store_opts o = { 0 };
	char dir[200], path[300], url[700], why[300];
	int err;

	meta.regions[0] = (struct lm_snap_region){ 0, f->mem, 0 };
	snprintf(dir, sizeof(dir), "%s/%s", f->work, name);
	if (lm_snap_save(dir, &meta, m, NULL, NULL))
		return util_error(-EIO, "%s", lm_last_error());
	snprintf(path, sizeof(path), "%s/ws.lmws", dir);
	if (with_ws && fc_ws_write(path, &f->ws, why, sizeof(why)))
		return util_error(-EIO, "%s", why);
	snprintf(url, sizeof(url), "%s/%s", f->url, name);
	o.http.parallel = 8;
	err = store_push(dir, url, &o, pr);
	if (util_remove_tree(dir))
		return util_error(-EIO, "cannot remove %s", dir);
	return err;
}

static int setup(struct fleet *f, double *dedup)
{
	uint8_t *m = mmap(NULL, f->mem, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct store_push_result pr;
	uint64_t refs = 0, uploaded = 0, k = f->pages / 10;
	char name[32];
	int err;

	if (m == MAP_FAILED)
		return -errno;
	f->ws.page_size = PS;
	f->ws.n = 0;
	f->ws.off = malloc(k * sizeof(*f->ws.off));
	if (!f->ws.off)
		return -ENOMEM;
	/* 10 % of the pages in runs of 64 (256 KiB) at scattered places, as
	 * a guest's hot code and heap are; a page-scattered working set
	 * touches every chunk (docs/fleet.md, the chunk-size table) */
	for (uint64_t i = 0; f->ws.n < k; i++) {
		uint64_t runs = f->pages * 3 / 4 / 64;
		uint64_t start = ((i * 2654435761ull) % runs) * 64 + 17;

		for (uint64_t j = 0; j < 64 && f->ws.n < k; j++)
			if (start + j < f->pages * 3 / 4)
				f->ws.off[f->ws.n++] = (start + j) * PS;
	}
	/* 10 snapshots of one image: the base (the one the VMs restore,
	 * with its working set) and 9 variants, each 8 pages of its own */
	for (unsigned v = 0; v < 10; v++) {
		fill(f, m, v);
		snprintf(name, sizeof(name), v ? "dedup-%u" : "base", v);
		if ((err = save_push(f, m, name, v == 0, &pr)))
			goto out;
		refs += pr.chunks_total - pr.chunks_zero;
		uploaded += pr.chunks_new;
		if (!v)		/* pushed first, into an empty bucket */
			f->base_chunks = pr.chunks_new;
	}
	if (!uploaded) {
		err = util_error(-EEXIST, "bench fleet: the bucket of %s already "
				 "holds these chunks; give it a bucket of its "
				 "own (the dedup ratio counts uploads)", f->url);
		goto out;
	}
	*dedup = (double)refs / (double)uploaded;
out:
	munmap(m, f->mem);
	return err;
}

/* ---- the command ---- */

static int parse_rtts(const char *s, uint64_t *rtt, int max)
{
	char buf[256], *save = NULL;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == max || lm_net_parse_duration(!strcmp(t, "0") ? "0us" : t,
						       &rtt[n]) ||
		    rtt[n] > 1000000000ull)
			return -EINVAL;
		n++;
	}
	return n ? n : -EINVAL;
}

/* No --url: an nginx of our own on loopback (store/local.h, the
 * configuration the store tests use), bucket "fleet". 0, or 1 with the
 * reason printed. */
static int start_local_store(struct store_local *local, char *url,
			     size_t url_len, struct store_url *su)
{
	char why[512], full[300];

	if (store_local_start(local, why, sizeof(why))) {
		cli_fail("bench fleet: no --url given, and no local store: %s",
			 why);
		return 1;
	}
	snprintf(url, url_len, "%s/fleet", local->url);
	snprintf(full, sizeof(full), "%s/x", url);
	if (store_url_parse(full, su, why, sizeof(why))) {
		store_local_stop(local, false);
		cli_fail("bench fleet: %s", why);
		return 1;
	}
	fprintf(stderr, "bench fleet: store: nginx (WebDAV) at %s, in %s\n",
		local->url, local->dir);
	return 0;
}

int cmd_bench_fleet(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "mem", required_argument, NULL, 'm' },
		{ "vms", required_argument, NULL, 'n' },
		{ "rtt", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fleet f = { .mem = 256ull << 20, .vms = 4 };
	static const char *modes[] = { "lazy", "pull", "shared-cache",
				       "separate-cache" };
	uint64_t rtt[8] = { 0, 1000000, 10000000 };
	struct row rows[8 * 4] = { { 0 } };
	int nrtt = 3, nrows = 0, c, err = 0;
	char why[300], hostport[300], local_url[160];
	struct store_local local = { .pid = 0 };
	bool json = false;
	double dedup = 0;
	unsigned long v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			f.url = optarg;
			break;
		case 'm':
			if (cli_parse_size(optarg, &f.mem) || f.mem < (16u << 20) ||
			    f.mem % (1u << 20))
				return cli_usage_error("--mem '%s': expected a size of at least 16M, a multiple of 1M", optarg);
			break;
		case 'n':
			if (vm_opt_uint(optarg, 1, MAX_VMS, &v))
				return cli_usage_error("--vms '%s': expected 1 to %d", optarg, MAX_VMS);
			f.vms = (unsigned)v;
			break;
		case 'r':
			if ((nrtt = parse_rtts(optarg, rtt, 8)) < 0)
				return cli_usage_error("--rtt '%s': expected up to 8 durations like 0,1ms,10ms (at most 1s)", optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: %s [--url URL] [--mem 256M] [--vms 4] [--rtt 0,1ms,10ms] [--json]\n"
			       "VMs (plain-thread processes here: no /dev/kvm needed) restoring one\n"
			       "snapshot from object storage through the delaying proxy: lazy +\n"
			       "prefetch against pull-then-restore, N VMs through one cache against N\n"
			       "caches; and the dedup ratio of 10 snapshots of one image.\n\n"
			       "  --url URL    a WebDAV/S3 store and a bucket of its own: http://HOST:PORT/BUCKET\n"
			       "               (default: nginx with WebDAV started on loopback, as root)\n"
			       "  --mem SIZE   memory per VM (default 256M)\n"
			       "  --vms N      VMs in the cache modes (default 4)\n"
			       "  --rtt LIST   round-trip times added by the proxy (default 0,1ms,10ms)\n"
			       "  --json       one JSON object on stdout\n"
			       "  -h, --help   this text\n", argv[0]);
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind != argc)
		return cli_usage_error("%s: unexpected argument '%s' (see --help)", argv[0], argv[optind]);
	if (f.url) {
		char full[600];

		snprintf(full, sizeof(full), "%s/x", f.url);
		if (store_url_parse(full, &f.su, why, sizeof(why)))
			return cli_usage_error("--url: %s", why);
	} else if (start_local_store(&local, local_url, sizeof(local_url),
				     &f.su)) {
		return 1;
	} else {
		f.url = local_url;
	}
	f.pages = f.mem / PS;
	snprintf(f.work, sizeof(f.work), "/var/tmp/lazymem-fleet.XXXXXX");
	if (!mkdtemp(f.work)) {
		err = -errno;
		util_error(err, "bench fleet: mkdtemp %s: %s", f.work,
			   strerror(errno));
		f.work[0] = 0;
		goto out;
	}
	if ((err = setup(&f, &dedup)))
		goto out;
	snprintf(hostport, sizeof(hostport), "%s", f.su.host);
	if (!strchr(hostport, ':'))
		strcat(hostport, ":80");
	for (int i = 0; i < nrtt && !err; i++) {
		struct proxy px = { 0 };

		if ((err = proxy_start(&px, hostport, rtt[i])))
			break;
		for (int m = 0; m < 4 && !err; m++)
			err = run_mode(&f, &px, modes[m], m < 2 ? 1 : f.vms,
				       rtt[i], &rows[nrows++]);
		proxy_stop(&px);
	}
out:
	if (f.work[0] && util_remove_tree(f.work))
		fprintf(stderr, "lazymem: could not remove %s\n", f.work);
	free(f.ws.off);
	if (local.pid)
		store_local_stop(&local, false);
	if (err)
		return cli_fail("%s", util_last_error());
	if (json) {
		json_object *j = json_object_new_object(), *cfg = json_object_new_object(),
			    *a = json_object_new_array(), *r = json_object_new_array();

		json_object_object_add(j, "benchmark", json_object_new_string("fleet"));
		json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)f.mem));
		json_object_object_add(cfg, "vms", json_object_new_int((int)f.vms));
		for (int i = 0; i < nrtt; i++)
			json_object_array_add(r, json_object_new_int64((int64_t)(rtt[i] / 1000)));
		json_object_object_add(cfg, "rtt_us", r);
		json_object_object_add(cfg, "working_set", json_object_new_double(0.1));
		json_object_object_add(cfg, "vm", json_object_new_string("plain-thread processes (no /dev/kvm)"));
		json_object_object_add(j, "config", cfg);
		for (int i = 0; i < nrows; i++) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "mode", json_object_new_string(rows[i].mode));
			json_object_object_add(o, "rtt_us", json_object_new_int64((int64_t)rows[i].rtt_us));
			json_object_object_add(o, "vms", json_object_new_int((int)rows[i].vms));
			json_object_object_add(o, "first_insn_ms", json_object_new_double(rows[i].first_ms));
			json_object_object_add(o, "seconds", json_object_new_double(rows[i].seconds));
			json_object_object_add(o, "bytes_fetched", json_object_new_int64((int64_t)rows[i].bytes));
			if (strcmp(rows[i].mode, "pull")) {
				/* a chunk fetched twice through one cache shows
				 * here; retried requests only in "requests" */
				json_object_object_add(o, "chunks_fetched", json_object_new_int64((int64_t)rows[i].chunks_fetched));
				json_object_object_add(o, "chunks_twice", json_object_new_int64((int64_t)rows[i].chunks_twice));
				json_object_object_add(o, "requests", json_object_new_int64((int64_t)rows[i].requests));
			}
			json_object_object_add(o, "verified", json_object_new_boolean(rows[i].verified));
			json_object_array_add(a, o);
		}
		json_object_object_add(j, "results", a);
		json_object_object_add(j, "dedup_ratio", json_object_new_double(dedup));
		json_object_object_add(j, "base_chunks", json_object_new_int64((int64_t)f.base_chunks));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("%-15s %8s %4s %12s %10s %12s %s\n", "mode", "rtt", "vms",
		       "first page", "done", "fetched", "verified");
		for (int i = 0; i < nrows; i++)
			printf("%-15s %6lluus %4u %9.2f ms %8.3f s %8.1f MiB %s\n",
			       rows[i].mode, (unsigned long long)rows[i].rtt_us,
			       rows[i].vms, rows[i].first_ms, rows[i].seconds,
			       (double)rows[i].bytes / 1048576.0,
			       rows[i].verified ? "yes" : "NO");
		printf("dedup ratio of 10 snapshots of one image: %.2f\n", dedup);
	}
	for (int i = 0; i < nrows; i++)
		if (!rows[i].verified)
			return 1;
	return 0;
}
