/*
 * cmd_store.c - `lazymem snapshot push DIR URL` and `lazymem snapshot
 * pull URL DIR`: snapshots in HTTP object storage (src/store), the store
 * options the commands that read a URL share (cli_store_option), and
 * `lazymem store serve`, a throwaway local store to try them against.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "store/local.h"
#include "store/store.h"
#include "util/error.h"

/* The options every store command takes (cli.h: CLI_STORE_LONG_OPTS). */
#define STORE_LONG_OPTS CLI_STORE_LONG_OPTS

#define STORE_HELP \
	"  --parallel N         requests at once (default 8)\n" \
	"  --request-timeout SECONDS  per request (default 20); failures\n" \
	"                       that may pass are retried with backoff\n" \
	"  --retries N          retries after a failed attempt (default 3)\n" \
	"  --s3-region REGION   sign requests with AWS Signature V4 (S3 API),\n" \
	"                       keys from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"

const char *cli_store_help(void)
{
	return STORE_HELP;
}

int cli_store_option(int c, const char *arg, struct store_opts *o)
{
	static char provider[96];
	unsigned long v;

	switch (c) {
	case 0x5301:
		if (vm_opt_uint(arg, 1, 256, &v))
			return cli_usage_error("--parallel '%s': expected 1 to 256", arg);
		o->http.parallel = (unsigned)v;
		return 0;
	case 0x5302:
		if (vm_opt_uint(arg, 1, 3600, &v))
			return cli_usage_error("--request-timeout '%s': expected seconds from 1 to 3600", arg);
		o->http.timeout_ms = (unsigned)v * 1000;
		return 0;
	case 0x5303:
		if (vm_opt_uint(arg, 0, 10, &v))
			return cli_usage_error("--retries '%s': expected 0 to 10", arg);
		o->http.retries = (unsigned)v;
		o->http.no_retries = v == 0;
		return 0;
	case 0x5304:
		if (!arg[0] || strlen(arg) > 40 ||
		    strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(arg))
			return cli_usage_error("--s3-region '%s': expected a region name like us-east-1", arg);
		snprintf(provider, sizeof(provider), "aws:amz:%s:s3", arg);
		o->http.sigv4 = provider;
		o->http.access_key = getenv("AWS_ACCESS_KEY_ID");
		o->http.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
		if (!o->http.access_key || !o->http.secret_key)
			return cli_usage_error("--s3-region needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment");
		return 0;
	}
	return -1;	/* not a store option */
}

