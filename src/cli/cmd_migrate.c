/*
 * cmd_migrate.c - live migration of a test VM between two processes:
 *
 *   lazymem migrate recv   the destination: listens, resumes, verifies
 *   lazymem migrate send   the source: runs the VM, migrates it, serves it
 *
 * As QEMU's destination is started with -incoming and the same machine
 * options, recv is told the VM's shape (--mem, --vcpus); a source with
 * another layout is refused at its handshake. src/migrate/ is the
 * work; this file is options and reports.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/lazymem.h>
#include "util/error.h"
#include "cli/cli.h"
#include "cli/tls_opts.h"
#include "cli/vm_opts.h"
#include "migrate/migrate.h"

#define DEFAULT_MEM (64ULL << 20)
#define DEFAULT_GEN 5

static int parse_ms(const char *opt, const char *s, int min, int *out)
{
	unsigned long v;

	if (vm_opt_uint(s, 0, 86400000, &v) && !(min < 0 && !strcmp(s, "-1"))) {
		cli_usage_error("%s: '%s' is not a number of milliseconds%s",
				opt, s, min < 0 ? " (-1: forever)" : "");
		return 2;	/* a literal: on 0, *out is seen to be set */
	}
	*out = !strcmp(s, "-1") ? -1 : (int)v;
	return 0;
}

/*
 * The VM's shape, which both ends must be given alike: --mem (m), --vcpus
 * (c), --guest-pages (g). 1: handled, 0: not one of them, 2: bad value.
 */
static int parse_shape(int c, const char *arg, uint64_t *mem,
		       unsigned *vcpus, uint64_t *guest_pages)
{
	unsigned long v;

	switch (c) {
	case 'm':
		if (cli_parse_size(arg, mem) || !*mem)
			return cli_usage_error("--mem: '%s' is not a size", arg);
		return 1;
	case 'c':
		if (vm_opt_uint(arg, 1, LM_MAX_VCPUS, &v))
			return cli_usage_error("--vcpus: '%s': expected 1 to %d",
					       arg, LM_MAX_VCPUS);
		*vcpus = (unsigned)v;
		return 1;
	case 'g':
		if (vm_opt_guest_pages(arg, guest_pages))
			return cli_usage_error("--guest-pages: '%s': expected 4k or 2m", arg);
		return 1;
	}
	return 0;
}

static void progress(const char *what, uint64_t done, uint64_t total,
		     void *arg)
{
	(void)arg;
	if (total)
		fprintf(stderr, "\r\033[Kmigrate: %s: %llu / %llu pages (%.0f%%)",
			what, (unsigned long long)done,
			(unsigned long long)total, 100.0 * (double)done / (double)total);
	else
		fprintf(stderr, "\r\033[Kmigrate: %s", what);
	if (!strcmp(what, "post-copy"))
		fputs("\n", stderr);
	fflush(stderr);
}

/* Without a terminal only the switch-over is told, as a line: scripts
 * wait for it. */
static void recv_events(const char *what, uint64_t done, uint64_t total,
			void *arg)
{
	if (!strcmp(what, "switch-over")) {
		fprintf(stderr, "%smigrate recv: switch-over: %llu vCPUs restored, running\n",
			arg ? "\r\033[K" : "", (unsigned long long)done);
		fflush(stderr);
	} else if (arg) {
		progress(what, done, total, NULL);
	}
}

static double ms(uint64_t a, uint64_t b)
{
	return b > a && a ? (double)(b - a) / 1e6 : 0;
}

#define J_I64(o, k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
#define J_DBL(o, k, v) json_object_object_add(o, k, json_object_new_double(v))

/* ---------------- migrate recv ---------------- */

static const char recv_help[] =
"usage: lazymem migrate recv --listen HOST:PORT [options]\n"
"\n"
"The destination of a live migration. Build a VM of the given shape, wait\n"
"for `lazymem migrate send --to` to dial in, take its pre-copy pages into\n"
"guest RAM's page cache, and at the switch-over restore its vCPUs and run\n"
"them at once: each vCPU fetches the pages it still lacks itself, over its\n"
"own urgent connection, while the rest is pushed. The guest carries on\n"
"dirtying for --run ms, then checks every word of its memory.\n"
"\n"
"  -l, --listen HOST:PORT    where to wait for the source (port 0: any)\n"
"  -m, --mem SIZE            guest RAM (default 64M); must match the source\n"
"  -c, --vcpus N             vCPUs (default 2); must match the source\n"
"      --guest-pages SIZE    guest page tables: 4k (default) or 2m\n"
"  -d, --delivery KIND       exit (default: vCPUs resolve their own faults)\n"
"                            or hybrid (plus a blocking view for the VMM)\n"
"      --thp                 collapse each 2 MiB range of RAM into a huge\n"
"                            page once it is full (collapser thread)\n"
"      --hold                if the connection breaks, hold the vCPUs that\n"
"                            need a missing page until the source resumes\n"
"      --hold-timeout MS     give up holding after MS (default 30000; -1 never)\n"
"      --request-timeout MS  one demand request (default 5000)\n"
"      --run MS              the guest runs this long after resuming (100)\n"
"      --timeout MS          wait this long for the source and for any vCPU\n"
"                            progress (default 120000)\n"
CLI_TLS_HELP
"  -j, --json                the result as JSON on stdout\n"
"  -h, --help\n";

