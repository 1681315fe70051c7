/*
 * postcopy.c - `lazymem bench postcopy`: post-copy over TCP, at each
 * injected round-trip time, against memory that is already local.
 *
 * No VM: the guest is stood in for by threads ("vCPUs") that read every
 * page of their slice of a region in a scrambled order, each resolving its
 * own faults in its SIGBUS handler, which fetches the page over the
 * thread's own urgent connection. The page server runs in this process on
 * a second set of threads, and the round trip is added by our delaying
 * proxy (src/net/proxy.c) on loopback. Contenders, interleaved per RTT:
 *
 *   local      the limit: the region's source is memory in this process;
 *   demand     every page by a fault's own request, no push (a smaller
 *              region, --demand-mem: at 1 ms a full 1 GiB would take
 *              minutes and say nothing new);
 *   push       demand faults while the source pushes everything else;
 *   push-only  no faulting threads: the push's own rate.
 *
 * Then the destination's install step alone, without the network, both
 * ways in the same run: the image installed into a fresh region page by
 * page through lm_region_fault (how the receiver installed pushed pages
 * until lm_region_install_run) and in runs of 64 through
 * lm_region_install_run (how it does now), with the ratio.
 *
 * Every run is verified: each page must hold the image's content.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lazymem/lazymem.h>
#include "util/clock.h"
#include "bench.h"
#include "cli/cli.h"
#include "cli/tls_opts.h"
#include "net/net.h"
#include "util/error.h"

#define PAGE 4096u
#define SEED 0xbe7c4u
#define MAX_RTTS 8

enum mode { M_LOCAL, M_DEMAND, M_PUSH, M_PUSH_ONLY, M_COUNT };
static const char *const mode_name[M_COUNT] = { "local", "demand", "push",
						"push-only" };

#define NR_AB 2	/* install A/B: anon with COPY, memfd with CONTINUE */

struct install_ab;

struct pc_config {
	double load[2];		/* 1-minute load average, start and end */
	uint64_t mem, demand_mem;
	uint64_t rtt_ns[MAX_RTTS];
	int nrtt;
	unsigned threads;
	bool json;
	uint8_t *image;
	/* --tls: every network run twice, plain then TLS, side by side */
	bool tls_ab;
	struct lm_net_tls_opts tls_opts;
	struct lm_net_tls *tls;
};

struct pc_result {
	enum mode mode;
	bool proxy;		/* through the proxy (always when rtt > 0) */
	bool tls;		/* over TLS (--tls) */
	uint64_t rtt_ns, mem;
	unsigned threads;
	double seconds;
	uint64_t p50_ns, p99_ns, max_ns, timed;
	uint64_t pages_demand, pages_around, pages_background;
	uint64_t demand_requests;
	double push_mib_s;	/* pushed bytes / the push's own duration */
	uint64_t bad;
	bool ok;
};

static void fail_page(struct lm_region *r, uint64_t off, int err, void *arg)
{
	static const char msg[] = "lazymem bench postcopy: a page could not "
				  "be fetched; the run is invalid\n";

	(void)r; (void)off; (void)err; (void)arg;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(1);
}

struct server_run {
	struct lm_net_server_config cfg;
	struct lm_net_server *s;
	struct lm_net_server_stats st;
	pthread_t thread;
	int rc;
	char msg[256];
};

static void *server_main(void *arg)
{
	struct server_run *sr = arg;

	sr->rc = lm_net_server_create(&sr->cfg, &sr->s);
	if (!sr->rc)
		sr->rc = lm_net_server_connect(sr->s);
	if (!sr->rc)
		sr->rc = lm_net_server_serve(sr->s);
	if (sr->rc)
		snprintf(sr->msg, sizeof(sr->msg), "%s", util_last_error());
	if (sr->s) {
		lm_net_server_stats(sr->s, &sr->st);
		lm_net_server_destroy(sr->s);
	}
	return NULL;
}

