/*
 * fc_handler.c - `lazymem bench fc-handler`: restoring a Firecracker-style
 * VM's memory through a page-fault handler.
 *
 * THE GUEST IS A THREAD-BASED STAND-IN, not a KVM guest: this process maps
 * guest memory, registers it with a userfaultfd and hands it to the
 * handler exactly as Firecracker does (src/fcproto/client.c), then plain
 * threads touch it. The handler runs in a child process, as it would in
 * production. Two workloads, each on a freshly restored VM:
 *
 *   fault-128M  one thread reads the first 128 MiB in order (the figure
 *               Firecracker's own performance tests use);
 *   ws          --threads threads read a scattered working set of --ws of
 *               the 4 KiB blocks of --mem, in random order.
 *
 * Contenders, one run each:
 *   copy-per-fault  the way Firecracker's example handler works: the file
 *                   read into private memory first (not timed), then one
 *                   UFFDIO_COPY per fault message, one message at a time;
 *   on-demand       lazymem fc-handler, no prefetch;
 *   prefetch        lazymem fc-handler with the workload's working set,
 *                   recorded by an untimed run with --record-ws;
 *   limit           the memory already present (no userfaultfd).
 * For 4 KiB and 2 MiB (hugetlbfs) pages. Every touched block of every run
 * is compared with the memory file afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"
#include "bench.h"
#include "cli/cli.h"
#include "fcproto/client.h"
#include "fc/fc.h"

#define HUGE (2ull << 20)
#define FAULT_IN (128ull << 20)
#define MAX_THREADS 16
#define MAX_REPEAT 9

enum mode { M_COPY, M_DEMAND, M_PREFETCH, M_LIMIT, NMODES };
static const char *const mode_name[] = { "copy-per-fault", "on-demand",
					  "prefetch", "limit" };
enum work { W_FAULT_IN, W_WS, NWORK };

struct cfg {
	uint64_t mem;
	double ws_frac;
	unsigned threads;
	int repeat;
	bool json;
	char dir[64], file[96], sock[96], stats[96], wsf[2][NWORK][96];
	uint64_t *ws;		/* 4 KiB block numbers, random order */
	size_t nws;
	uint64_t page_sizes[2];
	int npage_sizes;
	bool huge_ok;
	long huge_prev;
};

struct result {
	double secs[NWORK];		/* median over the repeats */
	long faults[NWORK];		/* of the median run */
	double s[NWORK][MAX_REPEAT];
	long f[NWORK][MAX_REPEAT];
	uint64_t bad;		/* blocks that failed verification */
	bool ran;
};

/* ---- the memory file ---- */

static int make_file(struct cfg *c)
{
	size_t chunk = 8u << 20;
	uint64_t *buf = malloc(chunk);
	int fd;

	if (!buf)
		return -ENOMEM;
	fd = open(c->file, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (uint64_t off = 0; off < c->mem; off += chunk) {
		for (uint64_t i = 0; i < chunk / 8; i++) {
			uint64_t at = off + i * 8;

			buf[i] = bench_pattern(at / 4096, (at % 4096) / 8);
		}
		if (pwrite(fd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
			close(fd);
			free(buf);
			return -EIO;
		}
	}
	close(fd);
	free(buf);
	return 0;
}

static uint64_t verify_blocks(const uint8_t *mem, const uint64_t *blocks,
			      size_t n)
{
	uint64_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		const uint64_t *w = (const uint64_t *)(const void *)
				    (mem + blocks[i] * 4096);

		for (unsigned k = 0; k < 512; k++)
			if (w[k] != bench_pattern(blocks[i], k)) {
				bad++;
				break;
			}
	}
	return bad;
}

/* ---- the guest's workloads ---- */

struct toucher {
	const uint8_t *mem;
	const uint64_t *blocks;
	size_t first, n, step;
	uint64_t sum, t_end;
	pthread_barrier_t *go;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->go);
	for (size_t i = t->first; i < t->n; i += t->step)
		t->sum += *(const volatile uint64_t *)(const void *)
			  (t->mem + t->blocks[i] * 4096 + 8);
	t->t_end = lm_now_ns();
	return NULL;
}