struct recv_cli {
	struct lm_migrate_recv_opts o;
	struct lm_net_tls_opts tls;
	bool json;
};

static int recv_parse(int argc, char **argv, struct recv_cli *r)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "guest-pages", required_argument, NULL, 'g' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "hold", no_argument, NULL, 'H' },
		{ "thp", no_argument, NULL, 'P' },
		{ "hold-timeout", required_argument, NULL, 'O' },
		{ "request-timeout", required_argument, NULL, 'R' },
		{ "run", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLI_TLS_LONGOPTS,
		{ 0 },
	};
	struct lm_migrate_recv_opts *o = &r->o;
	int c, t, k;

	*o = (struct lm_migrate_recv_opts){
		.mem_size = DEFAULT_MEM, .nr_vcpus = 2, .guest_page_size = 4096,
		.delivery = LM_VM_EXIT, .hold_timeout_ms = 30000,
		.run_ms = 100, .timeout_ms = 120000 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:m:c:d:jh", opts, NULL)) != -1) {
		if (cli_tls_opt(c, optarg, &r->tls))
			continue;
		k = parse_shape(c, optarg, &o->mem_size, &o->nr_vcpus,
				&o->guest_page_size);
		if (k == 2)
			return 2;
		if (k)
			continue;
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 'd':
			if (lm_vm_delivery_parse(optarg, &o->delivery) ||
			    (o->delivery != LM_VM_EXIT && o->delivery != LM_VM_HYBRID))
				return cli_usage_error("--delivery: '%s': expected exit or hybrid", optarg);
			break;
		case 'H': o->hold = true; break;
		case 'P': o->thp = LM_THP_AUTO; break;
		case 'O':
			if (parse_ms("--hold-timeout", optarg, -1, &o->hold_timeout_ms))
				return 2;
			break;
		case 'R':
			if (parse_ms("--request-timeout", optarg, 1, &o->req_timeout_ms))
				return 2;
			break;
		case 'r':
			if (parse_ms("--run", optarg, 0, &t))
				return 2;
			o->run_ms = (unsigned)t;
			break;
		case 'T':
			if (parse_ms("--timeout", optarg, 0, &t))
				return 2;
			o->timeout_ms = (unsigned)t;
			break;
		case 'j': r->json = true; break;
		case 'h': fputs(recv_help, stdout); exit(0);
		default: return cli_usage_error("see 'lazymem migrate recv --help'");
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->listen)
		return cli_usage_error("--listen HOST:PORT is required");
	return 0;
}

static void recv_listening(const char *addr, void *arg)
{
	(void)arg;
	fprintf(stderr, "migrate recv: listening on %s\n", addr);
}