static void take_stats(struct lm_region *r, struct pc_result *res)
{
	struct lm_stats st;

	lm_region_stats(r, &st);
	res->p50_ns = st.lat_p50_ns;
	res->p99_ns = st.lat_p99_ns;
	res->max_ns = st.lat_max_ns;
	res->timed = st.lat_count;
	res->pages_demand = st.pages_demand;
	res->pages_around = st.pages_around;
	res->pages_background = st.pages_background;
	res->bad = lm_net_pattern_check(lm_region_addr(r), res->mem, PAGE,
					SEED, NULL);
	res->ok = res->bad == 0 && st.pages_failed == 0;
}

static int run_local(const struct pc_config *c, struct pc_result *res)
{
	struct lm_source *src;
	struct lm_region *r;
	struct cli_toucher t[64];
	struct lm_region_config rc = { .name = "bench-local", .size = res->mem,
				       .delivery = LM_DELIVERY_SELF,
				       .on_fail = fail_page };
	uint64_t t0;

	if (lm_source_memory_create(c->image, res->mem, &src))
		return cli_fail("bench postcopy: %s", lm_last_error());
	rc.source = src;
	if (lm_region_create(&rc, &r)) {
		lm_source_destroy(src);
		return cli_fail("bench postcopy: %s", lm_last_error());
	}
	t0 = lm_now_ns();
	cli_touch_start(t, res->threads, lm_region_addr(r), res->mem, PAGE);
	cli_touch_join(t, res->threads);
	lm_region_wait_complete(r, -1);
	res->seconds = (double)(lm_now_ns() - t0) / 1e9;
	take_stats(r, res);
	lm_region_destroy(r);
	lm_source_destroy(src);
	return 0;
}

static int run_net(const struct pc_config *c, struct pc_result *res)
{
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &l, .req_timeout_ms = 10000,
					 .tls = res->tls ? c->tls : NULL };
	struct lm_net_dest *d;
	struct lm_net_proxy *px = NULL;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "bench-net", .size = res->mem,
				       .delivery = LM_DELIVERY_SELF,
				       .on_fail = fail_page };
	struct server_run sr = { 0 };
	struct lm_net_dest_stats ds;
	struct cli_toucher t[64];
	char why[128];
	uint64_t t0;
	int err = 0;

	lm_net_layout_init(&l, PAGE, &res->mem, 1, why, sizeof(why));
	dc.nr_urgent = res->threads ? res->threads : 1;
	if (lm_net_dest_create(&dc, &d))
		return cli_fail("bench postcopy: %s", util_last_error());
	rc.source = lm_net_dest_source(d);
	if (lm_region_create(&rc, &r)) {
		lm_net_dest_destroy(d);
		return cli_fail("bench postcopy: %s", lm_last_error());
	}
	if (lm_net_dest_attach(d, r)) {
		err = cli_fail("bench postcopy: %s", util_last_error());
		lm_region_destroy(r);
		lm_net_dest_destroy(d);
		return err;
	}
	if (res->proxy &&
	    lm_net_proxy_create("127.0.0.1:0", lm_net_dest_address(d),
				res->rtt_ns, &px)) {
		err = cli_fail("bench postcopy: %s", util_last_error());
		goto out;
	}
	sr.cfg = (struct lm_net_server_config){
		.mem = c->image, .layout = &l,
		.to = px ? lm_net_proxy_address(px) : lm_net_dest_address(d),
		.push = res->mode != M_DEMAND, .compress = true,
		.tls = res->tls ? c->tls : NULL };
	pthread_create(&sr.thread, NULL, server_main, &sr);
	if (lm_net_dest_wait_up(d, 10000)) {
		pthread_join(sr.thread, NULL);
		err = cli_fail("bench postcopy: the source did not connect: %s",
			       sr.msg);
		goto out;
	}
	t0 = lm_now_ns();
	cli_touch_start(t, res->threads, lm_region_addr(r), res->mem, PAGE);
	cli_touch_join(t, res->threads);
	err = lm_region_wait_complete(r, 600000);
	res->seconds = (double)(lm_now_ns() - t0) / 1e9;
	lm_net_dest_finish(d);
	pthread_join(sr.thread, NULL);
	if (err || sr.rc) {
		err = cli_fail("bench postcopy: %s run at %.0f us did not "
			       "complete: %s %s", mode_name[res->mode],
			       (double)res->rtt_ns / 1e3, strerror(-err),
			       sr.msg);
		goto out;
	}
	take_stats(r, res);
	lm_net_dest_stats(d, &ds);
	res->demand_requests = ds.demand_requests;
	if (sr.st.push_ns)
		res->push_mib_s = (double)sr.st.push_pages * PAGE / 1048576.0 /
				  ((double)sr.st.push_ns / 1e9);