/* Touch blocks[0..n) from nt threads (interleaved); seconds. */
static double run_touch(const uint8_t *mem, const uint64_t *blocks, size_t n,
			unsigned nt)
{
	pthread_t tid[MAX_THREADS];
	struct toucher t[MAX_THREADS];
	pthread_barrier_t go;
	uint64_t t0, t1 = 0;

	pthread_barrier_init(&go, NULL, nt + 1);
	for (unsigned i = 0; i < nt; i++) {
		t[i] = (struct toucher){ .mem = mem, .blocks = blocks,
					 .first = i, .n = n, .step = nt,
					 .go = &go };
		pthread_create(&tid[i], NULL, toucher_main, &t[i]);
	}
	t0 = lm_now_ns();
	pthread_barrier_wait(&go);
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(tid[i], NULL);
		t1 = BENCH_MAX(t1, t[i].t_end);
	}
	pthread_barrier_destroy(&go);
	return (double)(t1 - t0) / 1e9;
}

/* ---- copy-per-fault: Firecracker's example handler, behaviourally ---- */

static int recv_hello(int s, char *buf, size_t cap, int *uffd)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *cm;
	ssize_t n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(uffd, CMSG_DATA(cm), sizeof(int));
	return (int)n;
}

static int copy_handler_main(const struct cfg *c, int ready)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct fc_layout lay;
	char msg[4096], why[256];
	uint8_t *copy;
	int ls, s, uffd, n;
	long faults = 0;
	FILE *f;

	/* The private copy of the memory file, read before the VM comes. */
	copy = mmap(NULL, c->mem, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
		    open(c->file, O_RDONLY | O_CLOEXEC), 0);
	if (copy == MAP_FAILED)
		return 1;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", c->sock);
	unlink(c->sock);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0)
		return 1;
	if (write(ready, "r", 1) != 1)
		return 1;
	s = accept(ls, NULL, NULL);
	n = recv_hello(s, msg, sizeof(msg), &uffd);
	if (n < 0 || fc_protocol_parse(msg, (size_t)n, c->mem, &lay, why,
				       sizeof(why)) != FC_PARSE_OK)
		return 1;
	for (;;) {
		struct pollfd p[2] = { { .fd = uffd, .events = POLLIN },
				       { .fd = s, .events = POLLIN } };
		struct uffd_msg m;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;		/* the VMM went away */
		if (read(uffd, &m, sizeof(m)) != sizeof(m))
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		for (unsigned i = 0; i < lay.n; i++) {
			const struct fc_region *r = &lay.r[i];
			uint64_t addr = m.arg.pagefault.address;
			struct uffdio_copy cp;

			if (addr - r->base >= r->size)
				continue;
			addr &= ~(r->page_size - 1);
			cp = (struct uffdio_copy){
				.dst = addr, .len = r->page_size,
				.src = (uintptr_t)copy + r->offset +
				       (addr - r->base),
			};
			while (ioctl(uffd, UFFDIO_COPY, &cp) < 0 &&
			       errno == EAGAIN)
				;
			faults++;
		}
	}
	f = fopen(c->stats, "w");
	if (f) {
		fprintf(f, "{\"faults\":%ld}\n", faults);
		fclose(f);
	}
	return 0;
}

/* ---- running one measured restore ---- */