static void recv_report(const struct recv_cli *r,
			const struct lm_migrate_recv_result *res)
{
	const struct lm_net_dest_stats *n = &res->net;
	const struct lm_vm_result *run = &res->run;

	if (r->json) {
		json_object *j = json_object_new_object(), *slots = json_object_new_array();

		json_object_object_add(j, "command", json_object_new_string("migrate recv"));
		json_object_object_add(j, "tls", json_object_new_boolean(r->tls.cert || r->tls.psk_file));
		J_I64(j, "mem", r->o.mem_size);
		J_I64(j, "vcpus", r->o.nr_vcpus);
		json_object_object_add(j, "delivery", json_object_new_string(lm_vm_delivery_name(r->o.delivery)));
		J_DBL(j, "resume_ms", ms(res->t_switchover_ns, res->t_resume_ns));
		J_DBL(j, "postcopy_seconds", ms(res->t_switchover_ns, res->t_complete_ns) / 1e3);
		J_I64(j, "pages_precopy", n->precopy_pages);
		J_I64(j, "pages_precopy_used", n->precopy_hits + res->pages_settled);
		J_I64(j, "pages_precopy_mapped_ahead", res->pages_settled);
		J_I64(j, "pages_dirty", n->dirty_pages);
		J_I64(j, "pages_demand", n->demand_pages);
		J_I64(j, "pages_background", n->push_pages);
		J_I64(j, "demand_requests", n->demand_requests);
		J_DBL(j, "fault_p50_us", (double)n->req_p50_ns / 1e3);
		J_DBL(j, "fault_p99_us", (double)n->req_p99_ns / 1e3);
		J_DBL(j, "fault_max_us", (double)n->req_max_ns / 1e3);
		for (unsigned i = 0; i < n->nr_slots; i++)
			json_object_array_add(slots, json_object_new_double((double)n->slot_blocked_ns[i] / 1e6));
		json_object_object_add(j, "blocked_ms_per_slot", slots);
		J_I64(j, "link_downs", n->link_downs);
		J_I64(j, "sessions", n->sessions);
		J_I64(j, "guest_passes", res->passes);
		J_I64(j, "words_checked", run->words_checked);
		J_I64(j, "mismatches", run->mismatches + run->host_mismatches);
		json_object_object_add(j, "verified", json_object_new_boolean(run->verified));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
		return;
	}
	printf("migrate recv: running %.2f ms after the switch-over; every page here %.3f s after it\n",
	       ms(res->t_switchover_ns, res->t_resume_ns),
	       ms(res->t_switchover_ns, res->t_complete_ns) / 1e3);
	printf("  pages: %llu pre-copied (%llu used without a transfer, %llu of them mapped ahead of the guest; %llu dropped as dirty), %llu by demand (%llu requests), %llu pushed\n",
	       (unsigned long long)n->precopy_pages,
	       (unsigned long long)(n->precopy_hits + res->pages_settled),
	       (unsigned long long)res->pages_settled,
	       (unsigned long long)n->dirty_pages, (unsigned long long)n->demand_pages,
	       (unsigned long long)n->demand_requests, (unsigned long long)n->push_pages);
	printf("  demand faults over the network: p50 %.0f us, p99 %.0f us, max %.0f us\n",
	       (double)n->req_p50_ns / 1e3, (double)n->req_p99_ns / 1e3,
	       (double)n->req_max_ns / 1e3);
	printf("  blocked per vCPU slot (ms):");
	for (unsigned i = 0; i < n->nr_slots; i++)
		printf(" %.1f", (double)n->slot_blocked_ns[i] / 1e6);
	printf("\n  link breaks %llu, sessions %llu; guest: %llu dirtying passes, %llu words checked, %s\n",
	       (unsigned long long)n->link_downs, (unsigned long long)n->sessions,
	       (unsigned long long)res->passes, (unsigned long long)run->words_checked,
	       run->verified ? "verified" : "NOT VERIFIED");
}

int cmd_migrate_recv(int argc, char **argv)
{
	struct recv_cli r = { 0 };
	struct lm_migrate_recv_result res;
	int rc = recv_parse(argc, argv, &r);

	if (rc || (rc = cli_tls_load(&r.tls, &r.o.tls)))
		return rc;
	r.o.insecure = r.tls.insecure;
	signal(SIGPIPE, SIG_IGN);
	r.o.listening = recv_listening;
	r.o.progress = recv_events;
	r.o.progress_arg = cli_progress_enabled() ? &r : NULL;
	rc = lm_vm_migrate_recv(&r.o, &res);
	lm_net_tls_destroy(r.o.tls);
	r.o.tls = NULL;
	if (rc)
		return cli_fail("migrate recv: %s", util_last_error());
	recv_report(&r, &res);
	if (!res.run.verified)
		return cli_fail("migrate recv: the migrated guest's memory is wrong: %llu mismatches (first at gpa 0x%llx: expected 0x%llx, got 0x%llx), %llu VMM samples wrong",
				(unsigned long long)res.run.mismatches,
				(unsigned long long)res.run.first_bad_gpa,
				(unsigned long long)res.run.first_expected,
				(unsigned long long)res.run.first_got,
				(unsigned long long)res.run.host_mismatches);
	return 0;
}

/* ---------------- migrate send ---------------- */

