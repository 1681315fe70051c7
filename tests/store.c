/*
 * store.c - snapshots in HTTP object storage (src/store) against a real
 * nginx with WebDAV on loopback: push, pull byte for byte, dedup on a
 * second push (counted in nginx's access log), and the failures a pull
 * must name: a corrupt chunk (fetched twice, then refused), a missing
 * chunk (404, not retried), a server that is not there.
 */
#include "store_test.h"
#include "fcproto/wsfile.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/url.h"

static struct t_nginx ng;
static char work[300];
static uint8_t *mem_a;

static int setup(void **state)
{
	(void)state;
	if (t_nginx_start(&ng))
		return -1;
	snprintf(work, sizeof(work), "%s/work", ng.dir);
	mkdir(work, 0755);
	mem_a = t_snap_memory();
	return mem_a ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	t_nginx_stop(&ng);
	free(mem_a);
	return 0;
}

static void url_of(char *buf, size_t len, const char *prefix)
{
	snprintf(buf, len, "%s/bucket/%s", ng.url, prefix);
}

static struct store_opts quick_opts(void)
{
	struct store_opts o = { .chunk_size = T_CHUNK };

	o.http.parallel = 8;
	o.http.timeout_ms = 5000;
	o.http.backoff_ms = 20;
	return o;
}

/* Snapshot A with a working set, pushed and pulled back: the same files. */
static void push_pull_same(void **state)
{
	struct store_opts o = quick_opts();
	struct store_push_result pr;
	struct store_pull_result lr;
	uint64_t offs[] = { 0, 4096 * 3, 8u << 20 }, bad = 0, first = 0;
	struct fc_ws ws = { .page_size = 4096, .off = offs, .n = 3 };
	struct lm_snap_meta m;
	char a[400], b[400], url[300], fa[500], fb[500], why[256];
	const char *files[] = { "memory.img", "meta.json", "pages.xxh",
				"ws.lmws" };

	(void)state;
	snprintf(a, sizeof(a), "%s/a", work);
	snprintf(b, sizeof(b), "%s/a-pulled", work);
	LM_OK(t_snap_save(a, mem_a));
	snprintf(fa, sizeof(fa), "%s/ws.lmws", a);
	LM_OK(fc_ws_write(fa, &ws, why, sizeof(why)));
	url_of(url, sizeof(url), "snaps/a");
	LM_OK(store_push(a, url, &o, &pr));
	assert_int_equal(pr.chunks_total, 64);
	assert_int_equal(pr.chunks_zero, 16);
	/* the compressible quarter repeats every 4 chunks: 32 + 4 distinct */
	assert_int_equal(pr.chunks_unique, 36);
	assert_int_equal(pr.chunks_new, 36);
	assert_int_equal(pr.chunks_reused, 0);
	/* the compressible quarter was compressed, the rest stored raw */
	LM_ASSERT(pr.bytes_stored < 32 * T_CHUNK + 4 * T_CHUNK / 4,
		  "stored %llu bytes", (unsigned long long)pr.bytes_stored);
	assert_int_equal(t_log_count(&ng, "\"PUT /bucket/chunks/", " 201 "), 36);

	LM_OK(store_pull(url, b, &o, &lr));
	assert_int_equal(lr.mem_size, T_MEM);
	assert_int_equal(lr.chunks_fetched, 36);
	for (size_t i = 0; i < 4; i++) {
		snprintf(fa, sizeof(fa), "%s/%s", a, files[i]);
		snprintf(fb, sizeof(fb), "%s/%s", b, files[i]);
		LM_ASSERT(t_same_file(fa, fb) == 0, "%s differs after pull",
			  files[i]);
	}
	LM_OK(lm_snap_open(b, &m));
	LM_OK(lm_snap_verify(b, &m, &bad, &first, NULL, NULL));
	lm_snap_meta_free(&m);
}

/* B differs from A in three pages of three chunks: three chunks sent. */
static void second_push_dedups(void **state)
{
	struct store_opts o = quick_opts();
	struct store_push_result pr;
	uint8_t *mem_b = malloc(T_MEM);
	char dir[400], url[300];
	unsigned before;

	(void)state;
	assert_non_null(mem_b);
	memcpy(mem_b, mem_a, T_MEM);
	mem_b[5 * 4096 + 7] ^= 1;		/* chunk 0 */
	mem_b[(9u << 20) + 100] ^= 0x40;	/* chunk 36 (compressible) */
	mem_b[T_MEM - 1] ^= 0x80;		/* chunk 63 */
	snprintf(dir, sizeof(dir), "%s/b", work);
	LM_OK(t_snap_save(dir, mem_b));
	free(mem_b);
	url_of(url, sizeof(url), "snaps/b");
	before = t_log_count(&ng, "\"PUT /bucket/chunks/", "");
	LM_OK(store_push(dir, url, &o, &pr));
	/* 0 and 63 replaced, 36 split from 32, 40, 44: 37 distinct */
	assert_int_equal(pr.chunks_unique, 37);
	assert_int_equal(pr.chunks_new, 3);
	assert_int_equal(pr.chunks_reused, 34);
	assert_int_equal(t_log_count(&ng, "\"PUT /bucket/chunks/", "") - before,
			 3);
	/* pushing B again sends no chunk at all */
	LM_OK(store_push(dir, url, &o, &pr));
	assert_int_equal(pr.chunks_new, 0);
	assert_int_equal(t_log_count(&ng, "\"PUT /bucket/chunks/", "") - before,
			 3);
}

