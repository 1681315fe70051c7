/*
 * cmd_vm.c - "lazymem vm run": boot a guest workload on /dev/kvm with its
 * RAM filled by one delivery, and print what ran, how long it took, which
 * way the faults went, and whether the guest's content checked out.
 *
 * Parsing and printing only; the VMM is src/vmm (vm.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "util/clock.h"
#include "util/error.h"
#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "vmm/vm.h"
#include "vmsnap/vmsnap.h"
#include "reclaim/pstore.h"
#include "reclaim/vm_reclaim.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"Boot a guest workload whose RAM is filled lazily, and report.\n\n"
		"  --mem SIZE           guest RAM (default 256M)\n"
		"  --vcpus N            vCPUs, 1..%d (default 1)\n"
		"  --workload NAME      touch, random, counter, dirty, verify, lockinc,\n"
		"                       stos, fetch, ping, spin, restore, migrate\n"
		"                       (default touch; migrate dirties its --ws hot\n"
		"                       set for 200 ms, then checks every word: what\n"
		"                       `lazymem migrate send` runs)\n"
		"  --access read|write  touch and random: access kind (default write)\n"
		"  --delivery NAME      limit, handler, minor, exit, hybrid (default exit)\n"
		"  --backing KIND       anon, memfd, hugetlb (default anon; memfd for\n"
		"                       minor and hybrid)\n"
		"  --guest-pages SIZE   guest page tables: 4k or 2m (default 4k)\n"
		"  --placement WHERE    handler threads: any, same-cpu, other-cpu\n"
		"                       (default any; same/other pin the vCPUs too)\n"
		"  --pin                pin vCPU i to CPU i mod ncpus\n"
		"  --iterations N       dirty passes, lockinc rounds, ping calls (default 1)\n"
		"  --stos-len SIZE      stos: bytes per vCPU (default 64k)\n"
		"  --gen N              source content generation, >= 1 (default 1)\n"
		"  --guest-cpl 0|3      guest privilege level (default 3: native here; 0 is\n"
		"                       emulated on kvm-pvm, as demand_paging_test runs)\n"
		"  --eager-commit       experiment: install a page as soon as its emulated\n"
		"                       access is served (no immediate_exit completion)\n"
		"  --emulate-faults     resolve faults through KVM's emulator (MMIO exits\n"
		"                       completed with immediate_exit), not the decoder\n"
		"  --fc-socket PATH     hand guest RAM to a Firecracker-style page-fault\n"
		"                       handler (lazymem fc-handler) listening at PATH,\n"
		"                       exactly as Firecracker does; implies --delivery\n"
		"                       handler and a memory file holding the pattern\n"
		"  --background         stream every missing page in while the guest runs\n"
		"  --fault-around N     each demand fault also installs the missing pages\n"
		"                       after it, N in all, 1..64 (default off)\n"
		"  --ws N%%|SIZE         restore workload: working set touched after the\n"
		"                       save point, of all RAM (default 10%%)\n"
		"  --reclaim STORE      evict cold RAM into a page store while the guest\n"
		"                       runs: memory (compressed), file, or tiered (pages\n"
		"                       that compress to over 3/4 of a page, or do not fit,\n"
		"                       go to the file) (delivery handler or exit; anon\n"
		"                       tracks writes with async write-protect)\n"
		"  --reclaim-codec C    memory and tiered stores: lz4 (default), zstd or\n"
		"                       zstd:LEVEL (default level 1)\n"
		"  --reclaim-target X   memory to keep out: N%% of RAM or a size (default 40%%)\n"
		"  --max-refault-rate R pages/s per GiB before the age threshold rises\n"
		"                       (default 0: no bound)\n"
		"  --reclaim-dir DIR    where the file (or tiered) store's file goes\n"
		"                       (default /var/tmp)\n"
		"  --save DIR           stop every vCPU at the workload's save point and\n"
		"                       save the VM to DIR (implies --workload restore;\n"
		"                       default delivery limit, backing memfd)\n"
		"  --timeout SECONDS    fail after this long without progress (default 60)\n"
		"  --json               one JSON object on stdout\n"
		"  -h, --help           this text\n",
		prog, LM_MAX_VCPUS);
}

static void print_text(const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl,
		       const struct lm_vm_result *r)
{
	const struct lm_vm_exits *e = &r->exits;

	printf("ran:      workload %s%s, delivery %s%s%s, backing %s, %u vCPU%s, %llu MiB RAM, %s guest pages, %llu KiB host pages, CPL %u\n",
	       lm_workload_name(wl->kind),
	       wl->kind == LM_WL_TOUCH || wl->kind == LM_WL_RANDOM ||
	       wl->kind == LM_WL_COUNTER ? (wl->write ? " (write)" : " (read)") : "",
	       lm_vm_delivery_name(cfg->delivery),
	       cfg->placement != LM_PLACE_ANY ? ", handlers " : "",
	       cfg->placement != LM_PLACE_ANY ? lm_vm_placement_name(cfg->placement) : "",
	       lm_backing_name(cfg->backing), cfg->nr_vcpus,
	       cfg->nr_vcpus == 1 ? "" : "s",
	       (unsigned long long)(cfg->mem_size >> 20),
	       cfg->guest_page_size == 4096 ? "4 KiB" : "2 MiB",
	       (unsigned long long)(lm_backing_page_size(cfg->backing) >> 10),
	       cfg->guest_cpl0 ? 0 : 3);
	printf("time:     %llu pages in %.3f s = %.0f pages/s (whole run %.3f s); CPU %.3f s = %.1f us per page\n",
	       (unsigned long long)r->pages, r->seconds,
	       r->seconds > 0 ? (double)r->pages / r->seconds : 0.0,
	       r->total_seconds, r->cpu_seconds,
	       r->pages ? r->cpu_seconds * 1e6 / (double)r->pages : 0.0);
	if (wl->kind == LM_WL_COUNTER)
		printf("counter:  vCPU 0 counted %llu in %.3f s = %.0f/s while the others faulted\n",
		       (unsigned long long)r->counter, r->counter_seconds,
		       r->counter_seconds > 0 ? (double)r->counter / r->counter_seconds : 0.0);
	printf("exits:    efault %llu (decoded %llu, raced %llu, emulated %llu), mmio-in-ram %llu (fetched %llu, already present %llu, extra %llu, locked-rmw %llu), memory-fault %llu, fetch %llu, guest calls %llu, spurious %llu\n",
	       (unsigned long long)e->efault,
	       (unsigned long long)(e->efault - e->efault_emulated),
	       (unsigned long long)e->efault_raced,
	       (unsigned long long)e->efault_emulated,
	       (unsigned long long)e->mmio_fault, (unsigned long long)e->mmio_owned,
	       (unsigned long long)e->mmio_present, (unsigned long long)e->mmio_extra,
	       (unsigned long long)e->locked_rmw, (unsigned long long)e->memory_fault,
	       (unsigned long long)e->fetch_fault, (unsigned long long)e->io,
	       (unsigned long long)e->spurious);
	if (r->have_stats) {
		const struct lm_stats *s = &r->stats;

		printf("faults:   ");
		for (int o = 0; o < LM_ORIGIN_COUNT; o++)
			printf("%s %llu, ", lm_origin_name((enum lm_fault_origin)o),
			       (unsigned long long)s->faults[o]);
		printf("waited %llu, present %llu; pages installed on demand %llu (ahead of a fault %llu, zero %llu, failed %llu), in the background %llu\n",
		       (unsigned long long)s->faults_waited,
		       (unsigned long long)s->faults_present,
		       (unsigned long long)s->pages_demand,
		       (unsigned long long)s->pages_around,
		       (unsigned long long)s->pages_zero,
		       (unsigned long long)s->pages_failed,
		       (unsigned long long)s->pages_background);
		printf("latency:  p50 %.1f us, p99 %.1f us, max %.1f us over %llu demand faults\n",
		       (double)s->lat_p50_ns / 1e3, (double)s->lat_p99_ns / 1e3,
		       (double)s->lat_max_ns / 1e3,
		       (unsigned long long)s->lat_count);
	} else if (cfg->fc_socket) {
		printf("faults:   served by the page-fault handler at %s (its "
		       "report has the figures)\n", cfg->fc_socket);
	} else {
		printf("faults:   no userfaultfd (the kernel filled RAM)\n");
	}
	if (r->verified)
		printf("verify:   ok (%llu words checked by the guest, %llu pages sampled by the VMM)\n",
		       (unsigned long long)r->words_checked,
		       (unsigned long long)r->host_checked);
	else
		printf("verify:   FAILED: %llu guest mismatches (first at gpa 0x%llx: expected 0x%llx, got 0x%llx), %llu of %llu VMM samples wrong\n",
		       (unsigned long long)r->mismatches,
		       (unsigned long long)r->first_bad_gpa,
		       (unsigned long long)r->first_expected,
		       (unsigned long long)r->first_got,
		       (unsigned long long)r->host_mismatches,
		       (unsigned long long)r->host_checked);
}

static void print_json(const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl,
		       const struct lm_vm_result *r)
{
	json_object *o = json_object_new_object(), *ex = json_object_new_object();
	const struct lm_vm_exits *e = &r->exits;

#define ADD(obj, k, v) json_object_object_add(obj, k, v)
#define I64(x) json_object_new_int64((int64_t)(x))
	ADD(o, "workload", json_object_new_string(lm_workload_name(wl->kind)));
	ADD(o, "write", json_object_new_boolean(wl->write));
	ADD(o, "delivery", json_object_new_string(lm_vm_delivery_name(cfg->delivery)));
	ADD(o, "placement", cfg->placement == LM_PLACE_ANY ? NULL :
	    json_object_new_string(lm_vm_placement_name(cfg->placement)));
	ADD(o, "backing", json_object_new_string(lm_backing_name(cfg->backing)));
	ADD(o, "vcpus", I64(cfg->nr_vcpus));
	ADD(o, "mem", I64(cfg->mem_size));
	ADD(o, "guest_page_size", I64(cfg->guest_page_size));
	ADD(o, "host_page_size", I64(lm_backing_page_size(cfg->backing)));
	ADD(o, "guest_cpl", I64(cfg->guest_cpl0 ? 0 : 3));
	ADD(o, "pages", I64(r->pages));
	ADD(o, "seconds", json_object_new_double(r->seconds));
	ADD(o, "pages_per_sec", json_object_new_double(r->seconds > 0 ? (double)r->pages / r->seconds : 0));
	ADD(o, "total_seconds", json_object_new_double(r->total_seconds));
	ADD(o, "cpu_seconds", json_object_new_double(r->cpu_seconds));
	if (wl->kind == LM_WL_COUNTER) {
		ADD(o, "counter", I64(r->counter));
		ADD(o, "counter_seconds", json_object_new_double(r->counter_seconds));
	}
	ADD(ex, "efault", I64(e->efault));
	ADD(ex, "efault_emulated", I64(e->efault_emulated));
	ADD(ex, "efault_raced", I64(e->efault_raced));
	ADD(ex, "mmio_in_ram", I64(e->mmio_fault));
	ADD(ex, "mmio_fetched", I64(e->mmio_owned));
	ADD(ex, "mmio_present", I64(e->mmio_present));
	ADD(ex, "mmio_extra", I64(e->mmio_extra));
	ADD(ex, "locked_rmw", I64(e->locked_rmw));
	ADD(ex, "memory_fault", I64(e->memory_fault));
	ADD(ex, "fetch", I64(e->fetch_fault));
	ADD(ex, "guest_calls", I64(e->io));
	ADD(ex, "spurious", I64(e->spurious));
	ADD(o, "exits", ex);
	if (r->have_stats) {
		json_object *f = json_object_new_object();

		for (int k = 0; k < LM_ORIGIN_COUNT; k++)
			ADD(f, lm_origin_name((enum lm_fault_origin)k), I64(r->stats.faults[k]));
		ADD(f, "waited", I64(r->stats.faults_waited));
		ADD(f, "present", I64(r->stats.faults_present));
		ADD(f, "pages_installed", I64(r->stats.pages_demand));
		ADD(f, "pages_around", I64(r->stats.pages_around));
		ADD(f, "pages_background", I64(r->stats.pages_background));
		ADD(f, "lat_p50_ns", I64(r->stats.lat_p50_ns));
		ADD(f, "lat_p99_ns", I64(r->stats.lat_p99_ns));
		ADD(o, "faults", f);
	}
	ADD(o, "words_checked", I64(r->words_checked));
	ADD(o, "mismatches", I64(r->mismatches));
	ADD(o, "host_checked", I64(r->host_checked));
	ADD(o, "host_mismatches", I64(r->host_mismatches));
	ADD(o, "verified", json_object_new_boolean(r->verified));
#undef ADD
#undef I64
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

/* vm run --reclaim: the store, the policy over it, and their options. */
struct vm_reclaim_opts {
	const char *store, *target, *dir, *codec_arg;
	struct lm_pstore_memory_config mem;	/* codec, level */
	double max_rate;
	char path[512];
	struct lm_page_store *s;
	struct lm_reclaimer *rc;
};