static pid_t start_handler(const struct cfg *c, int pi, enum mode m,
			   enum work w, bool record)
{
	int p[2];
	char r;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	unlink(c->stats);
	pid = fork();
	if (pid == 0) {
		struct fc_options o = {
			.socket_path = c->sock, .mem_path = c->file,
			.json = true, .quiet = true, .ready_fd = p[1],
		};
		int out;

		/* An interrupted benchmark takes its handler along. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		if (m == M_COPY)
			_exit(copy_handler_main(c, p[1]));
		out = open(c->stats, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		dup2(out, 1);
		if (record)
			o.record_path = c->wsf[pi][w];
		if (m == M_PREFETCH) {
			o.prefetch = FC_PREFETCH_WS;
			o.ws_path = c->wsf[pi][w];
		}
		_exit(fc_server_run(&o));
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &r, 1) != 1) {
		close(p[0]);
		if (pid > 0)
			waitpid(pid, NULL, 0);
		return -1;
	}
	close(p[0]);
	return pid;
}

static long faults_of(const struct cfg *c)
{
	char buf[4096] = "";
	FILE *f = fopen(c->stats, "r");
	size_t n;
	const char *p;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	p = strstr(buf, "\"faults\":");
	return p ? atol(p + 9) : -1;
}

static int map_present(const struct cfg *c, uint64_t ps, uint8_t **out)
{
	int flags = ps == HUGE ? MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB
			       : MAP_PRIVATE | MAP_ANONYMOUS;
	uint8_t *p = mmap(NULL, c->mem, PROT_READ | PROT_WRITE, flags, -1, 0);
	int fd = open(c->file, O_RDONLY | O_CLOEXEC);

	if (p == MAP_FAILED || fd < 0)
		return -ENOMEM;
	for (uint64_t off = 0; off < c->mem; off += 8u << 20)
		if (pread(fd, p + off, (c->mem - off < (8u << 20) ? c->mem - off : (8u << 20)),
			  (off_t)off) < 0) {
			close(fd);
			return -EIO;
		}
	close(fd);
	*out = p;
	return 0;
}

/* One restore of a fresh VM running workload w; fills res. */
static int run_one(const struct cfg *c, int pi, enum mode m, enum work w,
		   bool record, int rep, struct result *res)
{
	static uint64_t *seq;
	const uint64_t *blocks = w == W_WS ? c->ws : NULL;
	size_t n = w == W_WS ? c->nws : FAULT_IN / 4096;
	unsigned nt = w == W_WS ? c->threads : 1;
	struct fc_guest g = { .uffd = -1, .sock = -1 };
	uint64_t ps = c->page_sizes[pi];
	pid_t pid = -1;
	double secs;
	int err, st;

	if (!seq) {
		seq = malloc(FAULT_IN / 4096 * sizeof(*seq));
		if (!seq)
			return -ENOMEM;
		for (uint64_t i = 0; i < FAULT_IN / 4096; i++)
			seq[i] = i;
	}
	if (!blocks)
		blocks = seq;
	if (m == M_LIMIT) {
		err = map_present(c, ps, &g.mem);
		if (err)
			return err;
		g.size = c->mem;
	} else {
		pid = start_handler(c, pi, m, w, record);
		if (pid < 0)
			return -ECHILD;
		err = fc_guest_start(&g, c->sock, c->mem, ps, 1);
		if (err) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fc_guest_stop(&g);
			return err;
		}
	}
	secs = run_touch(g.mem, blocks, n, nt);
	if (!record) {
		res->s[w][rep] = secs;
		res->bad += verify_blocks(g.mem, blocks, n);
		res->ran = true;
	}
	fc_guest_stop(&g);
	if (pid > 0) {
		/* The copy-per-fault handler exits when the VMM goes away,
		 * after writing its count; lazymem's is told to stop. */
		if (m != M_COPY)
			kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		if (!record)
			res->f[w][rep] = faults_of(c);
		if (getenv("LM_BENCH_FC_DEBUG")) {
			char cmd[200];

			snprintf(cmd, sizeof(cmd), "cat %s >&2", c->stats);
			if (system(cmd)) {
				/* debugging aid only */
			}
		}
	}
	return 0;
}

/* ---- options, output ---- */

static void usage(FILE *f)
{
	fputs("usage: lazymem bench fc-handler [options]\n\n"
	      "Restore a Firecracker-style VM's memory through a page-fault "
	      "handler: time to\nfault in 128 MiB and to run a scattered "
	      "working set, for one UFFDIO_COPY per\nfault (Firecracker's "
	      "example handler), lazymem fc-handler on demand and with\n"
	      "working-set prefetch, and the limit (memory already present).\n"
	      "The guest is a thread-based stand-in (plain threads, not KVM).\n\n"
	      "  -m, --mem SIZE        guest memory and memory file (default 1G)\n"
	      "  -w, --ws PCT%         working set, % of 4 KiB blocks "
	      "(default 10%)\n"
	      "  -t, --threads N       threads running the working set "
	      "(default 2)\n"
	      "  -p, --page-sizes L    4k,2m (default both; 2m needs hugetlb "
	      "pages)\n"
	      "  -r, --repeat N        runs per cell, median kept (default 1)\n"
	      "  -j, --json            JSON on stdout instead of the table\n"
	      "  -h, --help\n", f);
}

static int parse(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "ws", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "page-sizes", required_argument, NULL, 'p' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "m:w:t:p:r:jh", opts, NULL)) != -1) {
		char *end;

		switch (o) {
		case 'm':
			if (cli_parse_size(optarg, &c->mem) || c->mem < FAULT_IN
			    || c->mem % HUGE)
				return cli_usage_error("--mem '%s': expected a "
					"size of at least 128M, a multiple of "
					"2M", optarg);
			break;
		case 'w':
			c->ws_frac = strtod(optarg, &end) / 100;
			if (end == optarg || (*end && strcmp(end, "%")) ||
			    c->ws_frac <= 0 || c->ws_frac > 1)
				return cli_usage_error("--ws '%s': expected a "
					"percentage such as 10%%", optarg);
			break;
		case 't':
			c->threads = (unsigned)atoi(optarg);
			if (c->threads < 1 || c->threads > MAX_THREADS)
				return cli_usage_error("--threads '%s': expected "
					"1..%d", optarg, MAX_THREADS);
			break;
		case 'p':
			c->npage_sizes = 0;
			if (strstr(optarg, "4k") || strstr(optarg, "4K"))
				c->page_sizes[c->npage_sizes++] = 4096;
			if (strstr(optarg, "2m") || strstr(optarg, "2M"))
				c->page_sizes[c->npage_sizes++] = HUGE;
			if (!c->npage_sizes)
				return cli_usage_error("--page-sizes '%s': "
					"expected 4k, 2m or 4k,2m", optarg);
			break;
		case 'r':
			c->repeat = atoi(optarg);
			if (c->repeat < 1 || c->repeat > MAX_REPEAT)
				return cli_usage_error("--repeat '%s': expected "
					"1..%d", optarg, MAX_REPEAT);
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return 2;
		}
	}
	if (optind < argc)
		return cli_usage_error("bench fc-handler: unexpected argument "
				       "'%s'", argv[optind]);
	return 0;
}