static const char send_help[] =
"usage: lazymem migrate send --to HOST:PORT [options]\n"
"\n"
"The source of a live migration. Boot a test VM whose guest fills its RAM\n"
"and then keeps dirtying a hot set of pages; while it runs, copy its memory\n"
"to `lazymem migrate recv` in rounds (KVM's dirty log says what to send\n"
"again), pause it, hand over the vCPUs, and serve the destination's demand\n"
"faults and push the rest until it has every page.\n"
"\n"
"  -t, --to HOST:PORT        the destination\n"
"  -M, --mode MODE           hybrid (default: rounds, then the still-dirty\n"
"                            pages on demand), precopy (rounds, the rest\n"
"                            while paused) or postcopy (pause at once)\n"
"  -m, --mem SIZE            guest RAM (default 64M)\n"
"  -c, --vcpus N             vCPUs (default 2)\n"
"      --hot SIZE|N%         pages the guest keeps dirtying (default 1%)\n"
"      --guest-pages SIZE    guest page tables: 4k (default) or 2m\n"
"  -b, --backing KIND        anon (default) or memfd\n"
"      --rounds N            pre-copy rounds at most (default 8)\n"
"      --warmup MS           let the guest dirty this long first (default 100)\n"
"      --no-compress         send pages raw (default: LZ4 where it pays)\n"
"      --resume              after a break in post-copy, dial again\n"
"      --resume-timeout MS   give up resuming after MS (default 30000; -1 never)\n"
"      --timeout MS          handshakes, pause and vCPU progress (120000)\n"
CLI_TLS_HELP
"  -j, --json                the result as JSON on stdout\n"
"  -h, --help\n";

struct send_cli {
	struct lm_vm_config cfg;
	struct lm_vm_workload wl;
	struct lm_migrate_send_opts o;
	const char *hot;
	struct lm_net_tls_opts tls;
	bool json;
};

static int send_parse(int argc, char **argv, struct send_cli *s)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'M' },
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "hot", required_argument, NULL, 'W' },
		{ "guest-pages", required_argument, NULL, 'g' },
		{ "backing", required_argument, NULL, 'b' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "no-compress", no_argument, NULL, 'Z' },
		{ "resume", no_argument, NULL, 'R' },
		{ "resume-timeout", required_argument, NULL, 'O' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLI_TLS_LONGOPTS,
		{ 0 },
	};
	unsigned long v;
	int c, t, k;

	s->cfg = (struct lm_vm_config){ .mem_size = DEFAULT_MEM, .nr_vcpus = 2,
		.backing = LM_BACKING_ANON, .delivery = LM_VM_LIMIT,
		.guest_page_size = 4096, .gen = DEFAULT_GEN };
	s->wl = (struct lm_vm_workload){ .kind = LM_WL_MIGRATE, .seed = 1,
					 .timeout_ms = 120000 };
	s->o = (struct lm_migrate_send_opts){ .mode = LM_MIGRATE_HYBRID,
		.warmup_ms = 100, .compress = true, .resume_timeout_ms = 30000,
		.timeout_ms = 120000 };
	s->hot = "1%";
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:M:m:c:b:jh", opts, NULL)) != -1) {
		if (cli_tls_opt(c, optarg, &s->tls))
			continue;
		k = parse_shape(c, optarg, &s->cfg.mem_size, &s->cfg.nr_vcpus,
				&s->cfg.guest_page_size);
		if (k == 2)
			return 2;
		if (k)
			continue;
		switch (c) {
		case 't': s->o.to = optarg; break;
		case 'M':
			if (lm_migrate_mode_parse(optarg, &s->o.mode))
				return cli_usage_error("--mode: '%s': expected hybrid, precopy or postcopy", optarg);
			break;
		case 'W': s->hot = optarg; break;
		case 'b':
			if (vm_opt_backing(optarg, &s->cfg.backing) ||
			    s->cfg.backing == LM_BACKING_HUGETLB)
				return cli_usage_error("--backing: '%s': expected anon or memfd", optarg);
			break;
		case 'r':
			if (vm_opt_uint(optarg, 1, 1000, &v))
				return cli_usage_error("--rounds: '%s': expected 1 to 1000", optarg);
			s->o.max_rounds = (unsigned)v;
			break;
		case 'w':
			if (parse_ms("--warmup", optarg, 0, &t))
				return 2;
			s->o.warmup_ms = (unsigned)t;
			break;
		case 'Z': s->o.compress = false; break;
		case 'R': s->o.resume = true; break;
		case 'O':
			if (parse_ms("--resume-timeout", optarg, -1, &s->o.resume_timeout_ms))
				return 2;
			break;
		case 'T':
			if (parse_ms("--timeout", optarg, 0, &t))
				return 2;
			s->o.timeout_ms = s->wl.timeout_ms = (unsigned)t;
			break;
		case 'j': s->json = true; break;
		case 'h': fputs(send_help, stdout); exit(0);
		default: return cli_usage_error("see 'lazymem migrate send --help'");
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (!s->o.to)
		return cli_usage_error("--to HOST:PORT is required");
	if (vm_opt_ws(s->hot, s->cfg.mem_size, 4096, s->cfg.nr_vcpus, &s->wl.ws_pages))
		return cli_usage_error("--hot: '%s': expected a size or a percentage of RAM", s->hot);
	return 0;
}

