/*
 * cmd_net.c - the migration transport on the command line:
 *
 *   lazymem page-server   serve a file or a generated image to a peer
 *   lazymem page-fetch    fill a region from a peer, faulting and pushed
 *   lazymem proxy         a TCP proxy that adds a round-trip time
 *
 * As in a migration, the destination (page-fetch) listens and the source
 * (page-server) dials it, and dials again with --resume after a break.
 * The transport itself is src/net; these are thin shells around it.
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
#include "util/clock.h"
#include "net/net.h"
#include "util/error.h"

#define PAGE 4096u
#define DEFAULT_SEED 0x6c617a79u

static int parse_ms(const char *opt, const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < -1 || v > 86400000)
		return cli_usage_error("%s: '%s' is not a number of "
				       "milliseconds (-1: forever)", opt, s);
	*out = (int)v;
	return 0;
}

/* ---------------- page-server ---------------- */

static const char server_help[] =
"usage: lazymem page-server --to HOST:PORT (FILE | --pattern SIZE) [options]\n"
"\n"
"Serve memory to a destination running `lazymem page-fetch --listen`. As a\n"
"migration source does, it dials the destination; it answers demand\n"
"requests first, each on the urgent connection of the faulting thread that\n"
"sent it, and pushes every other page in the background.\n"
"\n"
"  -t, --to HOST:PORT        the destination's address\n"
"  -p, --pattern SIZE        serve a generated test image of SIZE bytes\n"
"                            (page-fetch --verify checks it) instead of FILE\n"
"      --seed N              the generated image's seed\n"
"      --no-push             demand only: no background push\n"
"      --no-compress         never LZ4 (zero pages still travel as a flag)\n"
"  -r, --resume              after a break, dial again and resume the session\n"
"      --resume-timeout MS   give up resuming after MS ms (default 60000)\n"
"  -j, --json                statistics as JSON on stdout\n"
"  -h, --help\n";

struct server_opts {
	const char *to, *file;
	uint64_t pattern, seed;
	bool push, compress, resume, json;
	int resume_timeout;
};

static int server_parse(int argc, char **argv, struct server_opts *o)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "seed", required_argument, NULL, 'S' },
		{ "no-push", no_argument, NULL, 'P' },
		{ "no-compress", no_argument, NULL, 'C' },
		{ "resume", no_argument, NULL, 'r' },
		{ "resume-timeout", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*o = (struct server_opts){ .push = true, .compress = true,
				   .resume_timeout = 60000,
				   .seed = DEFAULT_SEED };
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:p:rjh", opts, NULL)) != -1) {
		switch (c) {
		case 't': o->to = optarg; break;
		case 'p':
			if (cli_parse_size(optarg, &o->pattern) ||
			    !o->pattern || o->pattern % PAGE)
				return cli_usage_error("--pattern: '%s' is not "
						       "a positive multiple of "
						       "4 KiB", optarg);
			break;
		case 'S': o->seed = strtoull(optarg, NULL, 0); break;
		case 'P': o->push = false; break;
		case 'C': o->compress = false; break;
		case 'r': o->resume = true; break;
		case 'R':
			if (parse_ms("--resume-timeout", optarg,
				     &o->resume_timeout))
				return 2;
			break;
		case 'j': o->json = true; break;
		case 'h': fputs(server_help, stdout); exit(0);
		default: return cli_usage_error("%s: unknown option", argv[0]);
		}
	}
	if (!o->to)
		return cli_usage_error("%s: --to HOST:PORT is required",
				       argv[0]);
	if (optind < argc)
		o->file = argv[optind++];
	if (optind < argc || !!o->file == !!o->pattern)
		return cli_usage_error("%s: give one FILE or --pattern SIZE",
				       argv[0]);
	return 0;
}

