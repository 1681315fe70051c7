/*
 * store_chunks.c - `lazymem bench store-chunks IMAGE --url URL --via URL`:
 * the measurements the store's chunk size and compression level were
 * chosen by (docs/fleet.md).
 *
 * IMAGE (a memory image, any file whose size is a multiple of 4 KiB) is
 * saved as a snapshot; then for chunks of 64 KiB, 256 KiB and 1 MiB:
 *   - push side: SHA-256 + zstd of every chunk on one thread (MB/s of
 *     memory) and the stored size over the non-zero memory, at zstd
 *     levels 1 and 3;
 *   - it is pushed to --url (nginx, directly) under a bucket of its own;
 *   - a lazy restore through --via (the same store behind the delaying
 *     proxy, e.g. `lazymem proxy --rtt 10ms`): 8 plain threads read a
 *     scattered 10 % of the pages, each once, over a fresh cache, no
 *     prefetch: time, chunks and bytes fetched;
 *   - an eager pull through --via: time and throughput.
 * Every page read is compared with IMAGE.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/lazymem.h>

#include "cli/cli.h"
#include "store/chunk.h"
#include "store/source.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"

#define PS 4096ull
#define THREADS 8

struct reader {
	const uint8_t *base, *ref;
	const uint64_t *pages;
	uint64_t n, bad;
	pthread_t t;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	for (uint64_t i = 0; i < r->n; i++) {
		uint64_t p = r->pages[i];

		r->bad += memcmp((const void *)(r->base + p * PS),
				 r->ref + p * PS, PS) != 0;
	}
	return NULL;
}

struct row {
	uint64_t chunk;
	double cpu_mbs[2], ratio[2];	/* levels 1 and 3 */
	double lazy_s, pull_s, pull_mibs;
	uint64_t lazy_chunks, lazy_bytes, pull_bytes, bad;
};

static void pack_speed(const uint8_t *img, uint64_t size, uint64_t cs,
		       int level, double *mbs, double *ratio)
{
	size_t bound = store_chunk_bound(cs), len;
	uint8_t *out = malloc(bound), h[STORE_HASH_LEN];
	uint64_t stored = 0, nonzero = 0, t0 = lm_process_cpu_ns();
	enum store_comp comp;

	for (uint64_t off = 0; out && off < size; off += cs) {
		uint64_t n = size - off < cs ? size - off : cs;

		if (store_is_zero(img + off, n))
			continue;
		store_sha256(img + off, n, h);
		store_chunk_pack(img + off, n, level, out, bound, &len, &comp);
		stored += len;
		nonzero += n;
	}
	*mbs = (double)nonzero / 1e6 /
	       ((double)(lm_process_cpu_ns() - t0) / 1e9);
	*ratio = nonzero ? (double)stored / (double)nonzero : 0;
	free(out);
}

