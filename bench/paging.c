#include "cli/cli.h"
int cmd_bench_paging(int argc, char **argv) { (void)argc; (void)argv; return 1; }
