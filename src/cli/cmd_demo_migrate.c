/*
 * cmd_demo_migrate.c - `lazymem demo migrate`: live migration of a running
 * test VM, both ends in this process over loopback, no arguments needed.
 *
 * The guest fills its RAM and keeps dirtying a hot set of pages. The
 * source copies its memory while it runs (KVM's dirty log picks what to
 * send again each round), pauses it, hands over the vCPUs, and the
 * destination resumes it at once: a vCPU that touches a page still
 * missing there fetches it on its own thread, the rest is pushed. The
 * guest carries on dirtying, then checks every word of its memory. Then
 * the same again, post-copy only, with the connection cut in the middle
 * and resumed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/lazymem.h>
#include "util/error.h"
#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "migrate/migrate.h"

static const char help[] =
"usage: lazymem demo migrate [--mem SIZE] [--vcpus N]\n"
"\n"
"Migrate a running test VM over loopback twice: hybrid (pre-copy rounds,\n"
"then the pages still dirty on demand), then post-copy with the connection\n"
"cut mid-way and resumed. The guest checks every word of its memory on the\n"
"destination. Defaults: 256 MiB, 2 vCPUs.\n";

static void show_progress(const char *what, uint64_t done, uint64_t total,
			  void *arg)
{
	(void)arg;
	if (total)
		fprintf(stderr, "\r\033[K   %s: %llu / %llu pages", what,
			(unsigned long long)done, (unsigned long long)total);
	else
		fprintf(stderr, "\r\033[K   %s\n", what);
	fflush(stderr);
}

static int demo_one(const char *title, uint64_t mem, unsigned vcpus,
		    enum lm_migrate_mode mode, unsigned cut_ms)
{
	struct lm_vm_config cfg = {
		.mem_size = mem, .nr_vcpus = vcpus, .backing = LM_BACKING_ANON,
		.delivery = LM_VM_LIMIT, .guest_page_size = 4096, .gen = 9,
	};
	struct lm_vm_workload wl = { .kind = LM_WL_MIGRATE, .seed = 1,
				     .timeout_ms = 60000,
				     .ws_pages = mem / 4096 / vcpus / 100 };
	struct lm_migrate_send_opts so = {
		.mode = mode, .warmup_ms = 100, .compress = true,
		.resume = cut_ms > 0, .resume_timeout_ms = 30000,
		.timeout_ms = 60000, .cut_after_ms = cut_ms,
	};
	struct lm_migrate_recv_opts ro = {
		.delivery = LM_VM_EXIT, .hold = cut_ms > 0,
		.hold_timeout_ms = 30000, .run_ms = 200, .timeout_ms = 60000,
	};
	struct lm_migrate_pair_result p;
	const struct lm_migrate_send_result *s = &p.send;
	const struct lm_migrate_recv_result *r = &p.recv;

	if (cli_progress_enabled())
		so.progress = show_progress;
	printf("%s\n", title);
	fflush(stdout);
	if (lm_vm_migrate_pair(&cfg, &wl, &so, &ro, 0, &p)) {
		if (so.progress)
			fputs("\n", stderr);
		return cli_fail("demo migrate: %s", util_last_error());
	}
	printf("   source: %u pre-copy rounds (%llu pages first, %llu in the last), guest made %llu dirtying passes\n",
	       s->rounds, (unsigned long long)s->round_pages[0],
	       (unsigned long long)(s->rounds ? s->round_pages[(s->rounds < 16 ? s->rounds : 16) - 1] : 0),
	       (unsigned long long)s->passes);
	printf("   downtime %.1f ms (pause asked -> destination vCPU running: vCPUs stopped in %.1f ms, switch-over sent at %.1f ms); %llu pages sent while paused, %llu left dirty\n",
	       (double)p.downtime_ns / 1e6,
	       (double)(s->t_paused_ns - s->t_pause_ns) / 1e6,
	       (double)(s->t_switchover_ns - s->t_pause_ns) / 1e6,
	       (unsigned long long)s->pages_final,
	       (unsigned long long)s->pages_left);
	printf("   destination: %llu pre-copied pages mapped ahead of the guest and %llu on its faults, no transfer; %llu by demand (p50 %.0f us, p99 %.0f us), %llu pushed\n",
	       (unsigned long long)r->pages_settled,
	       (unsigned long long)r->net.precopy_hits,
	       (unsigned long long)r->net.demand_pages,
	       (double)r->net.req_p50_ns / 1e3, (double)r->net.req_p99_ns / 1e3,
	       (unsigned long long)r->net.push_pages);
	if (cut_ms)
		printf("   connection cut %u ms into post-copy: %llu link break(s), resumed in session %llu; vCPUs needing a page were held meanwhile\n",
		       cut_ms, (unsigned long long)r->net.link_downs,
		       (unsigned long long)r->net.sessions);
	printf("   guest on the destination: %llu more passes, then checked %llu words: %s (migration took %.2f s)\n",
	       (unsigned long long)(r->passes > s->passes ? r->passes - s->passes : 0),
	       (unsigned long long)r->run.words_checked,
	       r->run.verified ? "all correct" : "MISMATCH",
	       (double)p.total_ns / 1e9);
	if (!r->run.verified)
		return cli_fail("demo migrate: %llu words wrong, first at gpa 0x%llx (expected 0x%llx, got 0x%llx)",
				(unsigned long long)r->run.mismatches,
				(unsigned long long)r->run.first_bad_gpa,
				(unsigned long long)r->run.first_expected,
				(unsigned long long)r->run.first_got);
	return 0;
}

int cmd_demo_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t mem = 256ULL << 20;
	unsigned long vcpus = 2;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "m:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_size(optarg, &mem) || !mem)
				return cli_usage_error("--mem: '%s' is not a size", optarg);
			break;
		case 'c':
			if (vm_opt_uint(optarg, 1, LM_MAX_VCPUS, &vcpus))
				return cli_usage_error("--vcpus: '%s': expected 1 to %d",
						       optarg, LM_MAX_VCPUS);
			break;
		case 'h': fputs(help, stdout); return 0;
		default: return cli_usage_error("see 'lazymem demo migrate --help'");
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	printf("lazymem demo migrate: a running %llu MiB, %lu-vCPU test VM moved over loopback\n\n",
	       (unsigned long long)(mem >> 20), vcpus);
	rc = demo_one("1. hybrid: pre-copy rounds while the guest dirties 1% of its RAM, pause, switch over, post-copy the rest",
		      mem, (unsigned)vcpus, LM_MIGRATE_HYBRID, 0);
	if (!rc)
		rc = demo_one("\n2. post-copy only, the connection cut 20 ms after the switch-over and resumed",
			      mem, (unsigned)vcpus, LM_MIGRATE_POSTCOPY, 20);
	if (!rc)
		printf("\nboth migrations verified by the guest, word by word.\n");
	return rc;
}
