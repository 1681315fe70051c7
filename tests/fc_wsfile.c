/*
 * fc_wsfile.c - the working set: --record-ws writes the first VM's pages
 * in first-touch order (versioned header, checked on load); --prefetch
 * with that file installs the whole set right after the first fault, so
 * the guest's later touches do not fault; a damaged or foreign file is
 * refused at start with a message naming what is wrong.
 */
#include <endian.h>

#include "fc_test.h"

#define SIZE (16ull << 20)
#define NPAGES (SIZE / 4096)
#define WS 300

static uint64_t order[WS + 20];
static size_t norder;

/* A scattered first-touch order with some pages touched twice. */
static void make_order(void)
{
	uint64_t x = 12345;

	norder = 0;
	for (size_t i = 0; i < WS; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		order[norder++] = (x >> 20) % NPAGES;
		if (i % 17 == 3) {
			uint64_t again = order[norder / 2];

			order[norder++] = again;
		}
	}
}

static size_t first_touch(uint64_t *uniq)
{
	size_t n = 0;

	for (size_t i = 0; i < norder; i++) {
		bool seen = false;

		for (size_t j = 0; j < n && !seen; j++)
			seen = uniq[j] == order[i];
		if (!seen)
			uniq[n++] = order[i];
	}
	return n;
}

static void touch_in_order(const struct fc_guest *g, size_t from)
{
	for (size_t i = from; i < norder; i++)
		(void)*(volatile uint64_t *)(volatile void *)(g->mem + order[i] * 4096 + 8);
}

static long stat_of(const char *out, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(out, k);
	return p ? atol(p + strlen(k)) : -1;
}

static void test_record_then_prefetch(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	char ws[160], *out;
	const char *rec[] = { "--json", "--record-ws", ws, NULL };
	const char *pre[] = { "--json", "--prefetch", ws, NULL };
	uint64_t uniq[WS + 20], *file;
	size_t n;
	FILE *f;
	long len;

	(void)state;
	LM_REQUIRE_UFFD();
	make_order();
	n = first_touch(uniq);
	t_make_mem(&d, SIZE);
	snprintf(ws, sizeof(ws), "%s/ws", d.dir);

	t_daemon_start(&d, rec);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	touch_in_order(&g, 0);
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.err, "pages written to", 5000), "no ws written");
	t_daemon_stop(&d);

	f = fopen(ws, "rb");
	LM_ASSERT(f, "open %s", ws);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	file = malloc((size_t)len);
	LM_ASSERT(fread(file, 1, (size_t)len, f) == (size_t)len, "read ws");
	fclose(f);
	LM_ASSERT(len == (long)(32 + 8 * n), "ws size %ld for %zu pages", len, n);
	LM_ASSERT(!memcmp(file, "LMWS", 4), "magic");
	LM_ASSERT(le64toh(file[2]) == 4096 && le64toh(file[3]) == n, "header");
	for (size_t i = 0; i < n; i++)
		LM_ASSERT(le64toh(file[4 + i]) == uniq[i] * 4096,
			  "entry %zu: %llu, expected page %llu", i,
			  (unsigned long long)le64toh(file[4 + i]),
			  (unsigned long long)uniq[i]);
	free(file);

	/* Prefetch: the first fault starts it; then nothing faults. */
	t_daemon_start(&d, pre);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	touch_in_order(&g, 0);	/* prefetch and guest race */
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "disconnected", 5000), "no stats");
	out = t_slurp(d.out);
	LM_ASSERT(stat_of(out, "pages_demand") + stat_of(out, "pages_prefetch")
		  == (long)n, "every ws page installed once: %s", out);
	free(out);
	t_daemon_stop(&d);
	unlink(d.out);

	t_daemon_start(&d, pre);
	LM_OK(fc_guest_start(&g, d.sock, SIZE, 4096, 2));
	(void)*(volatile uint64_t *)(volatile void *)(g.mem + order[0] * 4096);
	usleep(300000);		/* the prefetch runs from the first fault */
	touch_in_order(&g, 1);
	for (size_t i = 0; i < n; i++)
		LM_ASSERT(t_verify(&g, uniq[i] * 4096, 4096, false) < 0,
			  "ws page %llu content", (unsigned long long)uniq[i]);
	fc_guest_stop(&g);
	LM_ASSERT(t_wait_for(d.out, "disconnected", 5000), "no stats");
	out = t_slurp(d.out);
	LM_ASSERT(stat_of(out, "faults") == 1, "one fault only: %s", out);
	LM_ASSERT(stat_of(out, "pages_prefetch") == (long)n - 1,
		  "the rest prefetched: %s", out);
	free(out);
	t_cleanup(&d);
}

/* Write a ws file from parts and expect the handler to refuse it. */
static void expect_refused(struct t_daemon *d, const char *what,
			   const void *hdr, size_t hlen, const uint64_t *e,
			   size_t n, const char *words)
{
	char ws[160], cmd[600];
	FILE *f;
	char *err;
	int st;

	snprintf(ws, sizeof(ws), "%s/bad.ws", d->dir);
	f = fopen(ws, "wb");
	LM_ASSERT(f, "create");
	LM_ASSERT(fwrite(hdr, 1, hlen, f) == hlen, "write");
	if (n)
		LM_ASSERT(fwrite(e, 8, n, f) == n, "write");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' fc-handler --socket '%s' --mem-file "
		 "'%s' --prefetch '%s' 2>'%s'", t_lazymem, d->sock, d->mem, ws,
		 d->err);
	st = system(cmd);
	err = t_slurp(d->err);
	LM_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(err, words),
		  "%s: status 0x%x, message '%s' lacks '%s'", what, st, err,
		  words);
	free(err);
}

static void test_bad_ws_files(void **state)
{
	struct t_daemon d = { 0 };
	struct {
		char magic[4];
		uint32_t version, hbytes, reserved;
		uint64_t page_size, count;
	} h = { { 'L', 'M', 'W', 'S' }, htole32(1), htole32(32), 0,
		htole64(4096), htole64(2) };
	uint64_t e[2] = { htole64(4096), htole64(8192) }, bad[2];

	(void)state;
	t_make_mem(&d, SIZE);
	expect_refused(&d, "short", &h, 10, NULL, 0, "too short");
	h.magic[0] = 'X';
	expect_refused(&d, "magic", &h, sizeof(h), e, 2, "magic is not LMWS");
	h.magic[0] = 'L';
	h.version = htole32(2);
	expect_refused(&d, "version", &h, sizeof(h), e, 2, "version 2");
	h.version = htole32(1);
	h.page_size = htole64(8192);
	expect_refused(&d, "page size", &h, sizeof(h), e, 2, "page size 8192");
	h.page_size = htole64(4096);
	expect_refused(&d, "count", &h, sizeof(h), e, 1, "header says 2 pages");
	bad[0] = e[0];
	bad[1] = htole64(SIZE);
	expect_refused(&d, "beyond", &h, sizeof(h), bad, 2,
		       "entry 1 (offset 16777216) is not a page");
	bad[1] = htole64(4097);
	expect_refused(&d, "unaligned", &h, sizeof(h), bad, 2,
		       "entry 1 (offset 4097)");
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_then_prefetch),
		cmocka_unit_test(test_bad_ws_files),
	};

	LM_ASSERT(argc > 1, "usage: fc_wsfile PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