out:
	lm_net_dest_destroy(d);
	lm_net_proxy_destroy(px);
	lm_region_destroy(r);
	return err;
}

/* The install step A/B: one backing and install mode, both ways. */
struct install_ab {
	enum lm_backing backing;
	enum lm_install install;
	double page_mib_s, run_mib_s;
	bool ok;
};

/* Fill a fresh region from the image, per page or in runs; MiB/s, or a
 * negative value when it could not be done or verified. */
static double install_fill(const struct pc_config *c, struct install_ab *ab,
			   bool runs)
{
	struct lm_source *src;
	struct lm_region *r;
	struct lm_region_config rc = { .name = "bench-install",
				       .size = c->mem, .backing = ab->backing,
				       .install = ab->install,
				       .delivery = LM_DELIVERY_SELF,
				       .on_fail = fail_page };
	uint64_t t0, ns;
	int err = 0;

	if (lm_source_memory_create(c->image, c->mem, &src))
		return -1;
	rc.source = src;
	if (lm_region_create(&rc, &r)) {
		lm_source_destroy(src);
		return -1;
	}
	t0 = lm_now_ns();
	for (uint64_t off = 0; off < c->mem && !err;
	     off += runs ? LM_INSTALL_RUN_MAX * PAGE : PAGE) {
		uint64_t left = (c->mem - off) / PAGE;
		struct lm_install_run run = { 0 };

		if (runs)
			err = lm_region_install_run(
				r, off, left < LM_INSTALL_RUN_MAX
						? (unsigned)left
						: LM_INSTALL_RUN_MAX,
				c->image + off, LM_ORIGIN_BACKGROUND, &run);
		else
			err = lm_region_fault(r, off, LM_ORIGIN_BACKGROUND);
	}
	ns = lm_now_ns() - t0;
	if (err || lm_net_pattern_check(lm_region_addr(r), c->mem, PAGE, SEED,
					NULL))
		ab->ok = false;
	lm_region_destroy(r);
	lm_source_destroy(src);
	return err ? -1 : (double)c->mem / 1048576.0 / ((double)ns / 1e9);
}

static void run_install_ab(const struct pc_config *c, struct install_ab *ab)
{
	ab->ok = true;
	ab->page_mib_s = install_fill(c, ab, false);
	ab->run_mib_s = install_fill(c, ab, true);
	ab->ok &= ab->page_mib_s > 0 && ab->run_mib_s > 0;
}

