/*
 * cmd_page_fetch.c - `lazymem page-fetch`: listen as a migration
 * destination would and fill a region from the peer that dials in, its
 * faults served on demand and the rest pushed (cmd_net.c is the source).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lazymem/lazymem.h>
#include "cli/cli.h"
#include "cli/tls_opts.h"
#include "util/clock.h"
#include "net/net.h"
#include "util/error.h"

#define PAGE 4096u
#define DEFAULT_SEED 0x6c617a79u

/* ---------------- page-fetch ---------------- */

static const char fetch_help[] =
"usage: lazymem page-fetch --listen HOST:PORT --size SIZE [options]\n"
"\n"
"Fill a lazymem region from a `lazymem page-server` that dials us. Faulting\n"
"threads (stand-ins for vCPUs) touch every page in a scrambled order; each\n"
"missing page is fetched by the thread that faulted, on its own urgent\n"
"connection, while pushed pages are installed in the background.\n"
"\n"
"  -l, --listen HOST:PORT    where to wait for the source\n"
"  -s, --size SIZE           memory size; must equal the source's\n"
"  -T, --threads N           faulting threads (default 2; 0: push only)\n"
"      --installers N        threads installing pushed pages (default 1)\n"
"      --backing KIND        anon (default, UFFDIO_COPY) or memfd\n"
"                            (write + UFFDIO_CONTINUE)\n"
"      --hold                recovery: hold faulting threads while the source\n"
"                            is away, until it resumes (page-server --resume)\n"
"      --hold-timeout MS     give up holding after MS ms (default -1: never)\n"
"      --timeout MS          a demand request unanswered this long breaks the\n"
"                            link (default 5000); without --hold the page fails\n"
"      --wait MS             wait this long for the source and for completion\n"
"                            (default 120000)\n"
"  -o, --out FILE            write the filled memory to FILE\n"
"  -v, --verify              check the image of `page-server --pattern`\n"
"      --seed N              its seed\n"
CLI_TLS_HELP
"  -j, --json                statistics as JSON on stdout\n"
"  -h, --help\n";

struct fetch_opts {
	const char *listen, *out;
	uint64_t size, seed;
	unsigned threads, installers;
	bool hold, verify, json, memfd;
	int hold_timeout, timeout, wait;
	struct lm_net_tls_opts tls;
};

static int fetch_parse(int argc, char **argv, struct fetch_opts *o)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 'T' },
		{ "backing", required_argument, NULL, 'B' },
		{ "installers", required_argument, NULL, 'I' },
		{ "hold", no_argument, NULL, 'H' },
		{ "hold-timeout", required_argument, NULL, 'O' },
		{ "timeout", required_argument, NULL, 'W' },
		{ "wait", required_argument, NULL, 'w' },
		{ "out", required_argument, NULL, 'o' },
		{ "verify", no_argument, NULL, 'v' },
		{ "seed", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLI_TLS_LONGOPTS,
		{ 0 },
	};
	char *end;
	int c;

	*o = (struct fetch_opts){ .threads = 2, .hold_timeout = -1,
				  .timeout = 5000, .wait = 120000,
				  .seed = DEFAULT_SEED };
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:s:T:o:vjh", opts, NULL)) != -1) {
		if (cli_tls_opt(c, optarg, &o->tls))
			continue;
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 's':
			if (cli_parse_size(optarg, &o->size) || !o->size ||
			    o->size % PAGE)
				return cli_usage_error("--size: '%s' is not a "
						       "positive multiple of "
						       "4 KiB", optarg);
			break;
		case 'T':
			o->threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || end == optarg || o->threads > 64)
				return cli_usage_error("--threads: '%s': "
						       "expected 0 to 64",
						       optarg);
			break;
		case 'B':
			if (strcmp(optarg, "anon") && strcmp(optarg, "memfd"))
				return cli_usage_error("--backing: '%s': "
						       "expected anon or "
						       "memfd", optarg);
			o->memfd = !strcmp(optarg, "memfd");
			break;
		case 'I':
			o->installers = (unsigned)strtoul(optarg, &end, 10);
			if (*end || end == optarg || !o->installers ||
			    o->installers > 16)
				return cli_usage_error("--installers: '%s': "
						       "expected 1 to 16",
						       optarg);
			break;
		case 'H': o->hold = true; break;
		case 'O':
			if (cli_parse_ms("--hold-timeout", optarg, &o->hold_timeout))
				return 2;
			break;
		case 'W':
			if (cli_parse_ms("--timeout", optarg, &o->timeout))
				return 2;
			break;
		case 'w':
			if (cli_parse_ms("--wait", optarg, &o->wait))
				return 2;
			break;
		case 'o': o->out = optarg; break;
		case 'v': o->verify = true; break;
		case 'S': o->seed = strtoull(optarg, NULL, 0); break;
		case 'j': o->json = true; break;
		case 'h': fputs(fetch_help, stdout); exit(0);
		default: return cli_usage_error("%s: unknown option", argv[0]);
		}
	}
	if (!o->listen || !o->size)
		return cli_usage_error("%s: --listen HOST:PORT and --size SIZE "
				       "are required", argv[0]);
	if (optind < argc)
		return cli_usage_error("%s: unexpected argument '%s'", argv[0],
				       argv[optind]);
	return 0;
}

