/*
 * net_loopback.c - post-copy over TCP on loopback, end to end: a region on
 * the destination filled from a page server, content checked page by page.
 *
 *   demand_and_push   source in another process; toucher threads fault
 *                     in SIGBUS mode while the rest is pushed;
 *   continue_push     memfd + CONTINUE, pushed frames installed by three
 *                     threads sharing each frame;
 *   demand_only       no push: every page comes by a fault's own request;
 *   precopy_hybrid    pre-copy into the store (the region's alias), some
 *                     pages dirtied and named in DIRTY, switch-over with a
 *                     vCPU blob, post-copy for the rest; clean pre-copied
 *                     pages are served without any transfer;
 *   zero_and_lz4      zero pages travel as a flag, compressible ones as LZ4;
 *   two_regions       a VMM's layout: an eager region and a lazy one;
 *   hugetlb           2 MiB pages (skips without free huge pages).
 */
#include "net_util.h"

#define SALT 0x1234

static void *t_serve_main(void *arg)
{
	struct t_src *t = arg;

	t->rc = lm_net_server_serve(t->s);
	return NULL;
}

static void run_postcopy(uint64_t size, bool push, unsigned touchers,
			 bool fork_source, enum lm_backing backing,
			 enum lm_install install, unsigned installers)
{
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .nr_urgent = touchers,
					 .installers = installers };
	struct lm_net_dest *d;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "net", .size = size,
				       .backing = backing, .install = install,
				       .delivery = LM_DELIVERY_SELF };
	struct t_src src = { 0 };
	struct lm_net_dest_stats ds;
	struct lm_stats st;
	uint8_t *mem = t_map(size);
	int64_t bad;

	LM_REQUIRE_UFFD();
	t_layout(&l, size);
	t_fill(mem, size, SALT);
	src.cfg = (struct lm_net_server_config){
		.mem = mem, .layout = &l, .push = push, .compress = true };
	if (fork_source)
		t_src_fork(&src);	/* before any thread of ours */
	LM_OK(lm_net_dest_create(&dc, &d));
	rc.source = lm_net_dest_source(d);
	LM_OK(lm_region_create(&rc, &r));
	LM_OK(lm_net_dest_attach(d, r));
	t_src_go(&src, lm_net_dest_address(d));
	LM_OK(lm_net_dest_wait_up(d, 5000));
	/* With push, the last quarter is never touched: it can only arrive
	 * pushed, so both paths are exercised however the CPUs are shared. */
	t_touch(lm_region_addr(r), size / 4096 / (push ? 4 : 1) * (push ? 3 : 1),
		4096, touchers);
	LM_OK(lm_region_wait_complete(r, 30000));
	LM_OK(lm_net_dest_finish(d));
	LM_ASSERT(t_src_join(&src) == 0, "source failed");
	bad = t_check(lm_region_addr(r), size, SALT);
	LM_ASSERT(bad < 0, "content differs at offset %lld", (long long)bad);
	lm_region_stats(r, &st);
	lm_net_dest_stats(d, &ds);
	print_message("  demand %llu (requests %llu), background %llu, "
		      "skipped %llu, req p50 %llu us\n",
		      (unsigned long long)st.pages_demand,
		      (unsigned long long)ds.demand_requests,
		      (unsigned long long)st.pages_background,
		      (unsigned long long)ds.push_skipped,
		      (unsigned long long)ds.req_p50_ns / 1000);
	LM_ASSERT(st.pages_demand + st.pages_background + st.pages_around ==
			  size / 4096, "pages installed %llu",
		  (unsigned long long)(st.pages_demand + st.pages_background));
	if (push) {
		LM_ASSERT(st.pages_background > 0, "nothing pushed");
	} else {
		LM_ASSERT(st.pages_demand == size / 4096, "demand %llu",
			  (unsigned long long)st.pages_demand);
		LM_ASSERT(st.pages_background == 0, "pushed without push");
	}
	LM_ASSERT(st.pages_failed == 0, "%llu pages failed",
		  (unsigned long long)st.pages_failed);
	lm_net_dest_destroy(d);
	lm_region_destroy(r);
	munmap(mem, size);
}

static void t_demand_and_push(void **state)
{
	(void)state;
	run_postcopy(64 << 20, true, 2, true, LM_BACKING_ANON,
		     LM_INSTALL_COPY, 1);
}

static void t_demand_only(void **state)
{
	(void)state;
	run_postcopy(8 << 20, false, 2, false, LM_BACKING_ANON,
		     LM_INSTALL_COPY, 1);
}