static void make_ws(struct cfg *c)
{
	uint64_t blocks = c->mem / 4096, x = 0x2545f4914f6cdd1dull;
	uint8_t *taken = calloc(blocks, 1);

	c->nws = (size_t)((double)blocks * c->ws_frac);
	c->ws = malloc(c->nws * sizeof(*c->ws));
	for (size_t i = 0; i < c->nws;) {
		uint64_t b;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b = x % blocks;
		if (!taken[b]) {
			taken[b] = 1;
			c->ws[i++] = b;
		}
	}
	free(taken);
}

/* The median run's time and its fault count. */
static void median_of(struct result *r, int w, int n)
{
	int best = 0;
	double sorted[MAX_REPEAT], med;

	memcpy(sorted, r->s[w], sizeof(double) * (size_t)n);
	med = bench_median(sorted, n);
	for (int i = 1; i < n; i++)
		if (fabs(r->s[w][i] - med) < fabs(r->s[w][best] - med))
			best = i;
	r->secs[w] = r->s[w][best];
	r->faults[w] = r->f[w][best];
}

static const char *ps_name(uint64_t ps)
{
	return ps == HUGE ? "2M" : "4K";
}

static void print_table(const struct cfg *c, struct result res[][NMODES])
{
	printf("lazymem bench fc-handler: THE GUEST IS A THREAD-BASED STAND-IN "
	       "(plain threads in the VMM-side\nprocess touching memory "
	       "registered and handed over exactly as Firecracker does; not a\n"
	       "KVM guest). Handler in a child process. Memory file %llu MiB "
	       "(page cache warm); %d CPUs;\ntwo unmeasured warm-up passes, "
	       "then the median of %d run(s) per cell; every touched\nblock "
	       "of every run verified against the file.\n"
	       "  fault-128M: 1 thread reads the first 128 MiB in order.\n"
	       "  ws: %u threads read %zu scattered 4 KiB blocks (%.0f%% of "
	       "memory) in random order.\n\n",
	       (unsigned long long)(c->mem >> 20), bench_ncpus(), c->repeat,
	       c->threads,
	       c->nws, c->ws_frac * 100);
	printf("%-4s %-15s %12s %9s %10s %9s %9s %9s %s\n", "page", "mode",
	       "fault-128M s", "faults", "ws s", "faults", "xcopy-ws",
	       "xlimit-ws", "verified");
	for (int p = 0; p < c->npage_sizes; p++) {
		double copy = res[p][M_COPY].secs[W_WS];
		double lim = res[p][M_LIMIT].secs[W_WS];

		for (int m = 0; m < NMODES; m++) {
			const struct result *r = &res[p][m];

			if (!r->ran) {
				printf("%-4s %-15s not run\n",
				       ps_name(c->page_sizes[p]), mode_name[m]);
				continue;
			}
			printf("%-4s %-15s %12.3f %9ld %10.3f %9ld %8.2fx "
			       "%8.2fx %s\n", ps_name(c->page_sizes[p]),
			       mode_name[m], r->secs[W_FAULT_IN],
			       r->faults[W_FAULT_IN], r->secs[W_WS],
			       r->faults[W_WS],
			       r->secs[W_WS] > 0 ? copy / r->secs[W_WS] : 0,
			       lim > 0 ? r->secs[W_WS] / lim : 0,
			       r->bad ? "NO" : "yes");
		}
	}
	printf("\nxcopy-ws: copy-per-fault's ws time / this row's (higher is "
	       "faster); xlimit-ws: this row's\nws time / the limit's. faults: "
	       "fault messages the handler read (none for the limit).\n");
	if (res[0][M_PREFETCH].ran && res[0][M_COPY].ran)
		printf("goal: ws prefetch >= 3x faster than copy-per-fault (%s): "
		       "%.2fx\n", ps_name(c->page_sizes[0]),
		       res[0][M_COPY].secs[W_WS] / res[0][M_PREFETCH].secs[W_WS]);
	if (c->npage_sizes == 2 && res[1][M_DEMAND].ran &&
	    res[1][M_DEMAND].faults[W_WS] > 0)
		printf("goal: 2M pages >= 5x fewer faults than 4K (ws, "
		       "on-demand): %ld vs %ld = %.1fx fewer\n",
		       res[1][M_DEMAND].faults[W_WS],
		       res[0][M_DEMAND].faults[W_WS],
		       (double)res[0][M_DEMAND].faults[W_WS] /
		       (double)res[1][M_DEMAND].faults[W_WS]);
}