static double loadavg(void)
{
	double v = -1;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static const char help[] =
"usage: lazymem bench postcopy [--mem SIZE] [--rtt LIST] [options]\n"
"\n"
"Post-copy over TCP with an injected round-trip time. No VM: threads stand\n"
"in for vCPUs, each resolving its own faults (SIGBUS) over its own urgent\n"
"connection; the page server runs in this process; the RTT is added by\n"
"lazymem's delaying proxy on loopback (0: direct). Then the destination's\n"
"install step alone, per page against runs of 64, with the ratio. Every\n"
"run is verified.\n"
"\n"
"  -m, --mem SIZE          region for push, push-only, local (default 1G)\n"
"      --demand-mem SIZE   region for demand-only runs (default 64M)\n"
"  -r, --rtt LIST          round-trip times, e.g. 0,200us,1ms (the default)\n"
"  -t, --threads N         faulting threads (default 2)\n"
"      --tls               every network run twice, plain TCP then TLS 1.3,\n"
"                          side by side with the ratios; credentials from\n"
"                          the options below (both ends), else a fresh PSK\n"
CLI_TLS_HELP
"  -j, --json              JSON on stdout instead of the table\n"
"  -h, --help\n";

static int parse(int argc, char **argv, struct pc_config *c)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "demand-mem", required_argument, NULL, 'D' },
		{ "rtt", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "tls", no_argument, NULL, 'L' },
		CLI_TLS_LONGOPTS,
		{ 0 },
	};
	const char *rtts = "0,200us,1ms";
	char buf[256], *save = NULL, *tok;
	int o;

	*c = (struct pc_config){ .mem = 1ull << 30, .demand_mem = 64u << 20,
				 .threads = 2 };
	optind = 1;
	while ((o = getopt_long(argc, argv, "m:r:t:jh", opts, NULL)) != -1) {
		if (cli_tls_opt(o, optarg, &c->tls_opts)) {
			c->tls_ab = true;
			continue;
		}
		switch (o) {
		case 'L': c->tls_ab = true; break;
		case 'm':
		case 'D':
			if (cli_parse_size(optarg, o == 'm' ? &c->mem
							    : &c->demand_mem))
				return cli_usage_error("--%s: '%s' is not a "
						       "size", o == 'm' ? "mem"
						       : "demand-mem", optarg);
			break;
		case 'r': rtts = optarg; break;
		case 't':
			c->threads = (unsigned)atoi(optarg);
			if (c->threads < 1 || c->threads > 64)
				return cli_usage_error("--threads: '%s': "
						       "expected 1 to 64",
						       optarg);
			break;
		case 'j': c->json = true; break;
		case 'h': fputs(help, stdout); exit(0);
		default: return cli_usage_error("%s: unknown option", argv[0]);
		}
	}
	if (c->mem < 16 * PAGE || c->mem % PAGE || c->demand_mem < 16 * PAGE ||
	    c->demand_mem % PAGE)
		return cli_usage_error("--mem and --demand-mem: whole pages, "
				       "at least 64 KiB");
	snprintf(buf, sizeof(buf), "%s", rtts);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (c->nrtt == MAX_RTTS ||
		    lm_net_parse_duration(tok, &c->rtt_ns[c->nrtt]))
			return cli_usage_error("--rtt: '%s' is not a duration "
					       "(0, 200us, 1ms; at most %d)",
					       tok, MAX_RTTS);
		c->nrtt++;
	}
	return 0;
}

