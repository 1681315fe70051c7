/*
 * store_restore.c - lazy restore from object storage (src/store/source.c)
 * on plain threads: a region over the URL source, threads touching every
 * page with SIGBUS self-resolve, every word checked; the working set
 * fetched first; two processes through one cache fetching each chunk
 * once (counted at the server); the cache's bound and LRU eviction; a
 * corrupt and a missing chunk failing their pages visibly, the URL and
 * chunk named.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include "store_test.h"
#include "fcproto/wsfile.h"
#include "store/cache.h"
#include "store/manifest.h"
#include "store/source.h"
#include "store/store.h"
#include "store/url.h"

#define NTHREADS 4
#define PS 4096ull

static struct t_nginx ng;
static char work[300], url_a[300];
static uint8_t *mem_a;
/* the working set: pages of chunks 50 and 5 (so chunk order differs
 * from first-touch order) */
static uint64_t ws_offs[] = { 50 * T_CHUNK + 3 * PS, 5 * T_CHUNK,
			      5 * T_CHUNK + PS };

static int setup(void **state)
{
	struct store_opts o = { .chunk_size = T_CHUNK };
	struct store_push_result pr;
	struct fc_ws ws = { .page_size = PS, .off = ws_offs, .n = 3 };
	char dir[400], path[500], why[256];

	(void)state;
	if (t_nginx_start(&ng))
		return -1;
	snprintf(work, sizeof(work), "%s/work", ng.dir);
	mkdir(work, 0755);
	mem_a = t_snap_memory();
	snprintf(dir, sizeof(dir), "%s/a", work);
	snprintf(path, sizeof(path), "%s/ws.lmws", dir);
	snprintf(url_a, sizeof(url_a), "%s/bucket/snaps/a", ng.url);
	o.http.backoff_ms = 20;
	if (!mem_a || t_snap_save(dir, mem_a) ||
	    fc_ws_write(path, &ws, why, sizeof(why)) ||
	    store_push(dir, url_a, &o, &pr)) {
		print_message("setup: %s\n", util_last_error());
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_nginx_stop(&ng);
	free(mem_a);
	return 0;
}

static struct store_source_opts src_opts(const char *cache)
{
	struct store_source_opts o = { .cache_dir = cache };

	o.http.parallel = 4;
	o.http.timeout_ms = 3000;
	o.http.backoff_ms = 20;
	return o;
}

/* ---- plain threads over a region, as `lazymem demo --no-kvm` ---- */

struct toucher {
	const uint8_t *base;
	unsigned id;
	uint64_t pages, mismatches, failed_off;
	int fail_err;
	bool failed;
	sigjmp_buf jmp;
	pthread_t thread;
};

static __thread struct toucher *this_toucher;

static void on_fail(struct lm_region *r, uint64_t off, int err, void *arg)
{
	(void)r;
	(void)arg;
	this_toucher->failed = true;
	this_toucher->failed_off = off;
	this_toucher->fail_err = err;
	siglongjmp(this_toucher->jmp, 1);
}

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t n = T_MEM / PS;

	this_toucher = t;
	if (sigsetjmp(t->jmp, 1))
		return NULL;
	/* every page once, scattered, the threads interleaved */
	for (uint64_t k = t->id; k < n; k += NTHREADS) {
		uint64_t p = (k * 2654435761ull) % n;
		const volatile uint64_t *w =
			(const volatile uint64_t *)(const volatile void *)
			(t->base + p * PS);
		const uint64_t *want = (const uint64_t *)(const void *)
				       (mem_a + p * PS);

		for (uint64_t j = 0; j < PS / 8; j++)
			t->mismatches += w[j] != want[j];
		t->pages++;
	}
	return NULL;
}

struct restore_result {
	uint64_t pages, mismatches;
	unsigned failed;
	uint64_t failed_off;
	int fail_err;
	struct store_source_stats st;
	char chunk_msg[800];
};

static int restore_threads(const char *url, const struct store_source_opts *o,
			   struct restore_result *res)
{
	struct toucher t[NTHREADS];
	struct lm_source *src;
	struct lm_region *r;
	int err;

	memset(res, 0, sizeof(*res));
	err = store_source_open(url, o, &src);
	if (err)
		return err;
	struct lm_region_config c = {
		.name = "store-restore", .size = T_MEM,
		.backing = LM_BACKING_MEMFD, .install = LM_INSTALL_CONTINUE,
		.delivery = LM_DELIVERY_SELF, .source = src,
		.on_fail = on_fail,
	};
	err = lm_region_create(&c, &r);
	if (err) {
		lm_source_destroy(src);
		return err;
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		t[i] = (struct toucher){ .base = lm_region_addr(r), .id = i };
		pthread_create(&t[i].thread, NULL, touch_main, &t[i]);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(t[i].thread, NULL);
		res->pages += t[i].pages;
		res->mismatches += t[i].mismatches;
		if (t[i].failed && !res->failed++) {
			res->failed_off = t[i].failed_off;
			res->fail_err = t[i].fail_err;
		}
	}
	if (res->failed)
		store_source_chunk_error(src, res->failed_off, res->chunk_msg,
					 sizeof(res->chunk_msg));
	store_source_stats(src, &res->st);
	lm_region_destroy(r);
	lm_source_destroy(src);
	return 0;
}