static void t_continue_push(void **state)
{
	(void)state;
	/* Three threads share each pushed frame's installs. */
	run_postcopy(32 << 20, true, 3, false, LM_BACKING_MEMFD,
		     LM_INSTALL_CONTINUE, 3);
}

static void t_precopy_hybrid(void **state)
{
	const uint64_t size = 16 << 20, np = size / 4096;
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .nr_urgent = 2 };
	struct lm_net_dest *d;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "hybrid", .size = size,
				       .backing = LM_BACKING_MEMFD,
				       .install = LM_INSTALL_CONTINUE,
				       .delivery = LM_DELIVERY_SELF };
	struct lm_net_server_config sc;
	struct lm_net_server *s;
	struct lm_net_dest_stats ds;
	struct t_src src = { 0 };
	uint64_t *dirty = calloc((np + 63) / 64, 8), ndirty = 0;
	uint8_t *mem = t_map(size), *expect = t_map(size);
	const char blob[] = "vcpu0 registers";
	const void *blobs[1] = { blob };
	uint32_t blen[1] = { sizeof(blob) }, got_len = 0;
	const uint8_t *got;
	int64_t bad;

	(void)state;
	LM_REQUIRE_UFFD();
	t_layout(&l, size);
	t_fill(mem, size, SALT);
	LM_OK(lm_net_dest_create(&dc, &d));
	rc.source = lm_net_dest_source(d);
	LM_OK(lm_region_create(&rc, &r));
	/* Pre-copy pages land in the region's alias: no copy later. */
	LM_OK(lm_net_dest_set_store(d, lm_region_alias(r)));
	LM_OK(lm_net_dest_attach(d, r));

	sc = (struct lm_net_server_config){ .mem = mem, .layout = &l,
		.to = lm_net_dest_address(d), .push = true, .compress = true };
	LM_OK(lm_net_server_create(&sc, &s));
	LM_OK(lm_net_server_connect(s));
	LM_OK(lm_net_server_precopy(s, NULL));
	/* The "guest" dirties every 5th page after it was sent. */
	for (uint64_t p = 0; p < np; p += 5) {
		((uint64_t *)(void *)(mem + p * 4096))[3] ^= 0xdead;
		dirty[p / 64] |= 1ull << (p % 64);
		ndirty++;
	}
	/* A second round re-sends half of those: still clean after. */
	{
		uint64_t *round2 = calloc((np + 63) / 64, 8);

		for (uint64_t p = 0; p < np; p += 10) {
			round2[p / 64] |= 1ull << (p % 64);
			dirty[p / 64] &= ~(1ull << (p % 64));
			ndirty--;
		}
		LM_OK(lm_net_server_precopy(s, round2));
		free(round2);
	}
	memcpy(expect, mem, size);
	LM_OK(lm_net_server_switchover(s, dirty, 1, blobs, blen));
	src.s = s;
	LM_OK(lm_net_dest_wait_switchover(d, 5000));
	got = lm_net_dest_vcpu(d, 0, &got_len);
	LM_ASSERT(got && got_len == sizeof(blob) && !memcmp(got, blob, got_len),
		  "vCPU blob not received intact");
	/* Serve post-copy in a thread while the destination touches. */
	{
		pthread_t th;

		pthread_create(&th, NULL, t_serve_main, &src);
		t_touch(lm_region_addr(r), np, 4096, 2);
		LM_OK(lm_region_wait_complete(r, 30000));
		LM_OK(lm_net_dest_finish(d));
		pthread_join(th, NULL);
		LM_OK(src.rc);
	}
	bad = memcmp(lm_region_addr(r), expect, size) ? 0 : -1;
	LM_ASSERT(bad < 0, "content differs from the source after dirtying");
	lm_net_dest_stats(d, &ds);
	print_message("  precopy %llu, hits %llu, dirty %llu, demand %llu, "
		      "push %llu\n", (unsigned long long)ds.precopy_pages,
		      (unsigned long long)ds.precopy_hits,
		      (unsigned long long)ds.dirty_pages,
		      (unsigned long long)ds.demand_pages,
		      (unsigned long long)ds.push_pages);
	LM_ASSERT(ds.precopy_pages == np + np / 10 + 1, "precopy %llu",
		  (unsigned long long)ds.precopy_pages);
	LM_ASSERT(ds.demand_pages + ds.push_pages == ndirty,
		  "fetched %llu pages but %llu were dirty",
		  (unsigned long long)(ds.demand_pages + ds.push_pages),
		  (unsigned long long)ndirty);
	LM_ASSERT(ds.precopy_hits == np - ndirty, "hits %llu",
		  (unsigned long long)ds.precopy_hits);
	lm_net_dest_destroy(d);
	lm_region_destroy(r);
	lm_net_server_destroy(s);
	munmap(mem, size);
	munmap(expect, size);
	free(dirty);
}