static double mib_s(const struct pc_result *r)
{
	return (double)r->mem / 1048576.0 / r->seconds;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* The plain TCP run a TLS run is compared with. */
static const struct pc_result *plain_of(const struct pc_result *res, int n,
					const struct pc_result *t)
{
	for (int i = 0; i < n; i++)
		if (!res[i].tls && res[i].mode == t->mode &&
		    res[i].rtt_ns == t->rtt_ns && res[i].proxy == t->proxy)
			return &res[i];
	return NULL;
}

/* The goals, checked against the runs at 200 us and loopback. */
struct goal {
	char text[160];
	bool met, measured;
};

static int goals(const struct pc_config *c, const struct pc_result *res,
		 int n, struct goal *g)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		const struct pc_result *r = &res[i];
		const struct pc_result *p = r->tls ? plain_of(res, n, r) : NULL;
		double rtt = (double)r->rtt_ns / 1e3;

		if (p && r->mode == M_DEMAND && r->rtt_ns == 200000) {
			g[k].measured = true;
			g[k].met = r->p50_ns <= 1.1 * p->p50_ns;
			snprintf(g[k++].text, sizeof(g[0].text),
				 "TLS demand at 200 us: fault p50 %.0f us <= "
				 "1.1 x plain %.0f us (%.2fx)", r->p50_ns / 1e3,
				 p->p50_ns / 1e3, ratio(r->p50_ns, p->p50_ns));
		}
		if (p && r->mode == M_PUSH_ONLY && r->rtt_ns == 0) {
			g[k].measured = true;
			g[k].met = p->seconds >= 0.8 * r->seconds;
			snprintf(g[k++].text, sizeof(g[0].text),
				 "TLS push-only at 0 us: %.0f MiB/s >= 0.8 x "
				 "plain %.0f MiB/s (%.2fx)", mib_s(r),
				 mib_s(p), mib_s(r) / mib_s(p));
		}
		if (r->tls)
			continue;	/* the absolute goals are plain TCP's */
		if ((r->mode == M_DEMAND || r->mode == M_PUSH) &&
		    r->rtt_ns == 200000) {
			g[k].measured = true;
			g[k].met = r->p50_ns / 1e3 <= rtt + 100;
			snprintf(g[k++].text, sizeof(g[0].text),
				 "%s at 200 us: fault p50 %.0f us <= RTT + 100 "
				 "= %.0f us", mode_name[r->mode],
				 r->p50_ns / 1e3, rtt + 100);
			g[k].measured = true;
			g[k].met = r->p99_ns / 1e3 <= 3 * rtt + 1000;
			snprintf(g[k++].text, sizeof(g[0].text),
				 "%s at 200 us: fault p99 %.0f us <= 3 RTT + 1 "
				 "ms = %.0f us", mode_name[r->mode],
				 r->p99_ns / 1e3, 3 * rtt + 1000);
		}
		if (r->mode == M_PUSH_ONLY && r->rtt_ns == 0) {
			double gbs = (double)r->mem / r->seconds / 1e9;

			g[k].measured = true;
			g[k].met = gbs >= 1.0;
			snprintf(g[k++].text, sizeof(g[0].text),
				 "push-only on loopback: %.2f GB/s filled "
				 "(%.0f MiB/s on the wire) >= 1 GB/s", gbs,
				 r->push_mib_s);
		}
	}
	(void)c;
	return k;
}

static const char *ab_name(const struct install_ab *ab)
{
	return ab->install == LM_INSTALL_COPY ? "anon, UFFDIO_COPY"
					      : "memfd, UFFDIO_CONTINUE";
}

