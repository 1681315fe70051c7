/*
 * cmd_proxy.c - `lazymem proxy`: a TCP proxy that adds a round-trip time,
 * for measurements with network delay on a machine without netem.
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
