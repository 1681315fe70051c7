/*
 * cmd_fc_handler.c - `lazymem fc-handler`: the Firecracker-compatible
 * page-fault handler daemon (src/fc/, docs/fc-handler.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fc/fc.h"

static void usage(FILE *f)
{
	fputs("usage: lazymem fc-handler --socket PATH --mem-file FILE "
	      "[options]\n"
	      "       lazymem fc-handler --socket-activated --mem-file FILE "
	      "[options]\n\n"
	      "Serve the guest memory of Firecracker-style VMMs from a raw "
	      "memory file:\neach VMM connects to PATH once per VM and sends "
	      "its regions (JSON) with\nthe guest memory's userfaultfd. Any "
	      "number of VMs, all sharing FILE.\n\n"
	      "  -s, --socket PATH        Unix socket to listen on\n"
	      "  -a, --socket-activated   listen on the socket systemd passes "
	      "(LISTEN_FDS,\n"
	      "                           LISTEN_PID; fd 3); implied "
	      "without --socket\n"
	      "  -m, --mem-file FILE      the snapshot's raw memory file\n"
	      "  -p, --prefetch WHAT      none (default) | all (every page "
	      "in the\n"
	      "                           background, demand first) | a "
	      "working-set file\n"
	      "                           (prefetched from the first fault, "
	      "in batches)\n"
	      "  -r, --record-ws FILE     write the first VM's first-touch "
	      "order here when\n"
	      "                           it disconnects (use with "
	      "--prefetch none)\n"
	      "  -k, --kill-peer-on-error kill a VMM whose fault cannot be "
	      "served\n"
	      "                           (default: poison the page, the "
	      "access gets SIGBUS)\n"
	      "  -j, --json               statistics as JSON lines\n"
	      "  -q, --quiet              no log lines (statistics only)\n"
	      "  -h, --help\n\n"
	      "Statistics per VM are printed on disconnect and on SIGUSR1; "
	      "SIGINT or\nSIGTERM stops the handler.\n", f);
}

int cmd_fc_handler(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "socket-activated", no_argument, NULL, 'a' },
		{ "mem-file", required_argument, NULL, 'm' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "record-ws", required_argument, NULL, 'r' },
		{ "kill-peer-on-error", no_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct fc_options o = { .ready_fd = -1 };
	int c;

	while ((c = getopt_long(argc, argv, "s:am:p:r:kjqh", opts, NULL)) != -1) {
		switch (c) {
		case 's': o.socket_path = optarg; break;
		case 'a': o.socket_activated = true; break;
		case 'm': o.mem_path = optarg; break;
		case 'p':
			if (!strcmp(optarg, "none")) {
				o.prefetch = FC_PREFETCH_NONE;
			} else if (!strcmp(optarg, "all")) {
				o.prefetch = FC_PREFETCH_ALL;
			} else if (!*optarg) {
				return cli_usage_error("--prefetch '': expected "
					"none, all or a working-set file");
			} else {
				o.prefetch = FC_PREFETCH_WS;
				o.ws_path = optarg;
			}
			break;
		case 'r': o.record_path = optarg; break;
		case 'k': o.kill_peer = true; break;
		case 'j': o.json = true; break;
		case 'q': o.quiet = true; break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind < argc)
		return cli_usage_error("fc-handler: unexpected argument '%s'",
				       argv[optind]);
	if (!o.mem_path || (!o.socket_path && !o.socket_activated &&
			    !getenv("LISTEN_FDS")))
		return cli_usage_error("fc-handler: --socket and --mem-file are "
				       "required (--socket-activated instead "
				       "of --socket under systemd)");
	/* No path to listen on: the socket must come from systemd. */
	if (!o.socket_path)
		o.socket_activated = true;
	if (o.record_path && o.prefetch != FC_PREFETCH_NONE)
		fprintf(stderr, "lazymem fc-handler: warning: --record-ws "
			"records the pages that fault; with --prefetch the "
			"prefetched ones never do and will be missing from "
			"%s\n", o.record_path);
	return fc_server_run(&o);
}