/* A fault that can never be served: say so and leave. In a SIGBUS
 * handler: write(2) only. */
static void fetch_on_fail(struct lm_region *r, uint64_t off, int err,
			  void *arg)
{
	static const char msg[] = "lazymem: page-fetch: a page cannot be "
		"fetched: the source is gone or timed out (run with --hold "
		"and page-server --resume to survive breaks); the memory "
		"cannot complete\n";

	(void)r; (void)off; (void)err; (void)arg;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(1);
}

static int write_out(const char *path, const void *mem, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const uint8_t *p = mem;

	if (fd < 0)
		return cli_fail("%s: %s", path, strerror(errno));
	while (size) {
		ssize_t n = write(fd, p, size > (1u << 30) ? 1u << 30 : size);

		if (n <= 0) {
			close(fd);
			return cli_fail("%s: write: %s", path, strerror(errno));
		}
		p += n;
		size -= (uint64_t)n;
	}
	close(fd);
	return 0;
}

int cmd_page_fetch(int argc, char **argv)
{
	struct fetch_opts o;
	struct lm_net_layout l;
	struct lm_net_dest_config dc;
	struct lm_net_dest *d;
	struct lm_region_config rc;
	struct lm_region *r;
	struct lm_stats st;
	struct lm_net_dest_stats ds;
	struct cli_toucher t[64];
	struct lm_net_tls *tls;
	uint64_t t0, ns, bad = 0, first_bad = 0;
	char why[256];
	int err = fetch_parse(argc, argv, &o), ret = 0;

	if (err || (err = cli_tls_load(&o.tls, &tls)))
		return err;
	signal(SIGPIPE, SIG_IGN);
	if (lm_net_layout_init(&l, PAGE, &o.size, 1, why, sizeof(why))) {
		lm_net_tls_destroy(tls);
		return cli_fail("layout: %s", why);
	}
	dc = (struct lm_net_dest_config){
		.listen = o.listen, .layout = &l,
		.nr_urgent = o.threads ? o.threads : 1, .hold = o.hold,
		.hold_timeout_ms = o.hold_timeout, .req_timeout_ms = o.timeout,
		.installers = o.installers, .tls = tls,
		.insecure = o.tls.insecure };
	if (lm_net_dest_create(&dc, &d)) {
		lm_net_tls_destroy(tls);
		return cli_fail("%s", util_last_error());
	}
	rc = (struct lm_region_config){
		.name = "page-fetch", .size = o.size,
		.backing = o.memfd ? LM_BACKING_MEMFD : LM_BACKING_ANON,
		.install = o.memfd ? LM_INSTALL_CONTINUE : LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF, .source = lm_net_dest_source(d),
		.on_fail = fetch_on_fail };
	if (lm_region_create(&rc, &r)) {
		cli_fail("%s", lm_last_error());
		lm_net_dest_destroy(d);
		lm_net_tls_destroy(tls);
		return 1;
	}
	if (lm_net_dest_attach(d, r)) {
		cli_fail("%s", util_last_error());
		lm_region_destroy(r);
		lm_net_dest_destroy(d);
		lm_net_tls_destroy(tls);
		return 1;
	}
	fprintf(stderr, "page-fetch: %llu MiB, listening on %s\n",
		(unsigned long long)(o.size >> 20), lm_net_dest_address(d));
	if (lm_net_dest_wait_up(d, o.wait)) {
		ret = cli_fail("no source connected to %s within %d ms%s%s",
			       lm_net_dest_address(d), o.wait,
			       lm_net_dest_last_error(d)[0] ? "; last: " : "",
			       lm_net_dest_last_error(d));
		goto out;
	}
	t0 = lm_now_ns();
	cli_touch_start(t, o.threads, lm_region_addr(r), o.size, PAGE);
	if (cli_progress_enabled()) {
		while (lm_region_wait_complete(r, 100) == -ETIMEDOUT &&
		       lm_now_ns() - t0 < (uint64_t)o.wait * 1000000ull)
			cli_progress(lm_region_pages_present(r) * PAGE, o.size,
				     (void *)"page-fetch");
		cli_progress(lm_region_pages_present(r) * PAGE, o.size,
			     (void *)"page-fetch");
	}
	cli_touch_join(t, o.threads);
	err = lm_region_wait_complete(r, o.wait);
	ns = lm_now_ns() - t0;
	if (err) {
		ret = cli_fail("region not complete: %s (%llu of %llu pages "
			       "present)%s%s", strerror(-err),
			       (unsigned long long)lm_region_pages_present(r),
			       (unsigned long long)(o.size / PAGE),
			       lm_net_dest_last_error(d)[0] ? "; " : "",
			       lm_net_dest_last_error(d));
		goto out;
	}
	lm_net_dest_finish(d);
	if (o.verify)
		bad = lm_net_pattern_check(lm_region_addr(r), o.size, PAGE,
					   o.seed, &first_bad);
	if (o.out && write_out(o.out, lm_region_addr(r), o.size))
		ret = 1;
	lm_region_stats(r, &st);
	lm_net_dest_stats(d, &ds);
	if (o.json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "command", json_object_new_string("page-fetch"));
		json_object_object_add(j, "size", json_object_new_int64((int64_t)o.size));
		json_object_object_add(j, "threads", json_object_new_int((int)o.threads));
		json_object_object_add(j, "seconds", json_object_new_double((double)ns / 1e9));
		json_object_object_add(j, "pages_demand", json_object_new_int64((int64_t)st.pages_demand));
		json_object_object_add(j, "pages_around", json_object_new_int64((int64_t)st.pages_around));
		json_object_object_add(j, "pages_background", json_object_new_int64((int64_t)st.pages_background));
		json_object_object_add(j, "fault_p50_us", json_object_new_double((double)st.lat_p50_ns / 1e3));
		json_object_object_add(j, "fault_p99_us", json_object_new_double((double)st.lat_p99_ns / 1e3));
		json_object_object_add(j, "fault_max_us", json_object_new_double((double)st.lat_max_ns / 1e3));
		json_object_object_add(j, "demand_requests", json_object_new_int64((int64_t)ds.demand_requests));
		json_object_object_add(j, "bytes_in", json_object_new_int64((int64_t)ds.bytes_in));
		json_object_object_add(j, "link_downs", json_object_new_int64((int64_t)ds.link_downs));
		json_object_object_add(j, "sessions", json_object_new_int64((int64_t)ds.sessions));
		json_object_object_add(j, "tls", json_object_new_boolean(tls != NULL));
		{
			json_object *bl = json_object_new_array();

			for (unsigned i = 0; i < ds.nr_slots; i++)
				json_object_array_add(bl, json_object_new_double(
					(double)ds.slot_blocked_ns[i] / 1e6));
			json_object_object_add(j, "blocked_ms_per_thread", bl);
		}
		json_object_object_add(j, "verified", o.verify ? json_object_new_boolean(bad == 0) : NULL);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("page-fetch: %llu MiB in %.3f s (%.0f MiB/s), %u "
		       "faulting threads\n", (unsigned long long)(o.size >> 20),
		       (double)ns / 1e9,
		       (double)o.size / 1048576.0 / ((double)ns / 1e9),
		       o.threads);
		printf("  pages: demand %llu, fault-around %llu, background "
		       "%llu, failed %llu\n",
		       (unsigned long long)st.pages_demand,
		       (unsigned long long)st.pages_around,
		       (unsigned long long)st.pages_background,
		       (unsigned long long)st.pages_failed);
		printf("  demand fault latency: p50 %.0f us, p99 %.0f us, max "
		       "%.0f us (%llu faults timed)\n",
		       (double)st.lat_p50_ns / 1e3, (double)st.lat_p99_ns / 1e3,
		       (double)st.lat_max_ns / 1e3,
		       (unsigned long long)st.lat_count);
		printf("  wire: %llu demand requests, %llu MiB in; link downs "
		       "%llu, sessions %llu\n",
		       (unsigned long long)ds.demand_requests,
		       (unsigned long long)(ds.bytes_in >> 20),
		       (unsigned long long)ds.link_downs,
		       (unsigned long long)ds.sessions);
		printf("  blocked in demand, per faulting thread (urgent slot):");
		for (unsigned i = 0; i < ds.nr_slots; i++)
			printf(" %.1f ms", (double)ds.slot_blocked_ns[i] / 1e6);
		printf("\n");
		if (o.verify)
			printf("  verified: %s\n", bad ? "NO" : "yes, every page");
	}
	if (bad)
		ret = cli_fail("%llu pages differ from the image, the first at "
			       "offset 0x%llx", (unsigned long long)bad,
			       (unsigned long long)first_bad);
out:
	lm_net_dest_destroy(d);
	lm_region_destroy(r);
	lm_net_tls_destroy(tls);
	return ret;
}