static void cache_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/cache-%s", work, name);
}

static void lazy_restore_verified(void **state)
{
	struct restore_result res;
	char cache[400];
	struct store_source_opts o;

	(void)state;
	cache_dir(cache, sizeof(cache), "lazy");
	o = src_opts(cache);
	LM_OK(restore_threads(url_a, &o, &res));
	assert_int_equal(res.failed, 0);
	assert_int_equal(res.pages, T_MEM / PS);
	assert_int_equal(res.mismatches, 0);
	LM_ASSERT(res.st.chunks_fetched <= 36, "%llu chunks fetched",
		  (unsigned long long)res.st.chunks_fetched);
	assert_int_equal(res.st.chunks_failed, 0);
	/* a second restore through the same cache fetches nothing */
	LM_OK(restore_threads(url_a, &o, &res));
	assert_int_equal(res.mismatches, 0);
	assert_int_equal(res.st.chunks_fetched, 0);
	assert_true(res.st.hits > 0);
	assert_int_equal(res.st.misses, 0);
}

/* Nothing touched, one request at a time: the chunk GETs come in the
 * prefetch order, the working set's chunks (5, 50) first. */
static void working_set_first(void **state)
{
	struct store_source_opts o;
	struct lm_source *src;
	char cache[400], line[2048], path[400];
	const struct store_manifest *m;
	unsigned seen = 0, first[2] = { 0, 0 };
	FILE *f;
	long start;

	(void)state;
	cache_dir(cache, sizeof(cache), "wsfirst");
	o = src_opts(cache);
	o.http.parallel = 1;
	snprintf(path, sizeof(path), "%s/access.log", ng.dir);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	start = ftell(f);
	LM_OK(store_source_open(url_a, &o, &src));
	assert_int_equal(store_source_ws(src)->n, 3);
	LM_OK(store_source_wait_prefetched(src, 20000));
	m = store_source_manifest(src);
	fseek(f, start, SEEK_SET);
	while (fgets(line, sizeof(line), f) && seen < 2) {
		char *p = strstr(line, "GET /bucket/chunks/");

		if (!p)
			continue;
		for (unsigned i = 0; i < m->nr_chunks; i++) {
			char hex[65];

			store_hex(m->chunks[i].hash, hex);
			if (!m->chunks[i].zero && !strncmp(p + 22, hex, 64)) {
				first[seen] = i;
				break;
			}
		}
		seen++;
	}
	fclose(f);
	lm_source_destroy(src);
	assert_int_equal(seen, 2);
	assert_int_equal(first[0], 5);
	assert_int_equal(first[1], 50);
}

/* Two processes, one cache, one snapshot: each chunk GET once in all. */
static void two_processes_one_fetch(void **state)
{
	char cache[400];
	unsigned before = t_log_count(&ng, "GET /bucket/chunks/", "");
	pid_t pid[2];

	(void)state;
	cache_dir(cache, sizeof(cache), "shared");
	for (int k = 0; k < 2; k++) {
		pid[k] = fork();
		if (pid[k] == 0) {
			struct store_source_opts o = src_opts(cache);
			struct restore_result res;
			int err = restore_threads(url_a, &o, &res);

			printf("process %d: %llu fetched, %llu from the other, "
			       "%llu fetched by both, %llu hits, %llu misses\n", k,
			       (unsigned long long)res.st.chunks_fetched,
			       (unsigned long long)res.st.chunks_shared,
			       (unsigned long long)res.st.chunks_twice,
			       (unsigned long long)res.st.hits,
			       (unsigned long long)res.st.misses);
			_exit(err || res.mismatches || res.failed ||
			      res.st.chunks_twice || res.pages != T_MEM / PS);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st;

		assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
		LM_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "process %d failed its restore", k);
	}
	/* 36 distinct non-zero chunks: each fetched exactly once */
	assert_int_equal(t_log_count(&ng, "GET /bucket/chunks/", "") - before,
			 36);
}

/* The bound holds, and eviction takes the least recently used. */
static void cache_bound_lru(void **state)
{
	struct store_cache *c;
	char dir[400], hex[8][65];
	uint8_t data[100000] = { 0 };

	(void)state;
	cache_dir(dir, sizeof(dir), "lru");
	LM_OK(store_cache_open(dir, 500000, &c));
	for (int i = 0; i < 8; i++) {
		uint8_t h[32];
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		data[0] = (uint8_t)i;
		store_sha256(data, sizeof(data), h);
		store_hex(h, hex[i]);
		LM_OK(store_cache_put(c, hex[i], data, sizeof(data)));
		nanosleep(&ts, NULL);
		if (i >= 1) {	/* chunk 0 read after each put: recent */
			ssize_t n = store_cache_read(c, hex[0], data,
						     sizeof(data));
			LM_ASSERT(n == (ssize_t)sizeof(data), "chunk 0 gone "
				  "after put %d", i);
			data[0] = (uint8_t)i;
			nanosleep(&ts, NULL);
		}
	}
	LM_OK(store_cache_evict(c, 500000));
	LM_ASSERT(store_cache_bytes(c) <= 500000, "%llu bytes cached",
		  (unsigned long long)store_cache_bytes(c));
	assert_true(store_cache_has(c, hex[0]));	/* used last */
	assert_true(store_cache_has(c, hex[7]));	/* added last */
	assert_false(store_cache_has(c, hex[1]));	/* oldest unused */
	store_cache_close(c);
}

