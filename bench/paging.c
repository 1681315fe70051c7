/*
 * paging.c - `lazymem bench paging`: the guest demand-paging rate, the
 * field's headline measurement, per delivery and vCPU count.
 *
 * Every run boots a fresh VM (src/vmm) whose vCPUs each write one word to
 * every page of their own slice of never-touched guest RAM (the touch
 * workload), then verify every word of it in the guest; the VMM samples
 * pages itself too. Contenders, side by side in one run, all vCPU counts
 * interleaved so that drift on a shared machine hits them alike:
 *
 *   limit      the same guest with no userfaultfd at all (kernel fill);
 *   handler    classic blocking userfaultfd + handler threads, pinned on
 *              the vCPUs' CPUs (same-cpu) or on CPUs with no vCPU
 *              (other-cpu: only while vCPUs leave a CPU free);
 *   minor      memfd, blocking MINOR faults, write + UFFDIO_CONTINUE,
 *              handler threads same-cpu (so that against handler same-cpu
 *              only the install differs: unpinned, the scheduler puts the
 *              handler on the other CPU and it measures like other-cpu);
 *   exit       SIGBUS mode, each vCPU resolves its own fault on its exit;
 *   hybrid     exit for vCPUs plus the VMM's own blocking MINOR view.
 *
 * vCPU i is pinned to CPU i mod ncpus in every run, so the deliveries
 * differ only in how faults are resolved. With more vCPUs than CPUs they
 * time-share: that is the point of the high counts (does fault handling
 * collapse under contention?), and the output says so.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/lazymem.h>
#include "util/error.h"
#include "bench.h"
#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "vmm/vm.h"

#define MAX_COUNTS 16
#define MAX_REPEAT 9

struct contender {
	enum lm_vm_delivery delivery;
	enum lm_vm_placement placement;
};

static const struct contender contenders[] = {
	{ LM_VM_LIMIT, LM_PLACE_ANY },
	{ LM_VM_HANDLER, LM_PLACE_SAME_CPU },
	{ LM_VM_HANDLER, LM_PLACE_OTHER_CPU },
	{ LM_VM_MINOR, LM_PLACE_SAME_CPU },
	{ LM_VM_EXIT, LM_PLACE_ANY },
	{ LM_VM_HYBRID, LM_PLACE_ANY },
};
#define NCONT (sizeof(contenders) / sizeof(contenders[0]))

struct paging_config {
	unsigned vcpus[MAX_COUNTS];
	int ncounts;
	uint64_t mem_per_vcpu;
	uint64_t guest_page_size;
	bool backing_set;
	enum lm_backing backing;	/* as given, or anon (memfd for minor/hybrid) */
	bool want[LM_VM_DELIVERY_COUNT];
	int repeat;
	bool json;
	const char *json_out;	/* also write the JSON here */
	bool guest_cpl0;	/* emulated guest, as demand_paging_test */
	unsigned ncpus;
};

struct result {
	bool ran;		/* false: not applicable (e.g. no free CPU) */
	bool ok;		/* ran, no error, verified */
	uint64_t pages;
	double seconds;		/* median over repeats */
	double rate;
	double cpu_us;		/* process CPU per page, median */
	char err[200];
};

static enum lm_backing backing_for(const struct paging_config *c,
				   enum lm_vm_delivery d)
{
	if (c->backing_set)
		return c->backing;
	return d == LM_VM_MINOR || d == LM_VM_HYBRID ? LM_BACKING_MEMFD
						     : LM_BACKING_ANON;
}

static bool applicable(const struct paging_config *c,
		       const struct contender *k, unsigned nv)
{
	if (!c->want[k->delivery])
		return false;
	/* other-cpu needs a CPU no vCPU runs on */
	return !(k->placement == LM_PLACE_OTHER_CPU && nv >= c->ncpus);
}

