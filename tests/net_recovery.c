/*
 * net_recovery.c - breaks in post-copy, and what the destination does.
 *
 *   cut_resume_proxy   the network is cut (at our delaying proxy) twice
 *                      while faults and push are under way; the source
 *                      dials again and resumes; faulting threads were
 *                      held, not failed; every page arrives exactly once
 *                      per install and matches the source;
 *   cut_resume_source  the same with the source shutting its own sockets;
 *   peer_gone          no hold: the source process is killed; a fault on a
 *                      missing page fails with -EIO/-ETIMEDOUT in bounded
 *                      time, visibly, and the region says which page;
 *   hold_timeout       hold with a limit: the source never returns, so the
 *                      held fault fails after the limit; a different
 *                      source (another session) is refused, not resumed.
 */
#include "util/clock.h"
#include "net_util.h"
#include "util/error.h"

#define SALT 0x77

struct cutter {
	struct t_src *src;
	struct lm_net_proxy *proxy;
	struct lm_region *r;
	uint64_t at_pages[2];
	pthread_t thread;
	int cuts;
};

static void *cutter_main(void *arg)
{
	struct cutter *c = arg;

	for (int k = 0; k < 2; k++) {
		while (lm_region_pages_present(c->r) < c->at_pages[k])
			usleep(1000);
		if (c->proxy)
			lm_net_proxy_cut(c->proxy);
		else
			lm_net_server_cut(c->src->s);
		c->cuts++;
		usleep(20000);
	}
	return NULL;
}

static void cut_resume(bool via_proxy)
{
	const uint64_t size = 32 << 20, np = size / 4096;
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .nr_urgent = 2,
					 .hold = true, .hold_timeout_ms = 20000,
					 .req_timeout_ms = 2000 };
	struct lm_net_dest *d;
	struct lm_net_proxy *px = NULL;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "cut", .size = size,
				       .delivery = LM_DELIVERY_SELF };
	struct t_src src = { 0 };
	struct cutter cut = { 0 };
	struct lm_net_dest_stats ds;
	struct lm_net_server_stats ss;
	struct lm_stats st;
	uint8_t *mem = t_map(size);

	LM_REQUIRE_UFFD();
	t_layout(&l, size);
	t_fill(mem, size, SALT);
	LM_OK(lm_net_dest_create(&dc, &d));
	rc.source = lm_net_dest_source(d);
	LM_OK(lm_region_create(&rc, &r));
	LM_OK(lm_net_dest_attach(d, r));
	if (via_proxy)
		LM_OK(lm_net_proxy_create("127.0.0.1:0", lm_net_dest_address(d),
					  200000, &px));
	src.cfg = (struct lm_net_server_config){
		.mem = mem, .layout = &l,
		.to = px ? lm_net_proxy_address(px) : lm_net_dest_address(d),
		.push = true, .compress = true, .resume = true,
		.resume_timeout_ms = 10000 };
	t_src_thread(&src);
	while (!atomic_load(&src.connected))
		usleep(1000);
	LM_ASSERT(atomic_load(&src.connected) == 1, "source did not connect");
	cut = (struct cutter){ .src = &src, .proxy = px, .r = r,
			       .at_pages = { np / 5, np / 2 } };
	pthread_create(&cut.thread, NULL, cutter_main, &cut);
	t_touch(lm_region_addr(r), np, 4096, 2);
	LM_OK(lm_region_wait_complete(r, 60000));
	pthread_join(cut.thread, NULL);
	LM_OK(lm_net_dest_wait_up(d, 10000));
	LM_OK(lm_net_dest_finish(d));
	pthread_join(src.thread, NULL);
	LM_OK(src.rc);
	lm_net_server_stats(src.s, &ss);
	lm_net_dest_stats(d, &ds);
	lm_region_stats(r, &st);
	print_message("  cuts %d, link downs %llu, resumes %llu, sessions "
		      "%llu; demand %llu, push %llu (skipped %llu)\n", cut.cuts,
		      (unsigned long long)ds.link_downs,
		      (unsigned long long)ss.resumes,
		      (unsigned long long)ds.sessions,
		      (unsigned long long)st.pages_demand,
		      (unsigned long long)st.pages_background,
		      (unsigned long long)ds.push_skipped);
	LM_ASSERT(!memcmp(lm_region_addr(r), mem, size),
		  "content differs after resume");
	LM_ASSERT(st.pages_failed == 0, "%llu pages failed",
		  (unsigned long long)st.pages_failed);
	LM_ASSERT(st.pages_demand + st.pages_background == np,
		  "installed %llu pages of %llu",
		  (unsigned long long)(st.pages_demand + st.pages_background),
		  (unsigned long long)np);
	LM_ASSERT(ss.resumes >= 1 && ds.sessions >= 2 && ds.link_downs >= 1,
		  "no resume happened (resumes %llu)",
		  (unsigned long long)ss.resumes);
	lm_net_server_destroy(src.s);
	lm_net_dest_destroy(d);
	lm_net_proxy_destroy(px);
	lm_region_destroy(r);
	munmap(mem, size);
}

