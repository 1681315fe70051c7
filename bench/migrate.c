/*
 * migrate.c - `lazymem bench migrate`: live migration of a running test
 * VM, precopy / postcopy / hybrid at each injected RTT (filled in below).
 */
#include <stdio.h>

#include "cli/cli.h"

int cmd_bench_migrate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return cli_fail("bench migrate: not built yet");
}