static void print_json(const struct cfg *c, struct result res[][NMODES])
{
	json_object *root = json_object_new_object();
	json_object *cfg = json_object_new_object();
	json_object *arr = json_object_new_array();

	json_object_object_add(cfg, "mem", json_object_new_int64((int64_t)c->mem));
	json_object_object_add(cfg, "ws_fraction", json_object_new_double(c->ws_frac));
	json_object_object_add(cfg, "ws_blocks", json_object_new_int64((int64_t)c->nws));
	json_object_object_add(cfg, "threads", json_object_new_int((int)c->threads));
	json_object_object_add(cfg, "fault_in_bytes", json_object_new_int64((int64_t)FAULT_IN));
	json_object_object_add(cfg, "cpus", json_object_new_int(bench_ncpus()));
	json_object_object_add(cfg, "repeat", json_object_new_int(c->repeat));
	json_object_object_add(cfg, "guest", json_object_new_string(
		"thread-based stand-in (plain threads, not a KVM guest)"));
	for (int p = 0; p < c->npage_sizes; p++)
		for (int m = 0; m < NMODES; m++) {
			const struct result *r = &res[p][m];
			json_object *o;

			if (!r->ran)
				continue;
			o = json_object_new_object();
			json_object_object_add(o, "mode", json_object_new_string(mode_name[m]));
			json_object_object_add(o, "page_size",
				json_object_new_int64((int64_t)c->page_sizes[p]));
			json_object_object_add(o, "seconds", json_object_new_double(r->secs[W_WS]));
			json_object_object_add(o, "fault_128m_seconds",
				json_object_new_double(r->secs[W_FAULT_IN]));
			json_object_object_add(o, "faults", m == M_LIMIT ? json_object_new_int(0)
				: json_object_new_int64(r->faults[W_WS]));
			json_object_object_add(o, "fault_128m_faults", m == M_LIMIT
				? json_object_new_int(0)
				: json_object_new_int64(r->faults[W_FAULT_IN]));
			json_object_object_add(o, "ratio_to_copy_per_fault",
				json_object_new_double(r->secs[W_WS] > 0
					? res[p][M_COPY].secs[W_WS] / r->secs[W_WS] : 0));
			json_object_object_add(o, "verified", json_object_new_boolean(r->bad == 0));
			json_object_array_add(arr, o);
		}
	json_object_object_add(root, "benchmark", json_object_new_string("fc-handler"));
	json_object_object_add(root, "config", cfg);
	json_object_object_add(root, "results", arr);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

static void cleanup(struct cfg *c)
{
	unlink(c->file);
	unlink(c->sock);
	unlink(c->stats);
	for (int p = 0; p < 2; p++)
		for (int w = 0; w < NWORK; w++)
			unlink(c->wsf[p][w]);
	rmdir(c->dir);
	free(c->ws);
	if (c->huge_prev >= 0) {
		FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");

		if (f) {
			fprintf(f, "%ld\n", c->huge_prev);
			fclose(f);
		}
	}
}

/* Reserve 2 MiB pages for one guest; -1 if we cannot. */
static long reserve_huge(uint64_t pages)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	long cur = -1, got = -1;

	if (!f || fscanf(f, "%ld", &cur) != 1) {
		if (f)
			fclose(f);
		return -1;
	}
	rewind(f);
	fprintf(f, "%ld\n", cur + (long)pages);
	fclose(f);
	f = fopen("/proc/sys/vm/nr_hugepages", "r");
	if (f && fscanf(f, "%ld", &got) == 1 && got >= cur + (long)pages) {
		fclose(f);
		return cur;
	}
	if (f)
		fclose(f);
	f = fopen("/proc/sys/vm/nr_hugepages", "w");
	if (f) {
		fprintf(f, "%ld\n", cur);
		fclose(f);
	}
	return -1;
}