static void run_one(const struct paging_config *c, const struct contender *k,
		    unsigned nv, struct result *r)
{
	struct lm_vm_config cfg = {
		.mem_size = c->mem_per_vcpu * nv,
		.nr_vcpus = nv,
		.backing = backing_for(c, k->delivery),
		.delivery = k->delivery,
		.placement = k->placement,
		.pin_vcpus = true,
		.guest_page_size = c->guest_page_size,
		.gen = 1,
		.guest_cpl0 = c->guest_cpl0,
	};
	struct lm_vm_workload wl = {
		.kind = LM_WL_TOUCH, .write = true, .timeout_ms = 60000,
	};
	double secs[MAX_REPEAT], cpu[MAX_REPEAT];
	struct lm_vm_result res;
	struct lm_vm *vm;
	int rc;

	r->ran = true;
	for (int i = 0; i < c->repeat; i++) {
		rc = lm_vm_create(&cfg, &vm);
		if (rc) {
			snprintf(r->err, sizeof(r->err), "%s", util_last_error());
			return;
		}
		rc = lm_vm_run(vm, &wl, &res);
		lm_vm_destroy(vm);
		if (rc) {
			snprintf(r->err, sizeof(r->err), "%s", util_last_error());
			return;
		}
		if (!res.verified) {
			snprintf(r->err, sizeof(r->err),
				 "verify failed: %llu guest mismatches (first at gpa 0x%llx), %llu VMM samples wrong",
				 (unsigned long long)res.mismatches,
				 (unsigned long long)res.first_bad_gpa,
				 (unsigned long long)res.host_mismatches);
			return;
		}
		secs[i] = res.seconds;
		cpu[i] = res.pages ? res.cpu_seconds * 1e6 / (double)res.pages : 0;
		r->pages = res.pages;
	}
	r->seconds = bench_median(secs, c->repeat);
	r->cpu_us = bench_median(cpu, c->repeat);
	r->rate = r->seconds > 0 ? (double)r->pages / r->seconds : 0;
	r->ok = true;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"Guest demand-paging rate per delivery and vCPU count (see docs/kvm.md).\n\n"
		"  --vcpus LIST          vCPU counts (default 1,2,4,8,16)\n"
		"  --mem-per-vcpu SIZE   guest RAM per vCPU (default 32M)\n"
		"  --delivery LIST       all, or some of limit,handler,minor,exit,hybrid\n"
		"                        (default all; limit is always measured)\n"
		"  --guest-pages SIZE    guest page tables: 4k or 2m (default 4k)\n"
		"  --backing KIND        anon, memfd or hugetlb for every delivery\n"
		"                        (default: anon, memfd where shared memory is needed)\n"
		"  --guest-cpl 0|3       guest privilege (default 3, native; 0 is emulated\n"
		"                        on kvm-pvm, like the kernel's demand_paging_test)\n"
		"  --repeat N            runs per point, the median is reported (default 3)\n"
		"  --json                the results as JSON on stdout\n"
		"  --json-out FILE       print the table, and write the JSON to FILE\n"
		"  -h, --help            this text\n",
		prog);
}

static int parse_deliveries(const char *s, struct paging_config *c)
{
	char buf[128], *save = NULL;

	if (!strcmp(s, "all")) {
		for (int d = 0; d < LM_VM_DELIVERY_COUNT; d++)
			c->want[d] = true;
		return 0;
	}
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	memset(c->want, 0, sizeof(c->want));
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		enum lm_vm_delivery d;

		if (lm_vm_delivery_parse(t, &d))
			return -EINVAL;
		c->want[d] = true;
	}
	c->want[LM_VM_LIMIT] = true;	/* every ratio needs it */
	return 0;
}