static void send_report(const struct send_cli *s,
			const struct lm_migrate_send_result *res)
{
	const struct lm_net_server_stats *n = &res->net;

	if (s->json) {
		json_object *j = json_object_new_object(), *rounds = json_object_new_array();

		json_object_object_add(j, "command", json_object_new_string("migrate send"));
		json_object_object_add(j, "tls", json_object_new_boolean(s->tls.cert || s->tls.psk_file));
		json_object_object_add(j, "mode", json_object_new_string(lm_migrate_mode_name(s->o.mode)));
		J_I64(j, "mem", s->cfg.mem_size);
		J_I64(j, "vcpus", s->cfg.nr_vcpus);
		J_I64(j, "hot_pages_per_vcpu", s->wl.ws_pages);
		for (unsigned i = 0; i < res->rounds && i < 16; i++)
			json_object_array_add(rounds, json_object_new_int64((int64_t)res->round_pages[i]));
		json_object_object_add(j, "round_pages", rounds);
		J_I64(j, "pages_final", res->pages_final);
		J_I64(j, "pages_left_dirty", res->pages_left);
		J_DBL(j, "precopy_seconds", ms(res->t_start_ns, res->t_pause_ns) / 1e3);
		J_DBL(j, "pause_ms", ms(res->t_pause_ns, res->t_paused_ns));
		J_DBL(j, "paused_to_switchover_ms", ms(res->t_pause_ns, res->t_switchover_ns));
		J_DBL(j, "seconds", ms(res->t_start_ns, res->t_done_ns) / 1e3);
		J_I64(j, "pages_precopy", n->precopy_pages);
		J_I64(j, "pages_demand", n->demand_pages);
		J_I64(j, "pages_background", n->push_pages);
		J_I64(j, "bytes_out", n->bytes_out);
		J_I64(j, "resumes", n->resumes);
		J_I64(j, "guest_passes", res->passes);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
		return;
	}
	printf("migrate send (%s): %llu MiB, %u vCPUs, to %s, %.3f s in all\n",
	       lm_migrate_mode_name(s->o.mode),
	       (unsigned long long)(s->cfg.mem_size >> 20), s->cfg.nr_vcpus,
	       s->o.to, ms(res->t_start_ns, res->t_done_ns) / 1e3);
	printf("  pre-copy: %u rounds in %.3f s (pages per round:", res->rounds,
	       ms(res->t_start_ns, res->t_pause_ns) / 1e3);
	for (unsigned i = 0; i < res->rounds && i < 16; i++)
		printf(" %llu", (unsigned long long)res->round_pages[i]);
	printf(")\n  paused: vCPUs stopped in %.2f ms; %llu pages sent while paused; switch-over sent %.2f ms after the pause\n",
	       ms(res->t_pause_ns, res->t_paused_ns),
	       (unsigned long long)res->pages_final,
	       ms(res->t_pause_ns, res->t_switchover_ns));
	printf("  post-copy: %llu dirty pages left, %llu served by demand, %llu pushed; %llu MiB of pages on the wire; resumes %llu\n",
	       (unsigned long long)res->pages_left,
	       (unsigned long long)n->demand_pages, (unsigned long long)n->push_pages,
	       (unsigned long long)(n->bytes_out >> 20), (unsigned long long)n->resumes);
}

int cmd_migrate_send(int argc, char **argv)
{
	struct send_cli s = { 0 };
	struct lm_migrate_send_result res;
	int rc = send_parse(argc, argv, &s);

	if (rc || (rc = cli_tls_load(&s.tls, &s.o.tls)))
		return rc;
	s.o.insecure = s.tls.insecure;
	signal(SIGPIPE, SIG_IGN);
	if (cli_progress_enabled())
		s.o.progress = progress;
	rc = lm_vm_migrate_send(&s.cfg, &s.wl, &s.o, &res);
	lm_net_tls_destroy(s.o.tls);
	s.o.tls = NULL;
	if (rc)
		return cli_fail("migrate send: %s", util_last_error());
	send_report(&s, &res);
	return 0;
}