/* Map FILE read-only; its size must be a whole number of pages. */
static int map_file(const char *path, void **mem, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		return cli_fail("%s: %s", path, strerror(errno));
	if (st.st_size <= 0 || st.st_size % PAGE) {
		close(fd);
		return cli_fail("%s: %lld bytes is not a positive multiple of "
				"4 KiB", path, (long long)st.st_size);
	}
	*size = (uint64_t)st.st_size;
	*mem = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (*mem == MAP_FAILED)
		return cli_fail("%s: mmap: %s", path, strerror(errno));
	return 0;
}

int cmd_page_server(int argc, char **argv)
{
	struct server_opts o;
	struct lm_net_layout l;
	struct lm_net_server_config sc;
	struct lm_net_server *s;
	struct lm_net_server_stats st;
	char why[256];
	void *mem;
	uint64_t size, t0;
	int rc = server_parse(argc, argv, &o);

	if (rc)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	if (o.file) {
		if (map_file(o.file, &mem, &size))
			return 1;
	} else {
		size = o.pattern;
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return cli_fail("cannot map %llu bytes",
					(unsigned long long)size);
		lm_net_pattern_fill(mem, size, PAGE, o.seed);
	}
	if (lm_net_layout_init(&l, PAGE, &size, 1, why, sizeof(why)))
		return cli_fail("layout: %s", why);
	sc = (struct lm_net_server_config){
		.mem = mem, .layout = &l, .to = o.to, .push = o.push,
		.compress = o.compress, .resume = o.resume,
		.resume_timeout_ms = o.resume_timeout };
	if (lm_net_server_create(&sc, &s))
		return cli_fail("%s", util_last_error());
	t0 = lm_now_ns();
	rc = lm_net_server_connect(s);
	if (!rc)
		rc = lm_net_server_serve(s);
	if (rc) {
		cli_fail("%s", util_last_error());
		lm_net_server_destroy(s);
		return 1;
	}
	lm_net_server_stats(s, &st);
	if (o.json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "command", json_object_new_string("page-server"));
		json_object_object_add(j, "size", json_object_new_int64((int64_t)size));
		json_object_object_add(j, "seconds", json_object_new_double((double)(lm_now_ns() - t0) / 1e9));
		json_object_object_add(j, "demand_requests", json_object_new_int64((int64_t)st.demand_requests));
		json_object_object_add(j, "pages_demand", json_object_new_int64((int64_t)st.demand_pages));
		json_object_object_add(j, "pages_background", json_object_new_int64((int64_t)st.push_pages));
		json_object_object_add(j, "pages_zero", json_object_new_int64((int64_t)st.zero_pages));
		json_object_object_add(j, "pages_lz4", json_object_new_int64((int64_t)st.lz4_pages));
		json_object_object_add(j, "pages_raw", json_object_new_int64((int64_t)st.raw_pages));
		json_object_object_add(j, "bytes_out", json_object_new_int64((int64_t)st.bytes_out));
		json_object_object_add(j, "resumes", json_object_new_int64((int64_t)st.resumes));
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("page-server: %llu MiB to %s in %.3f s: demand %llu "
		       "pages (%llu requests), pushed %llu; zero %llu, lz4 "
		       "%llu, raw %llu; %llu MiB on the wire; resumes %llu\n",
		       (unsigned long long)(size >> 20), o.to,
		       (double)(lm_now_ns() - t0) / 1e9,
		       (unsigned long long)st.demand_pages,
		       (unsigned long long)st.demand_requests,
		       (unsigned long long)st.push_pages,
		       (unsigned long long)st.zero_pages,
		       (unsigned long long)st.lz4_pages,
		       (unsigned long long)st.raw_pages,
		       (unsigned long long)(st.bytes_out >> 20),
		       (unsigned long long)st.resumes);
	}
	lm_net_server_destroy(s);
	return 0;
}

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
"  -j, --json                statistics as JSON on stdout\n"
"  -h, --help\n";

