/*
 * store_faults.c - what a store that misbehaves does to push, pull and a
 * lazy restore: a fault-injecting server of the tree's own
 * (tests/store_faultd.py) serves what nginx stored, and fails on demand:
 * 5xx then success (retried), a connection cut mid-body (retried, then
 * failed), a short body (fetched twice, then refused), a server that
 * stalls (the request's timeout fires, the page fails visibly, nothing
 * hangs), a server gone mid-restore; and a cache on a full disk (a tiny
 * tmpfs: chunks are served from memory instead, every word still right).
 */
#include <pthread.h>
#include <setjmp.h>
#include <sys/mount.h>

#include "store_test.h"
#include "store/cache.h"
#include "store/manifest.h"
#include "store/source.h"
#include "store/store.h"
#include "store/url.h"

#define PS 4096ull
#define NTHREADS 2

static struct t_nginx ng;
static const char *faultd;
static pid_t fd_pid;
static int fd_port;
static char work[300], url[300];
static uint8_t *mem_a;
static struct store_manifest man;

static int faultd_start(void)
{
	char root[400], port[16];
	int p[2];

	snprintf(root, sizeof(root), "%s/data", ng.dir);
	fd_port = t_free_port();
	snprintf(port, sizeof(port), "%d", fd_port);
	if (pipe(p))
		return -1;
	fflush(NULL);	/* nothing buffered here may reach the child's pipe */
	fd_pid = fork();
	if (fd_pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execlp("python3", "python3", faultd, root, port, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* Wait for its "ready"; the pipe stays open (a write to a closed
	 * one would kill it with SIGPIPE). */
	char buf[256] = "";
	size_t got = 0;

	while (got < sizeof(buf) - 1 && !strstr(buf, "ready\n")) {
		ssize_t n = read(p[0], buf + got, sizeof(buf) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/bucket/snaps/a",
		 fd_port);
	if (!strstr(buf, "ready\n")) {
		print_message("fault server did not start: '%s'\n", buf);
		return -1;
	}
	return 0;
}

static void faultd_stop(void)
{
	if (fd_pid > 0) {
		kill(fd_pid, SIGKILL);
		waitpid(fd_pid, NULL, 0);
		fd_pid = 0;
	}
}

/* One request to the fault server's control paths; its body as a number. */
static long control(const char *method, const char *path)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)fd_port) };
	char req[600], resp[2048];
	size_t got = 0;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char *body;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)))
		fail_msg("fault server: %s", strerror(errno));
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: "
		 "0\r\nConnection: close\r\n\r\n", method, path);
	assert_true(write(s, req, strlen(req)) == (ssize_t)strlen(req));
	for (ssize_t n; (n = read(s, resp + got, sizeof(resp) - 1 - got)) > 0;)
		got += (size_t)n;
	close(s);
	resp[got] = '\0';
	body = strstr(resp, "\r\n\r\n");
	return body ? strtol(body + 4, NULL, 10) : -1;
}

static const char *hex_of(uint64_t i)
{
	static char hex[65];

	store_hex(man.chunks[i].hash, hex);
	return hex;
}

static void arm(uint64_t chunk, const char *mode, int count)
{
	char path[200];

	snprintf(path, sizeof(path), "/__fault?match=%s&mode=%s&count=%d",
		 hex_of(chunk), mode, count);
	control("POST", path);
}

static long count_of(uint64_t chunk)
{
	char path[200];

	snprintf(path, sizeof(path), "/__count?match=%s", hex_of(chunk));
	return control("GET", path);
}

static int setup(void **state)
{
	struct store_opts o = { .chunk_size = T_CHUNK };
	struct store_push_result pr;
	struct store_http *h;
	struct store_url u;
	char dir[400], why[300];

	(void)state;
	if (t_nginx_start(&ng))
		return -1;
	snprintf(work, sizeof(work), "%s/work", ng.dir);
	mkdir(work, 0755);
	snprintf(dir, sizeof(dir), "%s/a", work);
	snprintf(url, sizeof(url), "%s/bucket/snaps/a", ng.url);
	mem_a = t_snap_memory();
	if (!mem_a || t_snap_save(dir, mem_a) || store_push(dir, url, &o, &pr))
		return -1;
	if (store_url_parse(url, &u, why, sizeof(why)) ||
	    store_http_create(&o.http, &h, why, sizeof(why)))
		return -1;
	if (store_fetch_manifest(h, &u, &man))
		return -1;
	store_http_destroy(h);
	return faultd_start();
}

static int teardown(void **state)
{
	char full[400];

	(void)state;
	snprintf(full, sizeof(full), "%s/cache-full", work);
	umount2(full, MNT_DETACH);	/* if a failed check left it mounted */
	faultd_stop();
	t_nginx_stop(&ng);
	store_manifest_free(&man);
	free(mem_a);
	return 0;
}

