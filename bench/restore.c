/*
 * restore.c - "lazymem bench restore": how soon a saved VM runs again and
 * how soon it finishes, restored four ways:
 *
 *   eager     read and check all RAM, then resume (the baseline);
 *   lazy      resume at once, RAM on demand from the snapshot, background
 *             fill streaming the rest;
 *   prefetch  lazy, plus the working set recorded by an earlier restore
 *             installed ahead of the vCPUs;
 *   limit     all RAM already in memory when the clock starts.
 *
 * The VM (the restore workload, guest/restore.c) is saved once at its save
 * point; after resuming, each vCPU touches its share of the working set,
 * scattered, checking every word. Each mode runs once with the page cache
 * dropped before it (cold) and once with memory.img cached (warm). Times
 * are from the restore call: to the first KVM_RUN of any vCPU, and to the
 * last vCPU's DONE. Every run is verified by the guest and by the VMM.
 *
 * Where /dev/kvm cannot be opened, or with --no-kvm, the same command runs
 * the plain-thread restores of restore_threads.c instead, which add the
 * mmap contender (memory.img mapped MAP_PRIVATE).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/snapshot.h>

#include "util/error.h"
#include "util/fs.h"
#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "vmm/vm.h"
#include "vmsnap/vmsnap.h"
#include "bench.h"

enum { M_EAGER, M_LAZY, M_PREFETCH, M_LIMIT, NR_MODES };
static const char *const mode_names[NR_MODES] = {
	"eager", "lazy", "prefetch", "limit",
};

struct brun {
	int mode;
	bool cold;
	struct lm_restore_result r;
	int rc;
	char err[256];
};

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"Save a VM at its save point, restore it eager, lazy, lazy with\n"
		"working-set prefetch, and with all memory present (the limit), with\n"
		"the page cache cold and warm; time to first instruction and to\n"
		"completion. Needs root to drop the page cache.\n\n"
		"  --mem SIZE       guest RAM (default 1G)\n"
		"  --ws N%%          working set touched after resume (default 10%%)\n"
		"  --vcpus N        vCPUs (default 1)\n"
		"  --dir DIR        where the snapshot goes (default a new directory\n"
		"                   under /var/tmp, removed afterwards); on disk, not\n"
		"                   tmpfs, or cold means nothing\n"
		"  --json           one JSON object on stdout\n"
		"  --json-out FILE  the same JSON into FILE, with the table on stdout\n"
		"  --cache WHICH    both (default) or warm: warm only never drops the\n"
		"                   machine's page cache (for tests on shared machines)\n"
		"  --no-kvm         plain threads instead of a VM, even where /dev/kvm\n"
		"                   works (the default where it cannot be opened); adds\n"
		"                   the mmap contender: memory.img mapped MAP_PRIVATE\n"
		"  --threads N      threads of the plain-thread mode (default: --vcpus\n"
		"                   if given, else 2)\n"
		"  -h, --help       this text\n", prog);
}

/* Whether a VM can run here; why not in why. */
static bool kvm_usable(char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, len, "/dev/kvm: %s", strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

static int bench_save(const char *dir, uint64_t mem, unsigned vcpus,
		      double ws, char *why, size_t len)
{
	struct lm_vm_config cfg = {
		.mem_size = mem, .nr_vcpus = vcpus, .backing = LM_BACKING_MEMFD,
		.delivery = LM_VM_LIMIT, .guest_page_size = 4096, .gen = 1,
		.save_point = true,
	};
	struct lm_vm_workload wl = {
		.kind = LM_WL_RESTORE, .timeout_ms = 60000, .seed = 12345,
	};
	struct lm_vm_result res;
	struct lm_vm *vm;
	int rc;

	wl.ws_pages = (uint64_t)((double)(mem / 4096 / vcpus) * ws);
	if (!wl.ws_pages)
		wl.ws_pages = 1;
	rc = lm_vm_create(&cfg, &vm);
	if (!rc) {
		rc = lm_vm_run(vm, &wl, &res);
		if (!rc)
			rc = lm_vm_save(vm, dir, cli_progress_enabled() ?
					cli_progress : NULL, (void *)"save");
		lm_vm_destroy(vm);
	}
	if (rc)
		snprintf(why, len, "%s", util_last_error());
	return rc;
}

int cmd_bench_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "ws", required_argument, NULL, 'w' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "json-out", required_argument, NULL, 'J' },
		{ "cache", required_argument, NULL, 'c' },
		{ "no-kvm", no_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_restore_threads tc = { .threads = 0 };
	bool no_kvm = false, vcpus_given = false;
	uint64_t mem = 1ULL << 30;
	double ws = 0.10;
	unsigned vcpus = 1;
	const char *dir = NULL, *json_out = NULL;
	char tmpdir[] = "/var/tmp/lazymem-bench-restore.XXXXXX";
	char wsfile[4200], memimg[4200], why[512], cold_why[256] = "";
	char kvm_why[128];
	struct brun runs[2 * NR_MODES];
	int nruns = 0, c, status = 0;
	bool json = false, all_verified = true, can_cold, want_cold = true;
	unsigned long val;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_size(optarg, &mem) || !mem || mem % (2u << 20))
				return cli_usage_error("--mem '%s': expected a size, a multiple of 2M, like 1G", optarg);
			break;
		case 'w':
			if (vm_opt_percent(optarg, &ws))
				return cli_usage_error("--ws '%s': expected a percentage like 10%%", optarg);
			break;
		case 'v':
			if (vm_opt_uint(optarg, 1, LM_MAX_VCPUS, &val))
				return cli_usage_error("--vcpus '%s': expected 1..%d", optarg, LM_MAX_VCPUS);
			vcpus = (unsigned)val;
			vcpus_given = true;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'J':
			json_out = optarg;
			break;
		case 'c':
			if (strcmp(optarg, "both") && strcmp(optarg, "warm"))
				return cli_usage_error("--cache '%s': expected both or warm", optarg);
			want_cold = !strcmp(optarg, "both");
			break;
		case 'n':
			no_kvm = true;
			break;
		case 't':
			if (vm_opt_uint(optarg, 1, LM_SNAP_MAX_VCPUS, &val))
				return cli_usage_error("--threads '%s': expected 1..%d", optarg, LM_SNAP_MAX_VCPUS);
			tc.threads = (unsigned)val;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind < argc)
		return cli_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
	if (!dir) {
		if (!mkdtemp(tmpdir))
			return cli_fail("bench restore: mkdtemp %s: %s", tmpdir, strerror(errno));
		dir = tmpdir;
	}
	if (no_kvm || !kvm_usable(kvm_why, sizeof(kvm_why))) {
		tc = (struct bench_restore_threads){
			.mem = mem, .ws = ws, .dir = dir,
			/* as in `demo --no-kvm`: threads stand in for vCPUs */
			.threads = tc.threads ? tc.threads :
				   vcpus_given ? vcpus : 2,
			.json = json, .json_out = json_out,
			.want_cold = want_cold,
			.why = no_kvm ? "--no-kvm" : kvm_why,
		};
		status = bench_restore_threads(&tc);
		goto cleanup;
	}
	snprintf(wsfile, sizeof(wsfile), "%s/ws.lmws", dir);
	snprintf(memimg, sizeof(memimg), "%s/memory.img", dir);

	if (!json)
		fprintf(stderr, "saving a %llu MiB VM (%u vCPU%s) to %s ...\n",
			(unsigned long long)(mem >> 20), vcpus, vcpus == 1 ? "" : "s", dir);
	if (bench_save(dir, mem, vcpus, ws, why, sizeof(why))) {
		status = cli_fail("bench restore: save: %s", why);
		goto cleanup;
	}
	/* The working set, recorded by one unmeasured lazy restore. */
	{
		struct lm_restore_opts o = {
			.dir = dir, .mode = LM_RESTORE_LAZY,
			.delivery = LM_VM_EXIT, .record_ws = wsfile,
			.timeout_ms = 60000,
		};
		struct lm_restore_result r;

		if (lm_vm_restore(&o, &r) || !r.run.verified) {
			status = cli_fail("bench restore: recording the working set: %s",
					  util_last_error());
			goto cleanup;
		}
	}
	if (want_cold)
		can_cold = bench_drop_caches(cold_why, sizeof(cold_why)) == 0;
	else
		can_cold = !snprintf(cold_why, sizeof(cold_why), "not asked for (--cache warm)");
	for (int cache = 0; cache < 2; cache++) {
		bool cold = cache == 0;

		if (cold && !can_cold)
			continue;
		if (!cold)
			bench_file_warm(memimg);
		for (int m = 0; m < NR_MODES; m++) {
			struct brun *b = &runs[nruns++];
			struct lm_restore_opts o = {
				.dir = dir, .delivery = LM_VM_EXIT,
				.background = true, .timeout_ms = 60000,
			};

			memset(b, 0, sizeof(*b));
			b->mode = m;
			b->cold = cold;
			o.mode = m == M_EAGER ? LM_RESTORE_EAGER :
				 m == M_LIMIT ? LM_RESTORE_LIMIT : LM_RESTORE_LAZY;
			if (m == M_PREFETCH)
				o.prefetch = wsfile;
			if (cold)
				bench_drop_caches(why, sizeof(why));
			if (!json)
				fprintf(stderr, "  %s, page cache %s ...\n",
					mode_names[m], cold ? "cold" : "warm");
			b->rc = lm_vm_restore(&o, &b->r);
			if (b->rc)
				snprintf(b->err, sizeof(b->err), "%s", util_last_error());
			if (b->rc || !b->r.run.verified)
				all_verified = false;
		}
	}

	if (json || json_out) {
		json_object *root = json_object_new_object(),
			    *cfgj = json_object_new_object(),
			    *arr = json_object_new_array();

		json_object_object_add(root, "benchmark", json_object_new_string("restore"));
		json_object_object_add(cfgj, "mem", json_object_new_int64((int64_t)mem));
		json_object_object_add(cfgj, "ws", json_object_new_double(ws));
		json_object_object_add(cfgj, "guest", json_object_new_string("vm"));
		json_object_object_add(cfgj, "vcpus", json_object_new_int64(vcpus));
		json_object_object_add(cfgj, "delivery", json_object_new_string("exit"));
		json_object_object_add(cfgj, "background_fill", json_object_new_boolean(true));
		json_object_object_add(cfgj, "cold_cache", json_object_new_boolean(can_cold));
		if (!can_cold)
			json_object_object_add(cfgj, "cold_cache_why", json_object_new_string(cold_why));
		json_object_object_add(root, "config", cfgj);
		for (int i = 0; i < nruns; i++) {
			json_object *o = json_object_new_object();
			const struct brun *b = &runs[i];

			json_object_object_add(o, "mode", json_object_new_string(mode_names[b->mode]));
			json_object_object_add(o, "cache", json_object_new_string(b->cold ? "cold" : "warm"));
			json_object_object_add(o, "first_instruction_ms", json_object_new_double(b->r.first_instruction_ms));
			json_object_object_add(o, "seconds", json_object_new_double(b->r.seconds));
			json_object_object_add(o, "pages_faulted", json_object_new_int64((int64_t)b->r.pages_faulted));
			json_object_object_add(o, "verified", json_object_new_boolean(!b->rc && b->r.run.verified));
			if (b->rc)
				json_object_object_add(o, "error", json_object_new_string(b->err));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "results", arr);
		if (json)
			puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		if (json_out) {
			FILE *f = fopen(json_out, "w");

			if (!f || fprintf(f, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY)) < 0) {
				status = cli_fail("bench restore: %s: %s", json_out, strerror(errno));
			}
			if (f)
				fclose(f);
		}
		json_object_put(root);
	}
	if (!json) {
		printf("restore of a %llu MiB VM, %u vCPU%s, working set %.0f%% of RAM touched after resume (scattered, every word checked), delivery exit, lazy modes with background fill\n",
		       (unsigned long long)(mem >> 20), vcpus, vcpus == 1 ? "" : "s", ws * 100);
		if (!can_cold)
			printf("cold page cache: not measured: %s\n", cold_why);
		printf("%-9s %-5s %14s %10s %9s %10s %10s %8s\n", "mode", "cache",
		       "first-insn ms", "seconds", "x limit", "faulted", "prefetched",
		       "verified");
		for (int i = 0; i < nruns; i++) {
			const struct brun *b = &runs[i];
			double lim = runs[i - b->mode + M_LIMIT].r.seconds;

			if (b->rc) {
				printf("%-9s %-5s FAILED: %s\n", mode_names[b->mode],
				       b->cold ? "cold" : "warm", b->err);
				continue;
			}
			printf("%-9s %-5s %14.3f %10.3f %9.2f %10llu %10llu %8s\n",
			       mode_names[b->mode], b->cold ? "cold" : "warm",
			       b->r.first_instruction_ms, b->r.seconds,
			       lim > 0 ? b->r.seconds / lim : 0,
			       (unsigned long long)b->r.pages_faulted,
			       (unsigned long long)b->r.pages_prefetched,
			       b->r.run.verified ? "yes" : "NO");
		}
		printf("\ngoals (issue 4):\n");
		for (int base = 0; base < nruns; base += NR_MODES) {
			const struct brun *e = &runs[base + M_EAGER],
					  *p = &runs[base + M_PREFETCH],
					  *l = &runs[base + M_LIMIT];
			const char *cn = e->cold ? "cold" : "warm";
			double pl = l->r.seconds > 0 ? p->r.seconds / l->r.seconds : 0;
			double ep = p->r.seconds > 0 ? e->r.seconds / p->r.seconds : 0;
			double fi = p->r.first_instruction_ms;

			printf("  %s: prefetch / limit, completion            %6.2f  (goal <= 1.30: %s)\n",
			       cn, pl, pl > 0 && pl <= 1.3 ? "met" : "MISSED");
			printf("  %s: eager / prefetch, completion            %6.2f  (goal >= 3.00: %s)\n",
			       cn, ep, ep >= 3.0 ? "met" : "MISSED");
			printf("  %s: prefetch first instruction (ms)         %6.2f  (goal: a few ms: %s)\n",
			       cn, fi, fi <= 5.0 ? "met" : "MISSED");
		}
	}
cleanup:
	if (dir == tmpdir) {
		int e = util_remove_tree(tmpdir);

		if (e)
			fprintf(stderr, "lazymem: could not remove %s: %s\n",
				tmpdir, strerror(-e));
	}
	if (status)
		return status;
	return all_verified ? 0 : 1;
}