struct fetch_opts {
	const char *listen, *out;
	uint64_t size, seed;
	unsigned threads, installers;
	bool hold, verify, json, memfd;
	int hold_timeout, timeout, wait;
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
		{ 0 },
	};
	char *end;
	int c;

	*o = (struct fetch_opts){ .threads = 2, .hold_timeout = -1,
				  .timeout = 5000, .wait = 120000,
				  .seed = DEFAULT_SEED };
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:s:T:o:vjh", opts, NULL)) != -1) {
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
			if (parse_ms("--hold-timeout", optarg, &o->hold_timeout))
				return 2;
			break;
		case 'W':
			if (parse_ms("--timeout", optarg, &o->timeout))
				return 2;
			break;
		case 'w':
			if (parse_ms("--wait", optarg, &o->wait))
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
	uint64_t t0, ns, bad = 0, first_bad = 0;
	char why[256];
	int err = fetch_parse(argc, argv, &o), ret = 0;

	if (err)
		return err;
	signal(SIGPIPE, SIG_IGN);
	if (lm_net_layout_init(&l, PAGE, &o.size, 1, why, sizeof(why)))
		return cli_fail("layout: %s", why);
	dc = (struct lm_net_dest_config){
		.listen = o.listen, .layout = &l,
		.nr_urgent = o.threads ? o.threads : 1, .hold = o.hold,
		.hold_timeout_ms = o.hold_timeout, .req_timeout_ms = o.timeout,
		.installers = o.installers };
	if (lm_net_dest_create(&dc, &d))
		return cli_fail("%s", util_last_error());
	rc = (struct lm_region_config){
		.name = "page-fetch", .size = o.size,
		.backing = o.memfd ? LM_BACKING_MEMFD : LM_BACKING_ANON,
		.install = o.memfd ? LM_INSTALL_CONTINUE : LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF, .source = lm_net_dest_source(d),
		.on_fail = fetch_on_fail };
	if (lm_region_create(&rc, &r)) {
		cli_fail("%s", lm_last_error());
		lm_net_dest_destroy(d);
		return 1;
	}
	if (lm_net_dest_attach(d, r)) {
		cli_fail("%s", util_last_error());
		lm_region_destroy(r);
		lm_net_dest_destroy(d);
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
	return ret;
}

/* ---------------- proxy ---------------- */

static const char proxy_help[] =
"usage: lazymem proxy --listen HOST:PORT --connect HOST:PORT --rtt DURATION\n"
"\n"
"Forward TCP connections, delaying each direction by half of DURATION\n"
"(\"200us\", \"1ms\", \"0\"): a round-trip time for tests and benchmarks on\n"
"machines without netem. Runs until interrupted.\n"
"\n"
"  -l, --listen HOST:PORT\n"
"  -c, --connect HOST:PORT\n"
"  -r, --rtt DURATION\n"
"  -h, --help\n";

int cmd_proxy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "rtt", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *listen = NULL, *connect = NULL;
	uint64_t rtt = 0;
	struct lm_net_proxy *p;
	sigset_t set;
	int c, sig;

	optind = 1;
	while ((c = getopt_long(argc, argv, "l:c:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'c': connect = optarg; break;
		case 'r':
			if (lm_net_parse_duration(optarg, &rtt))
				return cli_usage_error("--rtt: '%s' is not a "
						       "duration (200us, 1ms, "
						       "0)", optarg);
			break;
		case 'h': fputs(proxy_help, stdout); exit(0);
		default: return cli_usage_error("%s: unknown option", argv[0]);
		}
	}
	if (!listen || !connect || optind < argc)
		return cli_usage_error("%s: --listen and --connect are "
				       "required", argv[0]);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (lm_net_proxy_create(listen, connect, rtt, &p))
		return cli_fail("%s", util_last_error());
	fprintf(stderr, "proxy: %s -> %s, round trip +%.0f us\n",
		lm_net_proxy_address(p), connect, (double)rtt / 1e3);
	sigwait(&set, &sig);
	fprintf(stderr, "proxy: %llu bytes forwarded\n",
		(unsigned long long)lm_net_proxy_bytes(p));
	lm_net_proxy_destroy(p);
	return 0;
}