/* The object path of chunk i of snapshot a, on nginx's disk. */
static void chunk_file(const char *snap, uint64_t i, char *path, size_t len,
		       char *url, size_t ulen)
{
	struct store_opts o = quick_opts();
	struct store_http *h;
	struct store_url u;
	struct store_manifest m;
	char why[300], hex[65], uurl[300];

	url_of(uurl, sizeof(uurl), snap);
	assert_int_equal(store_url_parse(uurl, &u, why, sizeof(why)), 0);
	LM_OK(store_http_create(&o.http, &h, why, sizeof(why)));
	LM_OK(store_fetch_manifest(h, &u, &m));
	store_http_destroy(h);
	assert_false(m.chunks[i].zero);
	store_hex(m.chunks[i].hash, hex);
	snprintf(path, len, "%s/data/bucket/chunks/%.2s/%s", ng.dir, hex, hex);
	store_url_chunk(&u, hex, url, ulen);
	store_manifest_free(&m);
}

static void corrupt_chunk_refused(void **state)
{
	struct store_opts o = quick_opts();
	struct store_pull_result lr;
	char path[600], url[800], save[620], dir[400], snap[300];
	unsigned before;
	int fd, err;

	(void)state;
	chunk_file("snaps/a", 1, path, sizeof(path), url, sizeof(url));
	snprintf(save, sizeof(save), "%s.saved", path);
	assert_int_equal(link(path, save), 0);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	/* same length, wrong bytes: only the hash can tell */
	assert_int_equal(write(fd, mem_a + 7 * T_CHUNK, T_CHUNK), T_CHUNK);
	close(fd);
	before = t_log_count(&ng, url + strlen(ng.url), "");
	snprintf(dir, sizeof(dir), "%s/corrupt", work);
	url_of(snap, sizeof(snap), "snaps/a");
	err = store_pull(snap, dir, &o, &lr);
	assert_int_equal(err, -EBADMSG);
	LM_ASSERT(strstr(util_last_error(), "chunk 1 (") &&
		  strstr(util_last_error(), url), "message: %s",
		  util_last_error());
	/* fetched once more after the first failed check, not again */
	assert_int_equal(t_log_count(&ng, url + strlen(ng.url), "") - before, 2);
	rename(save, path);
}

static void missing_chunk_named(void **state)
{
	struct store_opts o = quick_opts();
	struct store_pull_result lr;
	char path[600], url[800], save[620], dir[400], snap[300];
	unsigned before;
	int err;

	(void)state;
	chunk_file("snaps/a", 2, path, sizeof(path), url, sizeof(url));
	snprintf(save, sizeof(save), "%s.saved", path);
	assert_int_equal(rename(path, save), 0);
	before = t_log_count(&ng, url + strlen(ng.url), "");
	snprintf(dir, sizeof(dir), "%s/missing", work);
	url_of(snap, sizeof(snap), "snaps/a");
	err = store_pull(snap, dir, &o, &lr);
	assert_int_equal(err, -ENOENT);
	LM_ASSERT(strstr(util_last_error(), "chunk 2:") &&
		  strstr(util_last_error(), url) &&
		  strstr(util_last_error(), "HTTP 404"), "message: %s",
		  util_last_error());
	/* a 404 is not retried */
	assert_int_equal(t_log_count(&ng, url + strlen(ng.url), "") - before, 1);
	rename(save, path);
}

static void server_down_fails_fast(void **state)
{
	struct store_opts o = quick_opts();
	struct store_pull_result lr;
	char url[200], dir[400];
	uint64_t t0 = (uint64_t)time(NULL);
	int err;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/bucket/snaps/a",
		 t_free_port());
	snprintf(dir, sizeof(dir), "%s/down", work);
	o.http.retries = 2;
	err = store_pull(url, dir, &o, &lr);
	assert_int_equal(err, -ECONNREFUSED);
	LM_ASSERT(strstr(util_last_error(), "manifest.json") &&
		  strstr(util_last_error(), "3 attempts"), "message: %s",
		  util_last_error());
	assert_true((uint64_t)time(NULL) - t0 < 10);
}

static void bad_urls_refused(void **state)
{
	const char *bad[] = { "ftp://h/b/p", "http://h", "http://h/b",
			      "http://h/b/", "http://h/b/chunks",
			      "http://h/b/a/../c", "http://h/b/a b",
			      "http:///b/p" };
	struct store_url u;
	char why[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		LM_ASSERT(store_url_parse(bad[i], &u, why, sizeof(why)) ==
			  -EINVAL && strstr(why, "store URL"), "%s accepted",
			  bad[i]);
	assert_int_equal(store_url_parse("https://s3.example.com:9000/bkt/a/b/",
					 &u, why, sizeof(why)), 0);
	assert_string_equal(u.base, "https://s3.example.com:9000");
	assert_string_equal(u.bucket, "bkt");
	assert_string_equal(u.prefix, "a/b");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_urls_refused),
		cmocka_unit_test(push_pull_same),
		cmocka_unit_test(second_push_dedups),
		cmocka_unit_test(corrupt_chunk_refused),
		cmocka_unit_test(missing_chunk_named),
		cmocka_unit_test(server_down_fails_fast),
	};

	if (!t_nginx_path() || geteuid() != 0) {
		printf("SKIP: %s\n", !t_nginx_path() ?
		       "nginx not installed (scripts/deps.sh test)" :
		       "the nginx test store needs root");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