int cmd_bench_fc_handler(int argc, char **argv)
{
	static struct result res[2][NMODES];
	struct cfg c = { .mem = 1ull << 30, .ws_frac = 0.10, .threads = 2,
			 .repeat = 1,
			 .page_sizes = { 4096, HUGE }, .npage_sizes = 2,
			 .huge_prev = -1 };
	bool progress = cli_progress_enabled();
	char tmpl[] = "/tmp/lazymem-bench-fc-XXXXXX";
	uint64_t bad = 0;
	int err = parse(argc, argv, &c);

	if (err)
		return err;
	if (!mkdtemp(tmpl))
		return cli_fail("bench fc-handler: mkdtemp: %s", strerror(errno));
	snprintf(c.dir, sizeof(c.dir), "%s", tmpl);
	snprintf(c.file, sizeof(c.file), "%s/mem", c.dir);
	snprintf(c.sock, sizeof(c.sock), "%s/fc.sock", c.dir);
	snprintf(c.stats, sizeof(c.stats), "%s/stats", c.dir);
	for (int p = 0; p < 2; p++)
		for (int w = 0; w < NWORK; w++)
			snprintf(c.wsf[p][w], sizeof(c.wsf[p][w]), "%s/ws-%d-%d",
				 c.dir, p, w);
	make_ws(&c);
	if (progress)
		fprintf(stderr, "writing the %llu MiB memory file...\r",
			(unsigned long long)(c.mem >> 20));
	err = make_file(&c);
	if (err) {
		cleanup(&c);
		return cli_fail("bench fc-handler: writing %s: %s", c.file,
				strerror(-err));
	}
	for (int p = 0; p < c.npage_sizes; p++) {
		if (c.page_sizes[p] != HUGE)
			continue;
		c.huge_prev = reserve_huge(c.mem / HUGE + 2);
		if (c.huge_prev < 0) {
			fprintf(stderr, "bench fc-handler: cannot reserve %llu "
				"2 MiB hugetlb pages; 2M rows not run\n",
				(unsigned long long)(c.mem / HUGE + 2));
			c.npage_sizes = p;	/* 2M is listed last */
		}
	}
	/* Warm-up, not measured: this machine is itself a VM, and memory
	 * its host has not backed yet costs about 4x more on first touch
	 * (docs/benchmarks.md). Two passes of the limit per page size back
	 * the guest memory every later run reuses. */
	for (int p = 0; p < c.npage_sizes && !err; p++)
		for (int i = 0; i < 2 && !err; i++)
			err = run_one(&c, p, M_LIMIT, W_WS, true, 0,
				      &res[p][M_LIMIT]);
	/* Round-robin: every cell once per round, so drift on a shared
	 * machine spreads over all of them. */
	for (int r = 0; r < c.repeat && !err; r++)
		for (int p = 0; p < c.npage_sizes && !err; p++) {
			uint64_t ps = c.page_sizes[p];

			for (int w = 0; w < NWORK && !err; w++) {
				/* The working set of this workload, recorded
				 * by an untimed on-demand run (once). */
				if (r == 0)
					err = run_one(&c, p, M_DEMAND,
						      (enum work)w, true, 0,
						      &res[p][M_DEMAND]);
				for (int m = 0; m < NMODES && !err; m++) {
					if (progress)
						fprintf(stderr, "\rround %d/%d %s "
							"%-15s %-10s   ", r + 1,
							c.repeat, ps_name(ps),
							mode_name[m], w ? "ws"
							: "fault-128M");
					err = run_one(&c, p, (enum mode)m,
						      (enum work)w, false, r,
						      &res[p][m]);
				}
			}
			if (err) {
				cleanup(&c);
				return cli_fail("bench fc-handler: %s pages: %s",
						ps_name(ps), strerror(-err));
			}
		}
	for (int p = 0; p < c.npage_sizes; p++)
		for (int m = 0; m < NMODES; m++)
			for (int w = 0; w < NWORK; w++)
				median_of(&res[p][m], w, c.repeat);
	if (progress)
		fprintf(stderr, "\r%60s\r", "");
	for (int p = 0; p < c.npage_sizes; p++)
		for (int m = 0; m < NMODES; m++)
			bad += res[p][m].bad;
	if (c.json)
		print_json(&c, res);
	else
		print_table(&c, res);
	cleanup(&c);
	if (bad)
		return cli_fail("bench fc-handler: %llu blocks failed "
				"verification", (unsigned long long)bad);
	return 0;
}