static int reclaim_option(int c, const char *arg, struct vm_reclaim_opts *o)
{
	char *end;

	switch (c) {
	case 'R':
		if (strcmp(arg, "memory") && strcmp(arg, "file") &&
		    strcmp(arg, "tiered"))
			return cli_usage_error("--reclaim '%s': expected memory, file or tiered", arg);
		o->store = arg;
		return 0;
	case 'K':
		o->codec_arg = arg;
		if (lm_pstore_parse_codec("--reclaim-codec", arg, &o->mem.codec,
					  &o->mem.level))
			return cli_usage_error("%s", util_last_error());
		return 0;
	case 'X':
		o->target = arg;
		return 0;
	case 'Y':
		o->max_rate = strtod(arg, &end);
		if (*end || o->max_rate < 0)
			return cli_usage_error("--max-refault-rate '%s': expected pages/s per GiB, 0 or more", arg);
		return 0;
	default:
		o->dir = arg;
		return 0;
	}
}

/* Store and policy before the VM (the region is created with the store). */
static int reclaim_prepare(struct vm_reclaim_opts *o, struct lm_vm_config *cfg)
{
	struct lm_reclaim_config rc = { .max_refault_rate = o->max_rate };
	uint64_t ps = lm_backing_page_size(cfg->backing);
	int err = lm_reclaim_parse_target("--reclaim-target", o->target,
					  cfg->mem_size, &rc.target_bytes);

	if (err)
		return err;
	if (!strcmp(o->store, "memory")) {
		err = lm_pstore_memory_create_with(cfg->mem_size, ps, &o->mem,
						   &o->s);
	} else {
		snprintf(o->path, sizeof(o->path), "%s/lazymem-vm-%d.pages",
			 o->dir, (int)getpid());
		err = !strcmp(o->store, "file")
			? lm_pstore_file_create(o->path, cfg->mem_size, ps,
						&o->s)
			: lm_pstore_tiered_create(o->path, cfg->mem_size, ps,
						  &o->mem, &o->s);
	}
	if (!err)
		err = lm_reclaimer_create(o->s, cfg->mem_size, ps, &rc, &o->rc);
	if (err)
		return err;
	cfg->store = lm_reclaimer_store(o->rc);
	cfg->write_protect = cfg->backing == LM_BACKING_ANON ? LM_WP_ASYNC
							     : LM_WP_NONE;
	return 0;
}