static struct store_opts quick(void)
{
	struct store_opts o = { 0 };

	o.http.parallel = 4;
	o.http.timeout_ms = 3000;
	o.http.backoff_ms = 20;
	o.http.retries = 2;
	return o;
}

static int pull_to(const char *name, struct store_opts *o)
{
	struct store_pull_result r;
	char dir[400];

	snprintf(dir, sizeof(dir), "%s/%s", work, name);
	return store_pull(url, dir, o, &r);
}

static void retry_5xx_then_ok(void **state)
{
	struct store_opts o = quick();
	long before = count_of(3);

	(void)state;
	arm(3, "503", 2);
	LM_OK(pull_to("p5xx", &o));
	assert_int_equal(count_of(3) - before, 3);	/* 503, 503, 200 */
}

static void cut_transfer_retried(void **state)
{
	struct store_opts o = quick();
	long before = count_of(6);

	(void)state;
	arm(6, "cut", 1);
	LM_OK(pull_to("pcut", &o));
	assert_int_equal(count_of(6) - before, 2);
	/* cut every time: three attempts, then the pull fails naming it */
	before = count_of(7);
	arm(7, "cut", 10);
	assert_int_equal(pull_to("pcut2", &o), -EIO);
	LM_ASSERT(strstr(util_last_error(), "chunk 7:") &&
		  strstr(util_last_error(), hex_of(7)) &&
		  strstr(util_last_error(), "3 attempts"), "message: %s",
		  util_last_error());
	assert_int_equal(count_of(7) - before, 3);
	arm(7, "cut", 0);
}

static void short_chunk_refused(void **state)
{
	struct store_opts o = quick();
	long before = count_of(4);

	(void)state;
	arm(4, "short", 2);
	assert_int_equal(pull_to("pshort", &o), -EBADMSG);
	LM_ASSERT(strstr(util_last_error(), "chunk 4 (") &&
		  strstr(util_last_error(), hex_of(4)), "message: %s",
		  util_last_error());
	assert_int_equal(count_of(4) - before, 2);	/* once more, no more */
}

/* ---- lazy restores on plain threads ---- */

struct toucher {
	const uint8_t *base;
	unsigned id;
	uint64_t pages, mismatches, failed, fail_off;
	int fail_err;
	sigjmp_buf jmp;
	pthread_t thread;
};

static __thread struct toucher *me;

static void on_fail(struct lm_region *r, uint64_t off, int err, void *arg)
{
	(void)r;
	(void)arg;
	if (!me->failed++) {
		me->fail_off = off;
		me->fail_err = err;
	}
	siglongjmp(me->jmp, 1);
}

/* Every page of the thread's half; a failed page is skipped. */
static void *touch(void *arg)
{
	struct toucher *t = arg;
	volatile uint64_t p;

	me = t;
	p = t->id;
	if (sigsetjmp(t->jmp, 1))
		p += NTHREADS;	/* the page that failed: on to the next */
	for (; p < T_MEM / PS; p += NTHREADS) {
		const volatile uint64_t *w = (const volatile uint64_t *)
			(const volatile void *)(t->base + p * PS);
		const uint64_t *want = (const uint64_t *)(const void *)
				       (mem_a + p * PS);

		t->pages++;
		for (uint64_t j = 0; j < PS / 8; j++)
			t->mismatches += w[j] != want[j];
	}
	return NULL;
}

struct run {
	uint64_t pages, mismatches, failed, fail_off;
	int fail_err;
	char msg[800];
	struct store_source_stats st;
	double seconds;
};

static int restore(struct store_source_opts *o, bool kill_server,
		   struct run *res)
{
	struct toucher t[NTHREADS];
	struct lm_source *src;
	struct lm_region *r;
	uint64_t t0 = (uint64_t)time(NULL);
	int err;

	memset(res, 0, sizeof(*res));
	if ((err = store_source_open(url, o, &src)))
		return err;
	if (kill_server)
		faultd_stop();
	struct lm_region_config c = {
		.name = "store-faults", .size = T_MEM,
		.backing = LM_BACKING_MEMFD, .install = LM_INSTALL_CONTINUE,
		.delivery = LM_DELIVERY_SELF, .source = src, .on_fail = on_fail,
	};
	if ((err = lm_region_create(&c, &r))) {
		lm_source_destroy(src);
		return err;
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		t[i] = (struct toucher){ .base = lm_region_addr(r), .id = i };
		pthread_create(&t[i].thread, NULL, touch, &t[i]);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(t[i].thread, NULL);
		res->pages += t[i].pages;
		res->mismatches += t[i].mismatches;
		if (t[i].failed && !res->failed) {
			res->fail_off = t[i].fail_off;
			res->fail_err = t[i].fail_err;
		}
		res->failed += t[i].failed;
	}
	if (res->failed)
		store_source_chunk_error(src, res->fail_off, res->msg,
					 sizeof(res->msg));
	store_source_stats(src, &res->st);
	lm_region_destroy(r);
	lm_source_destroy(src);
	res->seconds = (double)((uint64_t)time(NULL) - t0);
	return 0;
}