static void print_table(const struct pc_config *c, const struct pc_result *res,
			int n, const struct install_ab *ab)
{
	struct goal g[16];
	int ng = goals(c, res, n, g);

	printf("lazymem bench postcopy: %llu MiB region (demand-only: %llu "
	       "MiB), 4 KiB pages, %u faulting threads, %d CPUs\n"
	       "guest: threads standing in for vCPUs (no VM), each reading "
	       "every page of its slice once, scrambled;\n"
	       "source: page server threads in this process; RTT added by "
	       "lazymem's proxy on loopback (0: direct)\n"
	       "load average (1 min) at start %.2f, at end %.2f: other work "
	       "on these CPUs shows in the latencies\n\n",
	       (unsigned long long)(c->mem >> 20),
	       (unsigned long long)(c->demand_mem >> 20), c->threads,
	       bench_ncpus(), c->load[0], c->load[1]);
	printf("%-9s %-6s %-5s %7s %6s %8s %9s %8s %8s %8s %8s %9s %9s %8s\n",
	       "mode", "via", "tls", "rtt us", "MiB", "seconds", "MiB/s", "xlocal", "p50 us",
	       "p99 us", "max us", "demand", "pushed", "verified");
	for (int i = 0; i < n; i++) {
		const struct pc_result *r = &res[i];
		double rate = (double)r->mem / 1048576.0 / r->seconds;
		double local = (double)res[0].mem / 1048576.0 / res[0].seconds;

		printf("%-9s %-6s %-5s %7.0f %6llu %8.3f %9.0f %7.2fx %8.0f %8.0f "
		       "%8.0f %9llu %9llu %8s\n", mode_name[r->mode],
		       r->mode == M_LOCAL ? "-" : r->proxy ? "proxy" : "direct",
		       r->mode == M_LOCAL ? "-" : r->tls ? "yes" : "no",
		       (double)r->rtt_ns / 1e3,
		       (unsigned long long)(r->mem >> 20), r->seconds, rate,
		       rate / local, r->p50_ns / 1e3, r->p99_ns / 1e3,
		       r->max_ns / 1e3,
		       (unsigned long long)(r->pages_demand + r->pages_around),
		       (unsigned long long)r->pages_background,
		       r->ok ? "yes" : "NO");
	}
	printf("\nvia: direct loopback, or through lazymem's proxy (the 0 us "
	       "proxy row is what the proxy's own two extra hops cost);\n"
	       "seconds: first touch until every page is present; p50/p99/"
	       "max: demand-fault latency seen by the fault path (claim to "
	       "install, including the network round trip), over %s;\n"
	       "xlocal: fill rate relative to the local limit.\n\ngoals:\n",
	       "every demand fault");
	for (int i = 0; i < ng; i++)
		printf("  [%s] %s\n", g[i].met ? "met" : "MISSED", g[i].text);
	if (c->tls_ab) {
		printf("\nTLS 1.3 (%s, userspace records: no kTLS) against plain "
		       "TCP, run by run (TLS / plain):\n",
		       lm_net_tls_mode(c->tls));
		printf("  %-9s %-6s %7s %8s %8s %8s %8s\n", "mode", "via",
		       "rtt us", "p50", "p99", "seconds", "MiB/s");
		for (int i = 0; i < n; i++) {
			const struct pc_result *r = &res[i];
			const struct pc_result *p = r->tls ? plain_of(res, n, r)
							   : NULL;

			if (!p)
				continue;
			printf("  %-9s %-6s %7.0f %7.2fx %7.2fx %7.2fx %7.2fx\n",
			       mode_name[r->mode], r->proxy ? "proxy" : "direct",
			       (double)r->rtt_ns / 1e3,
			       ratio(r->p50_ns, p->p50_ns),
			       ratio(r->p99_ns, p->p99_ns),
			       ratio(r->seconds, p->seconds),
			       ratio(mib_s(r), mib_s(p)));
		}
	}
	printf("\nthe destination's install step alone (no network), %llu "
	       "MiB from memory into a fresh region:\n",
	       (unsigned long long)(c->mem >> 20));
	printf("  %-24s %14s %14s %7s %8s\n", "", "per page MiB/s",
	       "runs MiB/s", "ratio", "verified");
	for (int i = 0; i < NR_AB; i++)
		printf("  %-24s %14.0f %14.0f %6.2fx %8s\n", ab_name(&ab[i]),
		       ab[i].page_mib_s, ab[i].run_mib_s,
		       ab[i].run_mib_s / ab[i].page_mib_s,
		       ab[i].ok ? "yes" : "NO");
	printf("per page: lm_region_fault for each page (the receiver until "
	       "now); runs: lm_region_install_run, 64 pages a call.\n");
}

static json_object *ab_json(const struct install_ab *ab)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < NR_AB; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "mode", json_object_new_string(ab_name(&ab[i])));
		json_object_object_add(o, "per_page_mib_per_s", json_object_new_double(ab[i].page_mib_s));
		json_object_object_add(o, "runs_mib_per_s", json_object_new_double(ab[i].run_mib_s));
		json_object_object_add(o, "ratio", json_object_new_double(ab[i].run_mib_s / ab[i].page_mib_s));
		json_object_object_add(o, "verified", json_object_new_boolean(ab[i].ok));
		json_object_array_add(a, o);
	}
	return a;
}