static void reclaim_report(struct vm_reclaim_opts *o, bool json)
{
	struct lm_reclaimer_stats st;
	struct lm_pstore_usage u;

	lm_reclaimer_stats(o->rc, &st);
	lm_pstore_usage(o->s, &u);
	fprintf(json ? stderr : stdout,
		"reclaim:  %s store: %llu rounds, %llu pages evicted, %llu "
		"refaulted, %llu out now, age threshold %u, store %llu data "
		"bytes in %llu bytes of memory, %llu on disk (%llu pages), "
		"%llu refused\n",
		o->s->desc, (unsigned long long)st.rounds,
		(unsigned long long)st.evicted,
		(unsigned long long)st.refaulted,
		(unsigned long long)st.out_pages, st.threshold,
		(unsigned long long)u.data_bytes,
		(unsigned long long)u.mem_bytes,
		(unsigned long long)u.disk_bytes,
		(unsigned long long)u.spilled_pages,
		(unsigned long long)u.put_failed);
}

static void reclaim_done(struct vm_reclaim_opts *o)
{
	lm_reclaimer_destroy(o->rc);
	lm_page_store_destroy(o->s);
	if (o->path[0])
		unlink(o->path);
	o->rc = NULL;
	o->s = NULL;
}

int cmd_vm_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "workload", required_argument, NULL, 'w' },
		{ "access", required_argument, NULL, 'a' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "backing", required_argument, NULL, 'b' },
		{ "guest-pages", required_argument, NULL, 'g' },
		{ "placement", required_argument, NULL, 'p' },
		{ "pin", no_argument, NULL, 'P' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "stos-len", required_argument, NULL, 's' },
		{ "gen", required_argument, NULL, 'G' },
		{ "timeout", required_argument, NULL, 't' },
		{ "emulate-faults", no_argument, NULL, 'E' },
		{ "guest-cpl", required_argument, NULL, 'C' },
		{ "eager-commit", no_argument, NULL, 'Q' },
		{ "fault-around", required_argument, NULL, 'F' },
		{ "background", no_argument, NULL, 'B' },
		{ "fc-socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "save", required_argument, NULL, 'V' },
		{ "ws", required_argument, NULL, 'W' },
		{ "reclaim", required_argument, NULL, 'R' },
		{ "reclaim-target", required_argument, NULL, 'X' },
		{ "max-refault-rate", required_argument, NULL, 'Y' },
		{ "reclaim-dir", required_argument, NULL, 'Z' },
		{ "reclaim-codec", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_reclaim_opts ro = { .target = "40%", .dir = "/var/tmp" };
	const char *save_dir = NULL, *ws_arg = "10%";
	bool delivery_set = false, workload_set = false;
	struct lm_vm_config cfg = {
		.mem_size = 256ULL << 20, .nr_vcpus = 1,
		.backing = LM_BACKING_ANON, .delivery = LM_VM_EXIT,
		.guest_page_size = 4096, .gen = 1,
	};
	struct lm_vm_workload wl = {
		.kind = LM_WL_TOUCH, .write = true, .iterations = 1,
		.stos_len = 64 << 10, .timeout_ms = 60000, .seed = 12345,
	};
	struct lm_vm_result res;
	struct lm_vm *vm;
	bool json = false, backing_set = false;
	unsigned long val;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_size(optarg, &cfg.mem_size) || !cfg.mem_size)
				return cli_usage_error("--mem '%s': expected a size like 256M or 1G", optarg);
			break;
		case 'v':
			if (vm_opt_uint(optarg, 1, LM_MAX_VCPUS, &val))
				return cli_usage_error("--vcpus '%s': expected a number from 1 to %d", optarg, LM_MAX_VCPUS);
			cfg.nr_vcpus = (unsigned)val;
			break;
		case 'w':
			if (lm_workload_parse(optarg, &wl.kind))
				return cli_usage_error("--workload '%s': expected touch, random, counter, dirty, verify, lockinc, stos, fetch, ping, spin, restore or migrate", optarg);
			workload_set = true;
			break;
		case 'a':
			if (strcmp(optarg, "read") && strcmp(optarg, "write"))
				return cli_usage_error("--access '%s': expected read or write", optarg);
			wl.write = !strcmp(optarg, "write");
			break;
		case 'd':
			if (lm_vm_delivery_parse(optarg, &cfg.delivery))
				return cli_usage_error("--delivery '%s': expected limit, handler, minor, exit or hybrid", optarg);
			delivery_set = true;
			break;
		case 'b':
			if (vm_opt_backing(optarg, &cfg.backing))
				return cli_usage_error("--backing '%s': expected anon, memfd or hugetlb", optarg);
			backing_set = true;
			break;
		case 'g':
			if (vm_opt_guest_pages(optarg, &cfg.guest_page_size))
				return cli_usage_error("--guest-pages '%s': expected 4k or 2m (1 GiB guest pages are refused on this host)", optarg);
			break;
		case 'p':
			if (vm_opt_placement(optarg, &cfg.placement))
				return cli_usage_error("--placement '%s': expected any, same-cpu or other-cpu", optarg);
			break;
		case 'P':
			cfg.pin_vcpus = true;
			break;
		case 'i':
			if (vm_opt_uint(optarg, 1, 1000000, &val))
				return cli_usage_error("--iterations '%s': expected a number from 1 to 1000000", optarg);
			wl.iterations = val;
			break;
		case 's':
			if (cli_parse_size(optarg, &wl.stos_len) || wl.stos_len < 8)
				return cli_usage_error("--stos-len '%s': expected a size of at least 8 bytes", optarg);
			break;
		case 'G':
			if (vm_opt_uint(optarg, 1, 1u << 30, &val))
				return cli_usage_error("--gen '%s': expected a number >= 1", optarg);
			cfg.gen = val;
			break;
		case 't':
			if (vm_opt_uint(optarg, 1, 86400, &val))
				return cli_usage_error("--timeout '%s': expected seconds from 1 to 86400", optarg);
			wl.timeout_ms = (unsigned)val * 1000;
			break;
		case 'j':
			json = true;
			break;
		case 'E':
			cfg.emulate_faults = true;
			break;
		case 'Q':
			cfg.eager_commit = true;
			break;
		case 'C':
			if (strcmp(optarg, "0") && strcmp(optarg, "3"))
				return cli_usage_error("--guest-cpl '%s': expected 0 or 3", optarg);
			cfg.guest_cpl0 = !strcmp(optarg, "0");
			break;
		case 'B':
			cfg.background = true;
			break;
		case 'S':
			cfg.fc_socket = optarg;
			cfg.delivery = LM_VM_HANDLER;
			break;
		case 'F':
			if (vm_opt_uint(optarg, 1, 64, &val))
				return cli_usage_error("--fault-around '%s': expected pages from 1 to 64", optarg);
			cfg.fault_around = (unsigned)val;
			break;
		case 'V':
			save_dir = optarg;
			break;
		case 'W':
			ws_arg = optarg;
			break;
		case 'R':
		case 'X':
		case 'Y':
		case 'Z':
		case 'K':
			if (reclaim_option(c, optarg, &ro))
				return 2;
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
	if (save_dir) {
		if (workload_set && wl.kind != LM_WL_RESTORE)
			return cli_usage_error("--save: workload %s has no save point (use --workload restore)",
					       lm_workload_name(wl.kind));
		wl.kind = LM_WL_RESTORE;
		cfg.save_point = true;
		if (!delivery_set)
			cfg.delivery = LM_VM_LIMIT;
		if (!backing_set)
			cfg.backing = LM_BACKING_MEMFD;
	}
	if (wl.kind == LM_WL_MIGRATE)
		wl.stop_after_ms = 200;	/* it dirties until stopped */
	if (wl.kind == LM_WL_RESTORE || wl.kind == LM_WL_MIGRATE) {
		uint64_t pages = cfg.mem_size / lm_backing_page_size(cfg.backing) / cfg.nr_vcpus;

		if (vm_opt_ws(ws_arg, cfg.mem_size, lm_backing_page_size(cfg.backing),
			      cfg.nr_vcpus, &wl.ws_pages))
			return cli_usage_error("--ws '%s': expected a percentage like 10%% or a size like 64M", ws_arg);
		if (wl.ws_pages > pages)
			wl.ws_pages = pages;
	}
	if (!backing_set && (cfg.delivery == LM_VM_MINOR || cfg.delivery == LM_VM_HYBRID))
		cfg.backing = LM_BACKING_MEMFD;
	if (cfg.placement != LM_PLACE_ANY) {
		if (cfg.delivery != LM_VM_HANDLER && cfg.delivery != LM_VM_MINOR)
			return cli_usage_error("--placement applies to deliveries with handler threads (handler, minor), not %s",
					       lm_vm_delivery_name(cfg.delivery));
		cfg.pin_vcpus = true;
	}
	if (wl.kind == LM_WL_COUNTER && cfg.nr_vcpus < 2)
		return cli_usage_error("--workload counter needs --vcpus 2 or more (vCPU 0 counts while the others touch)");
	cfg.code_source = wl.kind == LM_WL_FETCH;
	if (cfg.background && cfg.delivery == LM_VM_LIMIT)
		return cli_usage_error("--background needs a delivery with a source (limit has no userfaultfd)");
	if (cfg.code_source && cfg.delivery == LM_VM_LIMIT)
		return cli_usage_error("--workload fetch needs a delivery with a source (limit RAM is zero-filled, there is no code in it)");

	if (ro.codec_arg && (!ro.store || !strcmp(ro.store, "file")))
		return cli_usage_error("--reclaim-codec '%s': needs --reclaim memory or tiered (the file store does not compress)", ro.codec_arg);
	if (ro.store) {
		uint64_t t;

		if (lm_reclaim_parse_target("--reclaim-target", ro.target,
					    cfg.mem_size, &t))
			return cli_usage_error("%s", util_last_error());
	}
	if (ro.store && reclaim_prepare(&ro, &cfg))
		return cli_fail("vm run --reclaim: %s", util_last_error());
	rc = lm_vm_create(&cfg, &vm);
	if (rc) {
		reclaim_done(&ro);
		return cli_fail("vm: %s", util_last_error());
	}
	if (ro.rc && lm_vm_reclaim_attach(vm, ro.rc)) {
		lm_vm_destroy(vm);
		reclaim_done(&ro);
		return cli_fail("vm run --reclaim: %s", util_last_error());
	}
	rc = lm_vm_run(vm, &wl, &res);
	if (ro.rc)
		lm_reclaimer_stop(ro.rc);
	if (rc) {
		lm_vm_destroy(vm);
		reclaim_done(&ro);
		return cli_fail("vm run: %s", util_last_error());
	}
	if (save_dir) {
		uint64_t t0 = lm_now_ns();

		rc = lm_vm_save(vm, save_dir,
				cli_progress_enabled() ? cli_progress : NULL,
				(void *)"save");
		lm_vm_destroy(vm);
		if (rc)
			return cli_fail("vm run --save: %s", util_last_error());
		if (json)
			printf("{\"saved\": \"%s\", \"vcpus\": %u, \"mem\": %llu, \"ws_pages\": %llu, \"seconds\": %.3f}\n",
			       save_dir, cfg.nr_vcpus, (unsigned long long)cfg.mem_size,
			       (unsigned long long)wl.ws_pages,
			       (double)(lm_now_ns() - t0) / 1e9);
		else
			printf("saved:    %s: %u vCPU%s at the save point, %llu MiB RAM, working set %llu pages per vCPU, in %.3f s\n",
			       save_dir, cfg.nr_vcpus, cfg.nr_vcpus == 1 ? "" : "s",
			       (unsigned long long)(cfg.mem_size >> 20),
			       (unsigned long long)wl.ws_pages,
			       (double)(lm_now_ns() - t0) / 1e9);
		return 0;
	}
	if (ro.rc)
		reclaim_report(&ro, json);
	lm_vm_destroy(vm);
	reclaim_done(&ro);
	if (json)
		print_json(&cfg, &wl, &res);
	else
		print_text(&cfg, &wl, &res);
	return res.verified ? 0 : 1;
}