static void t_cut_resume_proxy(void **state)
{
	(void)state;
	cut_resume(true);
}

static void t_cut_resume_source(void **state)
{
	(void)state;
	cut_resume(false);
}

/* A destination whose source is in a child process we can kill. */
struct gone {
	struct lm_net_layout l;
	struct lm_net_dest *d;
	struct lm_region *r;
	struct t_src src;
	uint8_t *mem;
};

static void gone_setup(struct gone *g, bool hold, int hold_ms)
{
	const uint64_t size = 4 << 20;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &g->l, .nr_urgent = 1,
					 .hold = hold, .hold_timeout_ms = hold_ms,
					 .req_timeout_ms = 300 };
	struct lm_region_config rc = { .name = "gone", .size = size,
				       .delivery = LM_DELIVERY_SELF };

	memset(g, 0, sizeof(*g));
	if (T_TSAN)
		LM_SKIP("needs fork(), which ThreadSanitizer cannot follow "
			"in a threaded process");
	t_layout(&g->l, size);
	g->mem = t_map(size);
	t_fill(g->mem, size, SALT);
	g->src.cfg = (struct lm_net_server_config){ .mem = g->mem,
						    .layout = &g->l };
	t_src_fork(&g->src);	/* before any thread of ours */
	LM_OK(lm_net_dest_create(&dc, &g->d));
	rc.source = lm_net_dest_source(g->d);
	LM_OK(lm_region_create(&rc, &g->r));
	LM_OK(lm_net_dest_attach(g->d, g->r));
	t_src_go(&g->src, lm_net_dest_address(g->d));
	LM_OK(lm_net_dest_wait_up(g->d, 5000));
	/* The first pages arrive while the source lives. */
	LM_OK(lm_region_fault(g->r, 0, LM_ORIGIN_VCPU));
	LM_OK(lm_region_fault(g->r, 4096, LM_ORIGIN_VCPU));
	kill(g->src.pid, SIGKILL);
	waitpid(g->src.pid, NULL, 0);
}

static void gone_teardown(struct gone *g)
{
	lm_net_dest_destroy(g->d);
	lm_region_destroy(g->r);
	munmap(g->mem, g->l.size);
}

static void t_peer_gone(void **state)
{
	struct gone g;
	uint64_t t0, ms, off = 0;
	int rc;

	(void)state;
	LM_REQUIRE_UFFD();
	gone_setup(&g, false, 0);
	LM_ASSERT(!memcmp(lm_region_addr(g.r), g.mem, 8192),
		  "pages fetched before the kill differ");
	t0 = lm_now_ns();
	rc = lm_region_fault(g.r, 64 * 4096, LM_ORIGIN_VCPU);
	ms = (lm_now_ns() - t0) / 1000000;
	print_message("  fault after the source died: %d (%s) in %llu ms\n",
		      rc, strerror(-rc), (unsigned long long)ms);
	LM_ASSERT(rc == -EIO || rc == -ETIMEDOUT, "fault returned %d", rc);
	LM_ASSERT(ms < 3000, "took %llu ms", (unsigned long long)ms);
	LM_ASSERT(lm_region_error(g.r, &off) == rc && off == 64 * 4096,
		  "region error %d at %llu", lm_region_error(g.r, NULL),
		  (unsigned long long)off);
	gone_teardown(&g);
}

static void t_hold_timeout(void **state)
{
	struct gone g;
	struct lm_net_server *other;
	struct lm_net_server_config oc;
	uint64_t t0, ms;
	int rc;

	(void)state;
	LM_REQUIRE_UFFD();
	gone_setup(&g, true, 800);
	/* Another source, with the same layout but not the same session:
	 * it must not be taken for the one that left. */
	oc = (struct lm_net_server_config){ .mem = g.mem, .layout = &g.l,
		.to = lm_net_dest_address(g.d) };
	LM_OK(lm_net_server_create(&oc, &other));
	rc = lm_net_server_connect(other);
	print_message("  other source: %s\n", util_last_error());
	LM_ASSERT(rc == -ECONNREFUSED &&
		  strstr(util_last_error(), "not the one in progress"),
		  "a different source was let in (%d)", rc);
	lm_net_server_destroy(other);
	t0 = lm_now_ns();
	rc = lm_region_fault(g.r, 100 * 4096, LM_ORIGIN_VCPU);
	ms = (lm_now_ns() - t0) / 1000000;
	print_message("  held fault gave up: %d (%s) after %llu ms\n", rc,
		      strerror(-rc), (unsigned long long)ms);
	LM_ASSERT(rc == -ETIMEDOUT, "fault returned %d", rc);
	LM_ASSERT(ms >= 300 && ms < 3000, "held for %llu ms",
		  (unsigned long long)ms);
	gone_teardown(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_cut_resume_proxy),
		cmocka_unit_test(t_cut_resume_source),
		cmocka_unit_test(t_peer_gone),
		cmocka_unit_test(t_hold_timeout),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