static void t_zero_and_lz4(void **state)
{
	const uint64_t size = 8 << 20;
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .nr_urgent = 1 };
	struct lm_net_dest *d;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "z", .size = size,
				       .delivery = LM_DELIVERY_SELF };
	struct t_src src = { 0 };
	struct lm_net_server_stats ss;
	uint8_t *mem = t_map(size);

	(void)state;
	LM_REQUIRE_UFFD();
	t_layout(&l, size);
	/* A third zero, a third text-like, a third pattern. */
	for (uint64_t p = 0; p < size / 4096; p++) {
		uint8_t *pg = mem + p * 4096;

		if (p % 3 == 1)
			for (int i = 0; i < 4096; i++)
				pg[i] = "lazymem migration "[i % 18];
		else if (p % 3 == 2)
			t_fill(pg, 4096, p);
	}
	LM_OK(lm_net_dest_create(&dc, &d));
	rc.source = lm_net_dest_source(d);
	LM_OK(lm_region_create(&rc, &r));
	LM_OK(lm_net_dest_attach(d, r));
	src.cfg = (struct lm_net_server_config){
		.mem = mem, .layout = &l, .to = lm_net_dest_address(d),
		.push = true, .compress = true };
	t_src_thread(&src);
	LM_OK(lm_net_dest_wait_up(d, 5000));
	LM_OK(lm_region_wait_complete(r, 30000));
	LM_OK(lm_net_dest_finish(d));
	pthread_join(src.thread, NULL);
	LM_OK(src.rc);
	lm_net_server_stats(src.s, &ss);
	LM_ASSERT(!memcmp(lm_region_addr(r), mem, size), "content differs");
	print_message("  raw %llu zero %llu lz4 %llu, %llu bytes for %llu\n",
		      (unsigned long long)ss.raw_pages,
		      (unsigned long long)ss.zero_pages,
		      (unsigned long long)ss.lz4_pages,
		      (unsigned long long)ss.bytes_out,
		      (unsigned long long)size);
	LM_ASSERT(ss.zero_pages >= size / 4096 / 3, "zero pages %llu",
		  (unsigned long long)ss.zero_pages);
	LM_ASSERT(ss.lz4_pages >= size / 4096 / 3 - 1, "lz4 pages %llu",
		  (unsigned long long)ss.lz4_pages);
	LM_ASSERT(ss.bytes_out < size / 2, "sent %llu bytes",
		  (unsigned long long)ss.bytes_out);
	lm_net_server_destroy(src.s);
	lm_net_dest_destroy(d);
	lm_region_destroy(r);
	munmap(mem, size);
}

/*
 * A VMM's layout: region 0 is eager (plain memory, like the reserved
 * area: every page must be there before the guest runs), region 1 is
 * guest RAM filled lazily. Pre-copy both; the "guest" dirties pages in
 * both; the paused source re-sends region 0's dirty pages, then switches
 * over naming region 1's. Region 0 is complete at switch-over; region 1
 * fills by demand and push; both equal the source.
 */