static struct store_source_opts src_quick(const char *name)
{
	static char dirs[4][400];
	static int k;
	struct store_source_opts o = { 0 };
	char *d = dirs[k++ % 4];

	snprintf(d, 400, "%s/cache-%s", work, name);
	o.cache_dir = d;
	o.http.parallel = 4;
	o.http.timeout_ms = 1000;
	o.http.backoff_ms = 20;
	o.http.retries = 1;
	return o;
}

/* The chunk stalls: each attempt times out after 1 s; its pages fail
 * with -ETIMEDOUT naming it; the rest is right; nothing hangs. */
static void slow_server_times_out(void **state)
{
	struct store_source_opts o = src_quick("slow");
	struct run res;

	(void)state;
	arm(9, "slow", 10);
	LM_OK(restore(&o, false, &res));
	arm(9, "slow", 0);
	LM_ASSERT(res.failed >= 1 && res.fail_err == -ETIMEDOUT &&
		  res.fail_off / T_CHUNK == 9, "failed %llu, first at 0x%llx, "
		  "err %d", (unsigned long long)res.failed,
		  (unsigned long long)res.fail_off, res.fail_err);
	/* the chunk's 64 pages and no other */
	assert_int_equal(res.failed, T_CHUNK / PS);
	assert_int_equal(res.mismatches, 0);
	LM_ASSERT(strstr(res.msg, "chunk 9: ") && strstr(res.msg, hex_of(9)) &&
		  strstr(res.msg, "imeout"), "message: %s", res.msg);
	print_message("the stalled chunk's pages: %s\n", res.msg);
	LM_ASSERT(res.seconds < 20, "took %.0f s", res.seconds);
}

/* A cache on a full disk: chunks kept in memory, every word right. */
static void full_disk_serves_from_memory(void **state)
{
	struct store_source_opts o = src_quick("full");
	struct run res;

	(void)state;
	mkdir(o.cache_dir, 0755);
	if (mount("lazymem-test", o.cache_dir, "tmpfs", 0, "size=512k")) {
		print_message("SKIP: cannot mount a small tmpfs (%s)\n",
			      strerror(errno));
		skip();
	}
	o.cache_size = 1ull << 30;	/* the disk, not the bound, is full */
	LM_OK(restore(&o, false, &res));
	umount(o.cache_dir);
	assert_int_equal(res.failed, 0);
	assert_int_equal(res.mismatches, 0);
	assert_int_equal(res.pages, T_MEM / PS);
	LM_ASSERT(res.st.chunks_uncached > 0, "%llu chunks kept in memory",
		  (unsigned long long)res.st.chunks_uncached);
}

/* The server goes away once the manifest is read: every page fails
 * with -ECONNREFUSED, named; none hangs. (Runs last: no server after.) */
static void server_gone_mid_restore(void **state)
{
	struct store_source_opts o = src_quick("gone");
	struct run res;

	(void)state;
	o.no_prefetch = true;
	LM_OK(restore(&o, true, &res));
	assert_int_equal(res.mismatches, 0);
	/* every non-zero page failed; zero pages need no server */
	assert_int_equal(res.failed, (T_MEM - T_MEM / 4) / PS);
	LM_ASSERT(res.fail_err == -ECONNREFUSED && strstr(res.msg, "chunk ") &&
		  strstr(res.msg, "/bucket/chunks/"), "err %d: %s",
		  res.fail_err, res.msg);
	LM_ASSERT(res.seconds < 30, "took %.0f s", res.seconds);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_5xx_then_ok),
		cmocka_unit_test(cut_transfer_retried),
		cmocka_unit_test(short_chunk_refused),
		cmocka_unit_test(slow_server_times_out),
		cmocka_unit_test(full_disk_serves_from_memory),
		cmocka_unit_test(server_gone_mid_restore),
	};

	if (argc < 2)
		return fprintf(stderr, "usage: store_faults FAULTD.py\n"), 2;
	faultd = argv[1];
	if (!t_nginx_path() || geteuid() != 0) {
		printf("SKIP: %s\n", !t_nginx_path() ?
		       "nginx not installed (scripts/deps.sh test)" :
		       "the nginx test store needs root");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