static int parse_args(int argc, char **argv, struct paging_config *c)
{
	static const struct option opts[] = {
		{ "vcpus", required_argument, NULL, 'v' },
		{ "mem-per-vcpu", required_argument, NULL, 'm' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "guest-pages", required_argument, NULL, 'g' },
		{ "backing", required_argument, NULL, 'b' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "guest-cpl", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "json-out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long val;
	int ch, n;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'v':
			n = cli_parse_uint_list(optarg, c->vcpus, MAX_COUNTS,
						LM_MAX_VCPUS);
			if (n <= 0)
				return cli_usage_error("--vcpus '%s': expected up to %d counts from 1 to %d, like 1,2,4",
						       optarg, MAX_COUNTS, LM_MAX_VCPUS);
			c->ncounts = n;
			break;
		case 'm':
			if (cli_parse_size(optarg, &c->mem_per_vcpu) ||
			    c->mem_per_vcpu < (2u << 20) ||
			    c->mem_per_vcpu % (2u << 20))
				return cli_usage_error("--mem-per-vcpu '%s': expected a multiple of 2M, like 32M or 256M",
						       optarg);
			break;
		case 'd':
			if (parse_deliveries(optarg, c))
				return cli_usage_error("--delivery '%s': expected all, or a list of limit, handler, minor, exit, hybrid",
						       optarg);
			break;
		case 'g':
			if (vm_opt_guest_pages(optarg, &c->guest_page_size))
				return cli_usage_error("--guest-pages '%s': expected 4k or 2m (1 GiB guest pages are refused on this host)",
						       optarg);
			break;
		case 'b':
			if (vm_opt_backing(optarg, &c->backing))
				return cli_usage_error("--backing '%s': expected anon, memfd or hugetlb",
						       optarg);
			c->backing_set = true;
			break;
		case 'r':
			if (vm_opt_uint(optarg, 1, MAX_REPEAT, &val))
				return cli_usage_error("--repeat '%s': expected 1 to %d",
						       optarg, MAX_REPEAT);
			c->repeat = (int)val;
			break;
		case 'j':
			c->json = true;
			break;
		case 'C':
			if (strcmp(optarg, "0") && strcmp(optarg, "3"))
				return cli_usage_error("--guest-cpl '%s': expected 0 or 3", optarg);
			c->guest_cpl0 = !strcmp(optarg, "0");
			break;
		case 'o':
			c->json_out = optarg;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return -1;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind < argc)
		return cli_usage_error("%s: unexpected argument '%s'", argv[0],
				       argv[optind]);
	if (c->backing_set && c->backing == LM_BACKING_ANON &&
	    (c->want[LM_VM_MINOR] || c->want[LM_VM_HYBRID]))
		return cli_usage_error("--backing anon: minor and hybrid need shared memory (leave --backing out, or pick --delivery without them)");
	return 0;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* Microseconds a fault costs over the limit's, from aggregate rates. */
static double added_us(double rate, double limit)
{
	return rate > 0 && limit > 0 ? 1e6 / rate - 1e6 / limit : 0;
}

static const struct result *find(const struct paging_config *c,
				 struct result res[][NCONT],
				 enum lm_vm_delivery d, enum lm_vm_placement p,
				 unsigned nv)
{
	for (int t = 0; t < c->ncounts; t++)
		for (size_t k = 0; k < NCONT; k++)
			if (c->vcpus[t] == nv && contenders[k].delivery == d &&
			    contenders[k].placement == p && res[t][k].ok)
				return &res[t][k];
	return NULL;
}

static void print_goal(const char *what, double v, bool lower_is_better,
		       double goal)
{
	bool met = lower_is_better ? v <= goal : v >= goal;

	printf("  %-58s %6.2f  (goal %s %.2f: %s)\n", what, v,
	       lower_is_better ? "<=" : ">=", goal, met ? "met" : "MISSED");
}

static void print_table(const struct paging_config *c,
			struct result res[][NCONT])
{
	printf("bench paging: touch-write, one access per page, %llu MiB per vCPU, %s guest pages, guest at CPL %u%s, %d host CPUs%s\n",
	       (unsigned long long)(c->mem_per_vcpu >> 20),
	       c->guest_page_size == 4096 ? "4 KiB" : "2 MiB",
	       c->guest_cpl0 ? 0 : 3, c->guest_cpl0 ? " (emulated)" : "",
	       c->ncpus,
	       c->repeat > 1 ? ", median of repeats" : "");
	printf("backing: %s; vCPU i pinned to CPU i mod %u%s\n",
	       c->backing_set ? lm_backing_name(c->backing)
			      : "anon (minor, hybrid: memfd)",
	       c->ncpus, c->vcpus[c->ncounts - 1] > c->ncpus ?
	       "; counts above the CPU count time-share the CPUs" : "");
	printf("\n%-8s %-10s %5s %9s %8s %10s %7s %9s %9s %8s %s\n", "delivery",
	       "placement", "vcpus", "pages", "seconds", "pages/s", "x limit",
	       "x handler", "+us/fault", "cpu-us/pg", "verified");
	for (int t = 0; t < c->ncounts; t++) {
		unsigned nv = c->vcpus[t];
		const struct result *lim = find(c, res, LM_VM_LIMIT, LM_PLACE_ANY, nv);
		const struct result *h = find(c, res, LM_VM_HANDLER,
					      LM_PLACE_SAME_CPU, nv);

		for (size_t k = 0; k < NCONT; k++) {
			const struct result *r = &res[t][k];
			const struct contender *ct = &contenders[k];

			if (!r->ran)
				continue;
			if (!r->ok) {
				printf("%-8s %-10s %5u  FAILED: %s\n",
				       lm_vm_delivery_name(ct->delivery),
				       ct->placement == LM_PLACE_ANY ? "-" :
				       lm_vm_placement_name(ct->placement), nv, r->err);
				continue;
			}
			printf("%-8s %-10s %5u %9llu %8.3f %10.0f %7.2f %9.2f %9.1f %9.1f %s\n",
			       lm_vm_delivery_name(ct->delivery),
			       ct->placement == LM_PLACE_ANY ? "-" :
			       lm_vm_placement_name(ct->placement), nv,
			       (unsigned long long)r->pages, r->seconds, r->rate,
			       lim ? ratio(r->rate, lim->rate) : 0,
			       h ? ratio(r->rate, h->rate) : 0,
			       lim ? added_us(r->rate, lim->rate) : 0,
			       r->cpu_us, "yes");
		}
	}
	printf("\nx handler: against handler same-cpu at the same vCPU count. +us/fault: 1/rate - 1/limit.\n"
	       "cpu-us/pg: CPU time of the whole process (vCPUs and handler threads) per page over\n"
	       "the measured window, which other load on the machine does not inflate.\n");

	const struct result *l1 = find(c, res, LM_VM_LIMIT, LM_PLACE_ANY, 1);
	const struct result *e1 = find(c, res, LM_VM_EXIT, LM_PLACE_ANY, 1);
	const struct result *ho1 = find(c, res, LM_VM_HANDLER, LM_PLACE_OTHER_CPU, 1);

	printf("\ngoals (issue 3):\n");
	if (l1 && e1)
		print_goal("exit / limit, 1 vCPU", ratio(e1->rate, l1->rate),
			   false, 0.8);
	if (l1 && e1 && ho1)
		print_goal("exit added us / handler other-cpu added us, 1 vCPU",
			   ratio(added_us(e1->rate, l1->rate),
				 added_us(ho1->rate, l1->rate)), true, 0.25);
	for (int d = LM_VM_HANDLER; d < LM_VM_DELIVERY_COUNT; d++) {
		enum lm_vm_placement p = d == LM_VM_HANDLER || d == LM_VM_MINOR ?
					 LM_PLACE_SAME_CPU : LM_PLACE_ANY;
		const struct result *r2 = find(c, res, (enum lm_vm_delivery)d, p, 2);
		const struct result *r16 = find(c, res, (enum lm_vm_delivery)d, p, 16);
		char what[80];

		if (!r2 || !r16)
			continue;
		snprintf(what, sizeof(what), "%s%s rate at 16 vCPUs / at 2 vCPUs",
			 lm_vm_delivery_name((enum lm_vm_delivery)d),
			 p == LM_PLACE_SAME_CPU ? " same-cpu" : "");
		if (d == LM_VM_EXIT || d == LM_VM_HYBRID)
			print_goal(what, ratio(r16->rate, r2->rate), false, 0.8);
		else
			printf("  %-58s %6.2f  (expected to collapse; no goal)\n",
			       what, ratio(r16->rate, r2->rate));
	}
}

static void print_json(FILE *f, const struct paging_config *c,
		       struct result res[][NCONT])
{
	json_object *root = json_object_new_object();
	json_object *cfg = json_object_new_object();
	json_object *arr = json_object_new_array();
	json_object *vl = json_object_new_array();

	for (int t = 0; t < c->ncounts; t++)
		json_object_array_add(vl, json_object_new_int((int)c->vcpus[t]));
	json_object_object_add(root, "benchmark", json_object_new_string("paging"));
	json_object_object_add(cfg, "vcpus", vl);
	json_object_object_add(cfg, "mem_per_vcpu",
			       json_object_new_int64((int64_t)c->mem_per_vcpu));
	json_object_object_add(cfg, "guest_page_size",
			       json_object_new_int64((int64_t)c->guest_page_size));
	json_object_object_add(cfg, "backing", json_object_new_string(
		c->backing_set ? lm_backing_name(c->backing) : "anon"));
	json_object_object_add(cfg, "backing_minor_hybrid", json_object_new_string(
		lm_backing_name(backing_for(c, LM_VM_MINOR))));
	json_object_object_add(cfg, "workload", json_object_new_string("touch-write"));
	json_object_object_add(cfg, "guest_cpl", json_object_new_int(c->guest_cpl0 ? 0 : 3));
	json_object_object_add(cfg, "source", json_object_new_string("pattern"));
	json_object_object_add(cfg, "host_cpus", json_object_new_int((int)c->ncpus));
	json_object_object_add(cfg, "vcpus_pinned", json_object_new_boolean(true));
	json_object_object_add(cfg, "repeat", json_object_new_int(c->repeat));
	json_object_object_add(root, "config", cfg);
	for (int t = 0; t < c->ncounts; t++) {
		for (size_t k = 0; k < NCONT; k++) {
			const struct result *r = &res[t][k];
			const struct contender *ct = &contenders[k];
			json_object *o;

			if (!r->ran)
				continue;
			o = json_object_new_object();
			json_object_object_add(o, "delivery", json_object_new_string(
				lm_vm_delivery_name(ct->delivery)));
			json_object_object_add(o, "placement",
				ct->placement == LM_PLACE_ANY ? NULL :
				json_object_new_string(lm_vm_placement_name(ct->placement)));
			json_object_object_add(o, "vcpus", json_object_new_int((int)c->vcpus[t]));
			json_object_object_add(o, "pages", json_object_new_int64((int64_t)r->pages));
			json_object_object_add(o, "seconds", json_object_new_double(r->seconds));
			json_object_object_add(o, "pages_per_sec", json_object_new_double(r->rate));
			json_object_object_add(o, "verified", json_object_new_boolean(r->ok));
			json_object_array_add(arr, o);
		}
	}
	json_object_object_add(root, "results", arr);
	fprintf(f, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

int cmd_bench_paging(int argc, char **argv)
{
	struct paging_config c = {
		.vcpus = { 1, 2, 4, 8, 16 }, .ncounts = 5,
		.mem_per_vcpu = 32ULL << 20, .guest_page_size = 4096,
		.repeat = 3,
	};
	struct result (*res)[NCONT];
	bool progress = cli_progress_enabled(), all_ok = true;
	int rc;

	for (int d = 0; d < LM_VM_DELIVERY_COUNT; d++)
		c.want[d] = true;
	rc = parse_args(argc, argv, &c);
	if (rc)
		return rc < 0 ? 0 : rc;
	c.ncpus = (unsigned)bench_ncpus();
	res = calloc((size_t)c.ncounts, sizeof(*res));
	if (!res)
		return cli_fail("bench paging: out of memory");

	for (int t = 0; t < c.ncounts; t++) {
		for (size_t k = 0; k < NCONT; k++) {
			if (!applicable(&c, &contenders[k], c.vcpus[t]))
				continue;
			if (progress)
				fprintf(stderr, "\r\033[Kbench paging: %s%s%s, %u vCPUs...",
					lm_vm_delivery_name(contenders[k].delivery),
					contenders[k].placement != LM_PLACE_ANY ? " " : "",
					contenders[k].placement != LM_PLACE_ANY ?
					lm_vm_placement_name(contenders[k].placement) : "",
					c.vcpus[t]);
			run_one(&c, &contenders[k], c.vcpus[t], &res[t][k]);
			if (!res[t][k].ok) {
				all_ok = false;
				fprintf(stderr, "%slazymem: bench paging: %s, %u vCPUs: %s\n",
					progress ? "\r\033[K" : "",
					lm_vm_delivery_name(contenders[k].delivery),
					c.vcpus[t], res[t][k].err);
			}
		}
	}
	if (progress)
		fputs("\r\033[K", stderr);
	if (c.json)
		print_json(stdout, &c, res);
	else
		print_table(&c, res);
	if (c.json_out) {
		FILE *f = fopen(c.json_out, "w");

		if (!f) {
			free(res);
			return cli_fail("bench paging: --json-out '%s': %s",
					c.json_out, strerror(errno));
		}
		print_json(f, &c, res);
		fclose(f);
	}
	free(res);
	return all_ok ? 0 : 1;
}