static void print_json(json_object *j)
{
	puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

#define I64(x) json_object_new_int64((int64_t)(x))

int cmd_snapshot_push(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_LONG_OPTS,
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_opts o = { 0 };
	struct store_push_result res;
	bool json = false;
	unsigned long v;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((rc = cli_store_option(c, optarg, &o)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		switch (c) {
		case 'c':
			if (cli_parse_size(optarg, &o.chunk_size))
				return cli_usage_error("--chunk-size '%s': expected a size like 256k", optarg);
			break;
		case 'l':
			if (vm_opt_uint(optarg, 1, 19, &v))
				return cli_usage_error("--level '%s': expected a zstd level from 1 to 19", optarg);
			o.level = (int)v;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: %s DIR URL [options]\n"
			       "Upload snapshot DIR to URL (http(s)://HOST[:PORT]/BUCKET/PREFIX)\n"
			       "as content-addressed chunks: only those the bucket lacks are sent.\n\n"
			       "  --chunk-size SIZE    chunk size, 64k to 4M, a power of two (default 256k)\n"
			       "  --level N            zstd level (default %d)\n"
			       STORE_HELP
			       "  --json               one JSON object on stdout\n"
			       "  -h, --help           this text\n", argv[0],
			       STORE_DEFAULT_LEVEL);
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("%s: expected a snapshot directory and a URL (see --help)", argv[0]);
	if (!json && cli_progress_enabled()) {
		o.progress = cli_progress;
		o.progress_arg = (void *)"push";
	}
	if (store_push(argv[optind], argv[optind + 1], &o, &res))
		return cli_fail("snapshot push: %s", util_last_error());
	if (json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "snapshot", json_object_new_string(argv[optind]));
		json_object_object_add(j, "url", json_object_new_string(argv[optind + 1]));
		json_object_object_add(j, "chunks_total", I64(res.chunks_total));
		json_object_object_add(j, "chunks_zero", I64(res.chunks_zero));
		json_object_object_add(j, "chunks_unique", I64(res.chunks_unique));
		json_object_object_add(j, "chunks_new", I64(res.chunks_new));
		json_object_object_add(j, "chunks_reused", I64(res.chunks_reused));
		json_object_object_add(j, "bytes_memory", I64(res.bytes_memory));
		json_object_object_add(j, "bytes_uploaded", I64(res.bytes_uploaded));
		json_object_object_add(j, "bytes_stored", I64(res.bytes_stored));
		json_object_object_add(j, "dedup_ratio", res.chunks_new ?
			json_object_new_double((double)(res.chunks_total - res.chunks_zero) /
					       (double)res.chunks_new) : NULL);
		json_object_object_add(j, "requests", I64(res.requests));
		json_object_object_add(j, "seconds", json_object_new_double(res.seconds));
		print_json(j);
		return 0;
	}
	printf("pushed %s to %s in %.3f s\n", argv[optind], argv[optind + 1], res.seconds);
	printf("chunks: %llu in all, %llu zero (not stored), %llu distinct others: "
	       "%llu new (uploaded), %llu already in the bucket\n",
	       (unsigned long long)res.chunks_total, (unsigned long long)res.chunks_zero,
	       (unsigned long long)res.chunks_unique, (unsigned long long)res.chunks_new,
	       (unsigned long long)res.chunks_reused);
	printf("bytes: %llu MiB of non-zero memory stored as %llu MiB; %llu KiB uploaded; "
	       "dedup ratio %s%.2f (non-zero chunks per chunk uploaded)\n",
	       (unsigned long long)(res.bytes_memory >> 20),
	       (unsigned long long)(res.bytes_stored >> 20),
	       (unsigned long long)(res.bytes_uploaded >> 10),
	       res.chunks_new ? "" : "(nothing new) ",
	       res.chunks_new ? (double)(res.chunks_total - res.chunks_zero) /
				(double)res.chunks_new : 0.0);
	return 0;
}

int cmd_snapshot_pull(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_LONG_OPTS,
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_opts o = { 0 };
	struct store_pull_result res;
	bool json = false;
	double mibs;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((rc = cli_store_option(c, optarg, &o)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: %s URL DIR [options]\n"
			       "Download the snapshot at URL whole into DIR, every chunk checked\n"
			       "against its SHA-256 (a snapshot 'snapshot verify' accepts).\n\n"
			       STORE_HELP
			       "  --json               one JSON object on stdout\n"
			       "  -h, --help           this text\n", argv[0]);
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("%s: expected a URL and a directory (see --help)", argv[0]);
	if (!json && cli_progress_enabled()) {
		o.progress = cli_progress;
		o.progress_arg = (void *)"pull";
	}
	if (store_pull(argv[optind], argv[optind + 1], &o, &res))
		return cli_fail("snapshot pull: %s", util_last_error());
	mibs = res.fetch_seconds > 0 ?
	       (double)res.bytes_fetched / 1048576.0 / res.fetch_seconds : 0;
	if (json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "url", json_object_new_string(argv[optind]));
		json_object_object_add(j, "snapshot", json_object_new_string(argv[optind + 1]));
		json_object_object_add(j, "mem_size", I64(res.mem_size));
		json_object_object_add(j, "chunks_fetched", I64(res.chunks_fetched));
		json_object_object_add(j, "bytes_fetched", I64(res.bytes_fetched));
		json_object_object_add(j, "requests", I64(res.requests));
		json_object_object_add(j, "fetch_seconds", json_object_new_double(res.fetch_seconds));
		json_object_object_add(j, "seconds", json_object_new_double(res.seconds));
		json_object_object_add(j, "fetch_mib_per_s", json_object_new_double(mibs));
		print_json(j);
		return 0;
	}
	printf("pulled %s to %s in %.3f s: %llu MiB of memory, %llu chunks, "
	       "%llu KiB fetched in %.3f s (%.1f MiB/s, %llu requests)\n",
	       argv[optind], argv[optind + 1], res.seconds,
	       (unsigned long long)(res.mem_size >> 20),
	       (unsigned long long)res.chunks_fetched,
	       (unsigned long long)(res.bytes_fetched >> 10), res.fetch_seconds,
	       mibs, (unsigned long long)res.requests);
	return 0;
}

/*
 * `lazymem store serve`: the throwaway store the benchmarks and tests use
 * (store/local.h: nginx WebDAV on a free loopback port), for trying push,
 * pull and `vm restore URL` without a bucket. It runs in the foreground
 * until SIGINT or SIGTERM, or until nginx exits.
 */
static int serve_until_signal(struct store_local *s)
{
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 200000000 };
	sigset_t set;
	int st;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	for (;;) {
		if (sigtimedwait(&set, NULL, &tick) > 0)
			return 0;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->pid = 0;
			return cli_fail("store serve: nginx exited (%s %d); its "
					"log: %s/error.log",
					WIFEXITED(st) ? "status" : "signal",
					WIFEXITED(st) ? WEXITSTATUS(st) :
							WTERMSIG(st), s->dir);
		}
	}
}

int cmd_store_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_local s;
	bool keep = false;
	char why[600];
	sigset_t set;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keep = true;
			break;
		case 'h':
			printf("usage: %s [--keep]\n"
			       "Run a throwaway object store on loopback (nginx with WebDAV:\n"
			       "PUT, GET, HEAD) for 'snapshot push', 'snapshot pull' and\n"
			       "'vm restore URL' without a bucket. Prints its base URL on the\n"
			       "first line of stdout (append /BUCKET/PREFIX), then runs until\n"
			       "SIGINT or SIGTERM. Needs root and Debian's nginx-core.\n\n"
			       "  --keep      leave its data directory behind (printed) on exit\n"
			       "  -h, --help  this text\n", argv[0]);
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind != argc)
		return cli_usage_error("%s: takes no arguments (see --help)", argv[0]);
	/* blocked before nginx is forked: the signals are ours to wait for */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (store_local_start(&s, why, sizeof(why)))
		return cli_fail("store serve: %s", why);
	printf("%s\n", s.url);
	fflush(stdout);
	fprintf(stderr, "lazymem: store serve: data in %s/data; push to %s/BUCKET/NAME\n",
		s.dir, s.url);
	rc = serve_until_signal(&s);
	store_local_stop(&s, keep);
	if (keep)
		fprintf(stderr, "lazymem: store serve: kept %s\n", s.dir);
	return rc;
}