static void t_two_regions(void **state)
{
	const uint64_t sizes[2] = { 256 << 10, 8 << 20 };
	const uint64_t size = sizes[0] + sizes[1], np = size / 4096;
	const uint64_t np0 = sizes[0] / 4096;
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .nr_urgent = 2 };
	struct lm_net_dest *d;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "ram", .size = sizes[1],
				       .backing = LM_BACKING_MEMFD,
				       .install = LM_INSTALL_CONTINUE,
				       .delivery = LM_DELIVERY_SELF };
	struct lm_net_server_config sc;
	struct lm_net_server *s;
	struct t_src src = { 0 };
	uint64_t *redo = calloc((np + 63) / 64, 8);
	uint64_t *dirty = calloc((np + 63) / 64, 8);
	uint8_t *mem = t_map(size), *eager = t_map(sizes[0]);
	char why[128];
	pthread_t th;

	(void)state;
	LM_REQUIRE_UFFD();
	LM_ASSERT(lm_net_layout_init(&l, 4096, sizes, 2, why, sizeof(why)) == 0,
		  "%s", why);
	t_fill(mem, size, SALT);
	LM_OK(lm_net_dest_create(&dc, &d));
	rc.source = lm_net_dest_region_source(d, 1);
	LM_OK(lm_region_create(&rc, &r));
	LM_OK(lm_net_dest_set_region_store(d, 0, eager));
	LM_OK(lm_net_dest_set_region_store(d, 1, lm_region_alias(r)));
	LM_OK(lm_net_dest_attach_region(d, 1, r));
	LM_OK(lm_net_dest_start(d));

	sc = (struct lm_net_server_config){ .mem = mem, .layout = &l,
		.to = lm_net_dest_address(d), .push = true, .compress = true };
	LM_OK(lm_net_server_create(&sc, &s));
	LM_OK(lm_net_server_connect(s));
	LM_OK(lm_net_server_precopy(s, NULL));
	for (uint64_t p = 3; p < np; p += 7) {
		((uint64_t *)(void *)(mem + p * 4096))[1] ^= 0xbeef;
		if (p < np0)
			redo[p / 64] |= 1ull << (p % 64);
		else
			dirty[p / 64] |= 1ull << (p % 64);
	}
	LM_OK(lm_net_server_precopy(s, redo));	/* paused: final round */
	LM_OK(lm_net_server_switchover(s, dirty, 0, NULL, NULL));
	LM_OK(lm_net_dest_wait_switchover(d, 5000));
	LM_ASSERT(lm_net_dest_region_complete(d, 0), "eager region incomplete");
	LM_ASSERT(!memcmp(eager, mem, sizes[0]), "eager region differs");
	LM_ASSERT(!lm_net_dest_region_complete(d, 1), "dirty pages counted");
	src.s = s;
	pthread_create(&th, NULL, t_serve_main, &src);
	t_touch(lm_region_addr(r), sizes[1] / 4096, 4096, 2);
	LM_OK(lm_region_wait_complete(r, 30000));
	LM_OK(lm_net_dest_finish(d));
	pthread_join(th, NULL);
	LM_OK(src.rc);
	LM_ASSERT(!memcmp(lm_region_addr(r), mem + sizes[0], sizes[1]),
		  "lazy region differs from the dirtied source");
	LM_ASSERT(lm_net_dest_region_complete(d, 1), "lazy region incomplete");
	lm_net_dest_destroy(d);
	lm_region_destroy(r);
	lm_net_server_destroy(s);
	munmap(mem, size);
	munmap(eager, sizes[0]);
	free(redo);
	free(dirty);
}

/* 2 MiB pages: demand requests and pushed frames of one huge page. */
static void t_hugetlb(void **state)
{
	const uint64_t size = 16 << 20, ps = 2 << 20;
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .nr_urgent = 2 };
	struct lm_net_dest *d;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "huge", .size = size,
				       .backing = LM_BACKING_HUGETLB,
				       .delivery = LM_DELIVERY_SELF };
	struct t_src src = { 0 };
	uint8_t *mem = t_map(size);
	char why[128];
	long prev;

	(void)state;
	LM_REQUIRE_UFFD();
	prev = t_hugepages_reserve(size / ps);
	if (prev < 0)
		LM_SKIP("cannot reserve %llu 2 MiB huge pages",
			(unsigned long long)(size / ps));
	LM_ASSERT(lm_net_layout_init(&l, ps, &size, 1, why, sizeof(why)) == 0,
		  "%s", why);
	t_fill(mem, size, SALT);
	memset(mem + ps, 0, ps);		/* one zero huge page */
	LM_OK(lm_net_dest_create(&dc, &d));
	rc.source = lm_net_dest_source(d);
	if (lm_region_create(&rc, &r)) {
		lm_net_dest_destroy(d);
		t_hugepages_restore(prev);
		LM_SKIP("hugetlb region: %s", lm_last_error());
	}
	LM_OK(lm_net_dest_attach(d, r));
	src.cfg = (struct lm_net_server_config){ .mem = mem, .layout = &l,
		.push = true, .compress = true };
	t_src_go(&src, lm_net_dest_address(d));
	LM_OK(lm_net_dest_wait_up(d, 5000));
	t_touch(lm_region_addr(r), 4, ps, 2);	/* half by demand */
	LM_OK(lm_region_wait_complete(r, 30000));
	LM_OK(lm_net_dest_finish(d));
	LM_OK(t_src_join(&src));
	LM_ASSERT(!memcmp(lm_region_addr(r), mem, size), "content differs");
	lm_net_dest_destroy(d);
	lm_region_destroy(r);
	t_hugepages_restore(prev);
	munmap(mem, size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_demand_and_push),
		cmocka_unit_test(t_demand_only),
		cmocka_unit_test(t_continue_push),
		cmocka_unit_test(t_precopy_hybrid),
		cmocka_unit_test(t_zero_and_lz4),
		cmocka_unit_test(t_two_regions),
		cmocka_unit_test(t_hugetlb),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
