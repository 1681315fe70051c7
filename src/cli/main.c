/*
 * main.c - the lazymem command: finds the subcommand and hands it argv.
 *
 * Every subcommand lives in a file of its own and parses its own options
 * with getopt_long; this file only knows the table below.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct cli_command commands[] = {
	/* before "demo": a group entry is matched on both words */
	{ "demo", "migrate", cmd_demo_migrate,
	  "migrate a running test VM over loopback: pre-copy, then post-copy" },
	{ NULL, "demo", cmd_demo,
	  "save a test VM at its save point, restore it lazily with prefetch, refuse a corrupt page" },
	{ "bench", "fault", cmd_bench_fault,
	  "fault-resolution rate: handler threads vs self-resolve vs kernel" },
	{ NULL, "fc-handler", cmd_fc_handler,
	  "Firecracker-compatible page-fault handler daemon" },
	{ "bench", "fc-handler", cmd_bench_fc_handler,
	  "fc-handler vs copy-per-fault: fault-in and working-set times" },
	{ "vm", "run", cmd_vm_run,
	  "boot a guest workload with lazily filled RAM on /dev/kvm" },
	{ "bench", "paging", cmd_bench_paging,
	  "guest demand-paging rate per delivery and vCPU count" },
	{ "snapshot", "inspect", cmd_snapshot_inspect,
	  "print a snapshot's layout, vCPU and workload state" },
	{ "snapshot", "verify", cmd_snapshot_verify,
	  "check every page of a snapshot against its hash" },
	{ "snapshot", "push", cmd_snapshot_push,
	  "upload a snapshot to HTTP object storage as deduplicated chunks" },
	{ "snapshot", "pull", cmd_snapshot_pull,
	  "download a snapshot from object storage whole, every chunk checked" },
	{ "store", "serve", cmd_store_serve,
	  "a throwaway object store on loopback (nginx WebDAV) to push and pull" },
	{ "bench", "fleet", cmd_bench_fleet,
	  "VMs restoring from object storage: lazy vs pull, shared vs separate caches" },
	{ "bench", "store-chunks", cmd_bench_store_chunks,
	  "store chunk sizes: hash+zstd speed, ratio, lazy 10% and pull at an RTT" },
	{ "vm", "restore", cmd_vm_restore,
	  "resume a saved VM lazily (or eagerly), with working-set prefetch" },
	{ "bench", "restore", cmd_bench_restore,
	  "restore: first instruction and completion, eager/lazy/prefetch/limit" },
	{ "bench", "postcopy", cmd_bench_postcopy,
	  "post-copy over TCP at injected RTTs vs local memory" },
	{ NULL, "page-server", cmd_page_server,
	  "serve a file or test image to a page-fetch peer over TCP" },
	{ NULL, "page-fetch", cmd_page_fetch,
	  "fill a region from a page-server peer: demand + push" },
	{ "migrate", "recv", cmd_migrate_recv,
	  "migration destination: listen, resume the VM at once, fetch on demand" },
	{ "migrate", "send", cmd_migrate_send,
	  "migration source: run a test VM, pre-copy it, switch over, serve it" },
	{ "bench", "migrate", cmd_bench_migrate,
	  "live migration: downtime and fault latency, pre/post/hybrid x RTT" },
	{ "bench", "live-snapshot", cmd_bench_live_snapshot,
	  "live snapshot while writers run: stop-and-copy, fork, cow, iterate" },
	{ "bench", "reclaim", cmd_bench_reclaim,
	  "cold memory out of a running guest and back on touch: stores x backings" },
	{ "bench", "tracking", cmd_bench_tracking,
	  "write tracking per round: none, async/sync uffd-wp, mprotect (KVM rows skipped)" },
	{ "bench", "thp", cmd_bench_thp,
	  "huge pages after a lazy restore: random reads, 4 KiB vs collapsed vs THP" },
	{ NULL, "proxy", cmd_proxy,
	  "TCP proxy adding a round-trip time (no netem here)" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fputs("usage: lazymem <command> [options]\n\n"
	      "userspace demand paging for virtual-machine memory\n\ncommands:\n",
	      f);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%s%s%s",
			 commands[i].group ? commands[i].group : "",
			 commands[i].group ? " " : "", commands[i].name);
		fprintf(f, "  %-22s %s\n", name, commands[i].summary);
	}
	fputs("\n'lazymem <command> --help' describes a command's options.\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr), 2;
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help"))
		return usage(stdout), 0;
	if (!strcmp(argv[1], "--version"))
		return puts("lazymem " LAZYMEM_VERSION), 0;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_command *c = &commands[i];
		char prog[64];

		if (c->group) {
			if (strcmp(argv[1], c->group) || argc < 3 ||
			    strcmp(argv[2], c->name))
				continue;
			snprintf(prog, sizeof(prog), "lazymem %s %s", c->group,
				 c->name);
			argv[2] = prog;
			return c->run(argc - 2, argv + 2);
		}
		if (!strcmp(argv[1], c->name)) {
			snprintf(prog, sizeof(prog), "lazymem %s", c->name);
			argv[1] = prog;
			return c->run(argc - 1, argv + 1);
		}
	}
	return cli_usage_error("unknown command '%s%s%s'", argv[1],
			       argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
}