static int lazy_ws(const char *url, const uint8_t *img, uint64_t size,
		   const char *cache, struct row *row)
{
	struct store_source_opts o = { .cache_dir = cache, .no_prefetch = true };
	uint64_t npages = size / PS, k = npages / 10, *pages, t0;
	struct store_source_stats st;
	struct reader rd[THREADS];
	struct lm_source *src;
	struct lm_region *r;
	int err;

	o.http.parallel = 8;
	pages = malloc(k * sizeof(*pages));
	if (!pages)
		return -ENOMEM;
	for (uint64_t i = 0; i < k; i++)	/* scattered, each once */
		pages[i] = (i * 2654435761ull) % npages;
	t0 = lm_now_ns();
	if ((err = store_source_open(url, &o, &src))) {
		free(pages);
		return err;
	}
	struct lm_region_config c = {
		.name = "bench-store", .size = size,
		.backing = LM_BACKING_MEMFD, .install = LM_INSTALL_CONTINUE,
		.delivery = LM_DELIVERY_SELF, .source = src,
	};
	if ((err = lm_region_create(&c, &r))) {
		lm_source_destroy(src);
		free(pages);
		return util_error(err, "%s", lm_last_error());
	}
	for (int i = 0; i < THREADS; i++) {
		rd[i] = (struct reader){
			.base = lm_region_addr(r), .ref = img,
			.pages = pages + k * (uint64_t)i / THREADS,
			.n = k * (uint64_t)(i + 1) / THREADS -
			     k * (uint64_t)i / THREADS,
		};
		pthread_create(&rd[i].t, NULL, reader_main, &rd[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(rd[i].t, NULL);
		row->bad += rd[i].bad;
	}
	row->lazy_s = (double)(lm_now_ns() - t0) / 1e9;
	store_source_stats(src, &st);
	row->lazy_chunks = st.chunks_fetched;
	row->lazy_bytes = st.bytes_fetched;
	lm_region_destroy(r);
	lm_source_destroy(src);
	free(pages);
	return 0;
}

static int one_size(const char *snap, const char *url, const char *via,
		    const uint8_t *img, uint64_t size, struct row *row)
{
	struct store_opts o = { .chunk_size = row->chunk };
	struct store_push_result pr;
	struct store_pull_result lr;
	char u[512], v[512], dir[600], cache[600];
	int err;

	pack_speed(img, size, row->chunk, 1, &row->cpu_mbs[0], &row->ratio[0]);
	pack_speed(img, size, row->chunk, 3, &row->cpu_mbs[1], &row->ratio[1]);
	snprintf(u, sizeof(u), "%s/bench-%llu/snap", url,
		 (unsigned long long)(row->chunk >> 10));
	snprintf(v, sizeof(v), "%s/bench-%llu/snap", via,
		 (unsigned long long)(row->chunk >> 10));
	o.http.parallel = 8;
	if ((err = store_push(snap, u, &o, &pr)))
		return err;
	snprintf(cache, sizeof(cache), "%s.cache-%llu", snap,
		 (unsigned long long)row->chunk);
	if ((err = lazy_ws(v, img, size, cache, row)))
		return err;
	snprintf(dir, sizeof(dir), "%s.pulled-%llu", snap,
		 (unsigned long long)row->chunk);
	if ((err = store_pull(v, dir, &o, &lr)))
		return err;
	row->pull_s = lr.seconds;
	row->pull_bytes = lr.bytes_fetched;
	row->pull_mibs = lr.fetch_seconds > 0 ?
			 (double)lr.bytes_fetched / 1048576.0 / lr.fetch_seconds : 0;
	return 0;
}

int cmd_bench_store_chunks(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "via", required_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *via = NULL;
	struct row rows[3] = { { .chunk = 64u << 10 }, { .chunk = 256u << 10 },
			       { .chunk = 1u << 20 } };
	struct lm_snap_vcpu vc = { 0 };
	struct lm_snap_meta m = { .page_size = PS, .nr_regions = 1,
				  .nr_vcpus = 1, .vcpus = &vc };
	char snap[] = "/var/tmp/lazymem-bench-store.XXXXXX";
	bool json = false;
	struct stat st;
	uint8_t *img;
	int c, fd;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'u')
			url = optarg;
		else if (c == 'v')
			via = optarg;
		else if (c == 'j')
			json = true;
		else if (c == 'h') {
			printf("usage: %s IMAGE --url URL --via URL [--json]\n"
			       "Measure chunk sizes 64k, 256k, 1M on a memory image: SHA-256 +\n"
			       "zstd speed and ratio (levels 1, 3), a lazy restore of a scattered\n"
			       "10%% working set and an eager pull through --via.\n\n"
			       "  --url URL    the store (http://HOST:PORT/PREFIX) to push to\n"
			       "  --via URL    the same store behind a delaying proxy\n"
			       "  --json       one JSON object on stdout\n"
			       "  -h, --help   this text\n", argv[0]);
			return 0;
		} else
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
	}
	if (optind != argc - 1 || !url || !via)
		return cli_usage_error("%s: expected IMAGE, --url and --via (see --help)", argv[0]);
	fd = open(argv[optind], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || !st.st_size || st.st_size % (off_t)PS)
		return cli_fail("%s: not a readable file of a multiple of 4 KiB", argv[optind]);
	img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED || !mkdtemp(snap))
		return cli_fail("%s: %s", argv[optind], strerror(errno));
	m.mem_size = (uint64_t)st.st_size;
	m.regions[0] = (struct lm_snap_region){ 0, m.mem_size, 0 };
	strcat(snap, "/snap");
	if (lm_snap_save(snap, &m, img, NULL, NULL))
		return cli_fail("%s", lm_last_error());
	for (int i = 0; i < 3; i++)
		if (one_size(snap, url, via, img, m.mem_size, &rows[i]))
			return cli_fail("bench store-chunks: %s", util_last_error());
	if (json) {
		json_object *j = json_object_new_object(), *a = json_object_new_array();

		json_object_object_add(j, "benchmark", json_object_new_string("store-chunks"));
		json_object_object_add(j, "mem", json_object_new_int64((int64_t)m.mem_size));
		for (int i = 0; i < 3; i++) {
			json_object *o = json_object_new_object();
			struct row *r = &rows[i];

#define D(k, v) json_object_object_add(o, k, json_object_new_double(v))
#define I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
			I("chunk", r->chunk);
			D("pack_mb_s_l1", r->cpu_mbs[0]);
			D("ratio_l1", r->ratio[0]);
			D("pack_mb_s_l3", r->cpu_mbs[1]);
			D("ratio_l3", r->ratio[1]);
			D("lazy_ws10_seconds", r->lazy_s);
			I("lazy_ws10_chunks", r->lazy_chunks);
			I("lazy_ws10_bytes", r->lazy_bytes);
			D("pull_seconds", r->pull_s);
			D("pull_mib_s", r->pull_mibs);
			I("pull_bytes", r->pull_bytes);
			json_object_object_add(o, "verified", json_object_new_boolean(!r->bad));
			json_object_array_add(a, o);
#undef D
#undef I
		}
		json_object_object_add(j, "results", a);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("%-8s %12s %8s %12s %8s %11s %9s %11s %9s %10s %s\n", "chunk",
		       "pack l1", "ratio", "pack l3", "ratio", "lazy 10%", "chunks",
		       "fetched", "pull", "pull", "verified");
		for (int i = 0; i < 3; i++) {
			struct row *r = &rows[i];

			printf("%5lluKiB %7.0f MB/s %8.3f %7.0f MB/s %8.3f %9.3f s %9llu %7.1f MiB %7.3f s %5.1f MiB/s %s\n",
			       (unsigned long long)(r->chunk >> 10), r->cpu_mbs[0],
			       r->ratio[0], r->cpu_mbs[1], r->ratio[1], r->lazy_s,
			       (unsigned long long)r->lazy_chunks,
			       (double)r->lazy_bytes / 1048576.0, r->pull_s, r->pull_mibs,
			       r->bad ? "NO" : "yes");
		}
	}
	munmap(img, m.mem_size);
	/* the snapshot, its pulled copies and caches: all under the mkdtemp */
	*strrchr(snap, '/') = '\0';
	{
		int e = util_remove_tree(snap);

		if (e)
			fprintf(stderr, "lazymem: could not remove %s: %s\n",
				snap, strerror(-e));
	}
	return 0;
}