static void print_json(const struct pc_config *c, const struct pc_result *res,
		       int n, const struct install_ab *ab)
{
	json_object *root = json_object_new_object();
	json_object *cfg = json_object_new_object();
	json_object *arr = json_object_new_array(), *ga, *rl;
	struct goal g[16];
	int ng = goals(c, res, n, g);

	json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)c->mem));
	json_object_object_add(cfg, "demand_mem", json_object_new_int64((int64_t)c->demand_mem));
	json_object_object_add(cfg, "page_size", json_object_new_int(PAGE));
	json_object_object_add(cfg, "threads", json_object_new_int((int)c->threads));
	json_object_object_add(cfg, "cpus", json_object_new_int(bench_ncpus()));
	json_object_object_add(cfg, "loadavg_start", json_object_new_double(c->load[0]));
	json_object_object_add(cfg, "loadavg_end", json_object_new_double(c->load[1]));
	json_object_object_add(cfg, "guest", json_object_new_string(
		"threads standing in for vCPUs, no VM"));
	json_object_object_add(cfg, "transport", json_object_new_string(
		"loopback TCP; RTT added by lazymem proxy (0: direct)"));
	rl = json_object_new_array();
	for (int i = 0; i < c->nrtt; i++)
		json_object_array_add(rl, json_object_new_double((double)c->rtt_ns[i] / 1e3));
	json_object_object_add(cfg, "rtt_us", rl);
	json_object_object_add(cfg, "tls", json_object_new_string(c->tls_ab ? lm_net_tls_mode(c->tls) : "off"));
	for (int i = 0; i < n; i++) {
		const struct pc_result *r = &res[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "mode", json_object_new_string(mode_name[r->mode]));
		json_object_object_add(o, "rtt_us", json_object_new_double((double)r->rtt_ns / 1e3));
		json_object_object_add(o, "via", json_object_new_string(r->mode == M_LOCAL ? "local" : r->proxy ? "proxy" : "direct"));
		json_object_object_add(o, "tls", json_object_new_boolean(r->tls));
		json_object_object_add(o, "mem", json_object_new_int64((int64_t)r->mem));
		json_object_object_add(o, "threads", json_object_new_int((int)r->threads));
		json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
		json_object_object_add(o, "mib_per_s", json_object_new_double((double)r->mem / 1048576.0 / r->seconds));
		json_object_object_add(o, "fault_p50_us", json_object_new_double(r->p50_ns / 1e3));
		json_object_object_add(o, "fault_p99_us", json_object_new_double(r->p99_ns / 1e3));
		json_object_object_add(o, "fault_max_us", json_object_new_double(r->max_ns / 1e3));
		json_object_object_add(o, "faults_timed", json_object_new_int64((int64_t)r->timed));
		json_object_object_add(o, "pages_demand", json_object_new_int64((int64_t)(r->pages_demand + r->pages_around)));
		json_object_object_add(o, "pages_background", json_object_new_int64((int64_t)r->pages_background));
		json_object_object_add(o, "demand_requests", json_object_new_int64((int64_t)r->demand_requests));
		json_object_object_add(o, "push_wire_mib_per_s", json_object_new_double(r->push_mib_s));
		json_object_object_add(o, "verified", json_object_new_boolean(r->ok));
		json_object_array_add(arr, o);
	}
	ga = json_object_new_array();
	for (int i = 0; i < ng; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "goal", json_object_new_string(g[i].text));
		json_object_object_add(o, "met", json_object_new_boolean(g[i].met));
		json_object_array_add(ga, o);
	}
	json_object_object_add(root, "benchmark", json_object_new_string("postcopy"));
	json_object_object_add(root, "config", cfg);
	json_object_object_add(root, "results", arr);
	json_object_object_add(root, "goals", ga);
	json_object_object_add(root, "install_ab", ab_json(ab));
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

