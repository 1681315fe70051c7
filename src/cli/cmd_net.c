/*
 * cmd_net.c - the migration transport on the command line:
 *
 *   lazymem page-server   serve a file or a generated image to a peer
 *                         (this file)
 *   lazymem page-fetch    fill a region from a peer, faulting and pushed
 *                         (cmd_page_fetch.c)
 *   lazymem proxy         a TCP proxy that adds a round-trip time
 *                         (cmd_proxy.c)
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
#include "cli/tls_opts.h"
#include "util/clock.h"
#include "net/net.h"
#include "util/error.h"

#define PAGE 4096u
#define DEFAULT_SEED 0x6c617a79u

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
CLI_TLS_HELP
"  -j, --json                statistics as JSON on stdout\n"
"  -h, --help\n";

struct server_opts {
	const char *to, *file;
	uint64_t pattern, seed;
	bool push, compress, resume, json;
	int resume_timeout;
	struct lm_net_tls_opts tls;
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
		CLI_TLS_LONGOPTS,
		{ 0 },
	};
	int c;

	*o = (struct server_opts){ .push = true, .compress = true,
				   .resume_timeout = 60000,
				   .seed = DEFAULT_SEED };
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:p:rjh", opts, NULL)) != -1) {
		if (cli_tls_opt(c, optarg, &o->tls))
			continue;
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
			if (cli_parse_ms("--resume-timeout", optarg,
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
	struct lm_net_tls *tls;
	char why[256];
	void *mem;
	uint64_t size, t0;
	int rc = server_parse(argc, argv, &o);

	if (rc || (rc = cli_tls_load(&o.tls, &tls)))
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
		.resume_timeout_ms = o.resume_timeout, .tls = tls,
		.insecure = o.tls.insecure };
	if (lm_net_server_create(&sc, &s)) {
		lm_net_tls_destroy(tls);
		return cli_fail("%s", util_last_error());
	}
	t0 = lm_now_ns();
	rc = lm_net_server_connect(s);
	if (!rc)
		rc = lm_net_server_serve(s);
	if (rc) {
		cli_fail("%s", util_last_error());
		lm_net_server_destroy(s);
		lm_net_tls_destroy(tls);
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
		json_object_object_add(j, "tls", json_object_new_boolean(tls != NULL));
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
	lm_net_tls_destroy(tls);
	return 0;
}