/* A restore through a cache of 1 MiB (4 chunks): still every word right,
 * the cache never much over its bound. */
static void restore_small_cache(void **state)
{
	struct store_source_opts o;
	struct restore_result res;
	struct store_cache *c;
	char cache[400];

	(void)state;
	cache_dir(cache, sizeof(cache), "small");
	o = src_opts(cache);
	o.cache_size = 1u << 20;
	LM_OK(restore_threads(url_a, &o, &res));
	print_message("1 MiB cache: %llu chunks fetched, %llu hits, %llu "
		      "misses, %llu requests\n",
		      (unsigned long long)res.st.chunks_fetched,
		      (unsigned long long)res.st.hits,
		      (unsigned long long)res.st.misses,
		      (unsigned long long)res.st.requests);
	assert_int_equal(res.failed, 0);
	assert_int_equal(res.mismatches, 0);
	LM_OK(store_cache_open(cache, 1u << 20, &c));	/* scans */
	LM_ASSERT(store_cache_bytes(c) <= (1u << 20) + (1u << 20) / 8,
		  "%llu bytes", (unsigned long long)store_cache_bytes(c));
	store_cache_close(c);
}

/* The object path on nginx's disk of the chunk of snapshot a at index i. */
static void chunk_file(uint64_t i, char *path, size_t len, char *hexout)
{
	struct store_source_opts o = src_opts("/tmp");
	struct store_http *h;
	struct store_url u;
	struct store_manifest m;
	char why[300];

	assert_int_equal(store_url_parse(url_a, &u, why, sizeof(why)), 0);
	LM_OK(store_http_create(&o.http, &h, why, sizeof(why)));
	LM_OK(store_fetch_manifest(h, &u, &m));
	store_http_destroy(h);
	store_hex(m.chunks[i].hash, hexout);
	snprintf(path, len, "%s/data/bucket/chunks/%.2s/%s", ng.dir, hexout,
		 hexout);
	store_manifest_free(&m);
}

static void bad_chunk_fails_page(const char *name, bool corrupt, int want)
{
	struct store_source_opts o;
	struct restore_result res;
	char path[600], save[620], cache[400], hex[65];
	unsigned before;

	cache_dir(cache, sizeof(cache), name);
	o = src_opts(cache);
	chunk_file(9, path, sizeof(path), hex);
	snprintf(save, sizeof(save), "%s.saved", path);
	assert_int_equal(rename(path, save), 0);
	if (corrupt) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, mem_a, T_CHUNK), T_CHUNK);
		close(fd);
	}
	before = t_log_count(&ng, hex, "GET");
	LM_OK(restore_threads(url_a, &o, &res));
	rename(save, path);
	LM_ASSERT(res.failed >= 1 && res.fail_err == want &&
		  res.failed_off / T_CHUNK == 9, "failed %u, first at 0x%llx "
		  "with %d", res.failed, (unsigned long long)res.failed_off,
		  res.fail_err);
	assert_int_equal(res.mismatches, 0);
	LM_ASSERT(strstr(res.chunk_msg, "chunk 9: ") &&
		  strstr(res.chunk_msg, hex) &&
		  strstr(res.chunk_msg, "/bucket/chunks/"), "message: %s",
		  res.chunk_msg);
	print_message("the failed page's reason: %s\n", res.chunk_msg);
	/* corrupt: fetched twice; missing: once (404 is not retried) */
	assert_int_equal(t_log_count(&ng, hex, "GET") - before,
			 corrupt ? 2 : 1);
}

static void corrupt_chunk_fails_page(void **state)
{
	(void)state;
	bad_chunk_fails_page("corrupt", true, -EBADMSG);
}

static void missing_chunk_fails_page(void **state)
{
	(void)state;
	bad_chunk_fails_page("missing", false, -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lazy_restore_verified),
		cmocka_unit_test(working_set_first),
		cmocka_unit_test(two_processes_one_fetch),
		cmocka_unit_test(cache_bound_lru),
		cmocka_unit_test(restore_small_cache),
		cmocka_unit_test(corrupt_chunk_fails_page),
		cmocka_unit_test(missing_chunk_fails_page),
	};

	if (!t_nginx_path() || geteuid() != 0) {
		printf("SKIP: %s\n", !t_nginx_path() ?
		       "nginx not installed (scripts/deps.sh test)" :
		       "the nginx test store needs root");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
