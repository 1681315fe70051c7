/*
 * cli.h - shared pieces of the lazymem command: the subcommand table, and
 * parsers that turn a bad command-line value into a one-line error naming
 * the option and what was expected.
 */
#ifndef LAZYMEM_CLI_H
#define LAZYMEM_CLI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli_command {
	const char *group;	/* "bench", "vm", ... or NULL for top level */
	const char *name;
	int (*run)(int argc, char **argv);	/* argv[0] is "lazymem GROUP NAME" */
	const char *summary;
};

/* Implemented in one file per subcommand. */
int cmd_bench_fault(int argc, char **argv);
int cmd_fc_handler(int argc, char **argv);
int cmd_bench_fc_handler(int argc, char **argv);
int cmd_vm_run(int argc, char **argv);
int cmd_bench_paging(int argc, char **argv);
int cmd_snapshot_inspect(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_snapshot_verify(int argc, char **argv);
int cmd_vm_restore(int argc, char **argv);
int cmd_bench_restore(int argc, char **argv);
int cmd_bench_postcopy(int argc, char **argv);
int cmd_page_server(int argc, char **argv);
int cmd_page_fetch(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_migrate_recv(int argc, char **argv);
int cmd_migrate_send(int argc, char **argv);
int cmd_demo_migrate(int argc, char **argv);
int cmd_bench_migrate(int argc, char **argv);
int cmd_bench_live_snapshot(int argc, char **argv);
int cmd_bench_reclaim(int argc, char **argv);
int cmd_bench_tracking(int argc, char **argv);
int cmd_bench_thp(int argc, char **argv);
int cmd_snapshot_push(int argc, char **argv);
int cmd_snapshot_pull(int argc, char **argv);
int cmd_store_serve(int argc, char **argv);
int cmd_bench_store_chunks(int argc, char **argv);
int cmd_bench_fleet(int argc, char **argv);

/* The store options (cmd_store.c) of every command that reads a URL:
 * 0 taken, 2 a usage error (printed), -1 not a store option. */
struct store_opts;
int cli_store_option(int c, const char *arg, struct store_opts *o);
/* Their --help lines, and their getopt_long entries (val 0x5301..). */
const char *cli_store_help(void);
#define CLI_STORE_LONG_OPTS \
	{ "parallel", required_argument, NULL, 0x5301 }, \
	{ "request-timeout", required_argument, NULL, 0x5302 }, \
	{ "retries", required_argument, NULL, 0x5303 }, \
	{ "s3-region", required_argument, NULL, 0x5304 }

/* "512M", "4k", "1G", "4096" -> bytes. -EINVAL on junk or overflow. */
int cli_parse_size(const char *s, uint64_t *out);
/* "1,2,8" -> up to max unsigned values in 1..limit. Count or -EINVAL. */
int cli_parse_uint_list(const char *s, unsigned *vals, int max,
			unsigned limit);
/* Milliseconds for option opt, -1 (forever) to 24 h; a usage error (2)
 * naming the option otherwise. */
int cli_parse_ms(const char *opt, const char *s, int *out);
/* Print "lazymem: <fmt>\n" on stderr; returns 2 (the usage error code). */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "lazymem: <fmt>\n" on stderr; returns 1 (a runtime failure). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when stderr is a terminal and CI is not set: draw progress lines. */
bool cli_progress_enabled(void);
/* Stand-in guests (touch.c): nthreads threads reading every page of
 * [base, base+size) once, each its own slice, in a scattered order. */
struct cli_toucher {
	uint8_t *base;
	uint64_t first, n, page_size;
	pthread_t thread;
};
void cli_touch_start(struct cli_toucher *t, unsigned nthreads, uint8_t *base,
		     uint64_t size, uint64_t page_size);
void cli_touch_join(struct cli_toucher *t, unsigned nthreads);

/* `lazymem demo` without KVM (cmd_demo_threads.c): the same four steps
 * on nthreads plain threads, the snapshot in dir. 0 when every check
 * passed, else 1 with the reason on stderr. */
int cli_demo_threads(const char *dir, uint64_t mem, unsigned nthreads);
/* Flip one bit of the byte at off of dir/memory.img (cmd_demo.c): the
 * demo's corrupt page. 0, or 1 with the reason on stderr. */
int cli_demo_flip_bit(const char *dir, uint64_t off);

/* A progress callback: arg is what is being done ("save", ...). */
void cli_progress(uint64_t done, uint64_t total, void *arg);

#endif