int cmd_bench_postcopy(int argc, char **argv)
{
	struct pc_config c;
	struct pc_result res[2 * (2 + 3 * MAX_RTTS)];
	struct install_ab ab[NR_AB] = {
		{ .backing = LM_BACKING_ANON, .install = LM_INSTALL_COPY },
		{ .backing = LM_BACKING_MEMFD, .install = LM_INSTALL_CONTINUE },
	};
	int n = 0, err = parse(argc, argv, &c);
	bool all_ok = true;

	if (err)
		return err;
	if (c.tls_ab) {
		bool given = c.tls_opts.cert || c.tls_opts.psk_file;

		if (given ? cli_tls_load(&c.tls_opts, &c.tls)
			  : lm_net_tls_create_ephemeral(&c.tls))
			return given ? 2 : cli_fail("bench postcopy: %s",
						    util_last_error());
	}
	signal(SIGPIPE, SIG_IGN);
	c.image = mmap(NULL, BENCH_MAX(c.mem, c.demand_mem),
		       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (c.image == MAP_FAILED)
		return cli_fail("bench postcopy: cannot map the image");
	lm_net_pattern_fill(c.image, BENCH_MAX(c.mem, c.demand_mem), PAGE, SEED);
	c.load[0] = loadavg();
	res[n] = (struct pc_result){ .mode = M_LOCAL, .mem = c.mem,
				     .threads = c.threads };
	if (run_local(&c, &res[n++]))
		return 1;
	for (int i = 0; i < c.nrtt; i++) {
		/* At 0 the demand run also goes through the proxy with no
		 * delay: what the proxy itself adds to a round trip. */
		for (int m = c.rtt_ns[i] ? M_DEMAND : M_DEMAND - 1;
		     m < M_COUNT; m++) {
			struct pc_result *r = &res[n];
			bool calib = m == M_DEMAND - 1;

			if (calib)
				m = M_DEMAND;
			*r = (struct pc_result){
				.mode = (enum mode)m, .rtt_ns = c.rtt_ns[i],
				.proxy = c.rtt_ns[i] || calib,
				.mem = m == M_DEMAND ? c.demand_mem : c.mem,
				.threads = m == M_PUSH_ONLY ? 0 : c.threads };
			if (calib)
				m = M_DEMAND - 1;
			if (!c.json)
				fprintf(stderr, "\rrunning %s at %.0f us ...   ",
					mode_name[m], (double)c.rtt_ns[i] / 1e3);
			if (run_net(&c, r))
				return 1;
			n++;
			if (!c.tls_ab)
				continue;
			/* the same run over TLS, right after: interleaved,
			 * so load drifts hit both alike */
			res[n] = *r;
			res[n].tls = true;
			if (!c.json)
				fprintf(stderr, "\rrunning %s at %.0f us, TLS ...",
					mode_name[m], (double)c.rtt_ns[i] / 1e3);
			if (run_net(&c, &res[n]))
				return 1;
			n++;
		}
	}
	for (int i = 0; i < NR_AB; i++) {
		if (!c.json)
			fprintf(stderr, "\rrunning the install A/B ...      ");
		run_install_ab(&c, &ab[i]);
		all_ok &= ab[i].ok;
	}
	c.load[1] = loadavg();
	if (!c.json)
		fprintf(stderr, "\r%40s\r", "");
	for (int i = 0; i < n; i++)
		all_ok &= res[i].ok;
	if (c.json)
		print_json(&c, res, n, ab);
	else
		print_table(&c, res, n, ab);
	munmap(c.image, BENCH_MAX(c.mem, c.demand_mem));
	lm_net_tls_destroy(c.tls);
	return all_ok ? 0 : cli_fail("bench postcopy: a run failed its "
				     "verification");
}
