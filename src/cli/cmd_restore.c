/*
 * cmd_restore.c - "lazymem vm restore DIR": resume a VM saved by "vm run
 * --save" (src/vmsnap), lazily or eagerly, optionally recording or
 * prefetching its working set, and report when its first instruction ran,
 * when it finished, and whether its memory checked out.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "util/error.h"
#include "cli/cli.h"
#include "cli/vm_opts.h"
#include "store/source.h"
#include "store/store.h"
#include "vmm/vm.h"
#include "vmsnap/vmsnap.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s DIR|URL [options]\n"
		"Resume a VM saved by 'lazymem vm run --save DIR', from DIR or from\n"
		"object storage (URL: http(s)://HOST[:PORT]/BUCKET/PREFIX, pushed\n"
		"by 'lazymem snapshot push'; RAM through the host's chunk cache,\n"
		"its recorded working set fetched first).\n\n"
		"  --lazy               resume at once, RAM on demand (default)\n"
		"  --eager              read all RAM first, then resume (the baseline)\n"
		"  --delivery NAME      lazy: exit, hybrid, handler, minor (default exit)\n"
		"  --no-background      lazy: no background fill (only what is touched)\n"
		"  --thp                lazy: collapse each 2 MiB range of RAM into a\n"
		"                       huge page once it is full (collapser thread)\n"
		"  --record-ws FILE     write the pages this run touched, first touch\n"
		"                       first (turns the background fill off)\n"
		"  --prefetch FILE      install FILE's pages ahead of the vCPUs\n"
		"  --ws N%%              working set after the save point, of RAM\n"
		"                       (default: the one saved)\n"
		"  --timeout SECONDS    fail after this long without progress (default 60)\n"
		"  --cache-dir DIR      URL: the host chunk cache (default\n"
		"                       $XDG_CACHE_HOME/lazymem/chunks or\n"
		"                       /var/cache/lazymem/chunks)\n"
		"  --cache-size SIZE    URL: its bound, least recently used evicted\n"
		"                       (default 1G)\n"
		"%s"
		"  --json               one JSON object on stdout\n"
		"  -h, --help           this text\n", prog, cli_store_help());
}

int cmd_vm_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lazy", no_argument, NULL, 'l' },
		{ "eager", no_argument, NULL, 'e' },
		{ "delivery", required_argument, NULL, 'd' },
		{ "no-background", no_argument, NULL, 'N' },
		{ "thp", no_argument, NULL, 'H' },
		{ "record-ws", required_argument, NULL, 'r' },
		{ "prefetch", required_argument, NULL, 'p' },
		{ "ws", required_argument, NULL, 'W' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "cache-size", required_argument, NULL, 'S' },
		CLI_STORE_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct store_opts st = { 0 };
	struct store_source_opts so = { 0 };
	struct lm_restore_opts o = {
		.mode = LM_RESTORE_LAZY, .delivery = LM_VM_EXIT,
		.background = true, .timeout_ms = 60000,
	};
	struct lm_restore_result res;
	bool json = false;
	unsigned long val;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((rc = cli_store_option(c, optarg, &st)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		switch (c) {
		case 'C':
			if (optarg[0] != '/')
				return cli_usage_error("--cache-dir '%s': expected an absolute path", optarg);
			so.cache_dir = optarg;
			break;
		case 'S':
			if (cli_parse_size(optarg, &so.cache_size) || so.cache_size < (1u << 20))
				return cli_usage_error("--cache-size '%s': expected a size of at least 1M", optarg);
			break;
		case 'l':
			o.mode = LM_RESTORE_LAZY;
			break;
		case 'e':
			o.mode = LM_RESTORE_EAGER;
			break;
		case 'd':
			if (lm_vm_delivery_parse(optarg, &o.delivery) ||
			    o.delivery == LM_VM_LIMIT)
				return cli_usage_error("--delivery '%s': expected exit, hybrid, handler or minor", optarg);
			break;
		case 'N':
			o.background = false;
			break;
		case 'H':
			o.thp = LM_THP_AUTO;
			break;
		case 'r':
			o.record_ws = optarg;
			break;
		case 'p':
			o.prefetch = optarg;
			break;
		case 'W':
			if (vm_opt_percent(optarg, &o.ws_fraction))
				return cli_usage_error("--ws '%s': expected a percentage like 10%%", optarg);
			break;
		case 't':
			if (vm_opt_uint(optarg, 1, 86400, &val))
				return cli_usage_error("--timeout '%s': expected seconds from 1 to 86400", optarg);
			o.timeout_ms = (unsigned)val * 1000;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			return cli_usage_error("%s: bad option (see --help)", argv[0]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("%s: expected one snapshot directory or URL (see --help)", argv[0]);
	o.dir = argv[optind];
	so.http = st.http;
	o.store = &so;
	if (o.mode == LM_RESTORE_EAGER && (o.record_ws || o.prefetch))
		return cli_usage_error("--record-ws and --prefetch need --lazy (eager reads everything first)");
	if (!json && cli_progress_enabled()) {
		o.progress = cli_progress;
		o.progress_arg = (void *)"restore";
	}
	rc = lm_vm_restore(&o, &res);
	if (rc)
		return cli_fail("vm restore: %s", util_last_error());
	if (json) {
		json_object *j = json_object_new_object();

#define ADD(k, v) json_object_object_add(j, k, v)
#define I64(x) json_object_new_int64((int64_t)(x))
		ADD("snapshot", json_object_new_string(o.dir));
		ADD("mode", json_object_new_string(o.mode == LM_RESTORE_LAZY ?
			(o.prefetch ? "prefetch" : "lazy") : "eager"));
		ADD("delivery", json_object_new_string(o.mode == LM_RESTORE_LAZY ?
			lm_vm_delivery_name(o.delivery) : "limit"));
		ADD("vcpus", I64(res.nr_vcpus));
		ADD("mem", I64(res.mem_size));
		ADD("ws_pages_per_vcpu", I64(res.ws_pages));
		ADD("first_instruction_ms", json_object_new_double(res.first_instruction_ms));
		ADD("seconds", json_object_new_double(res.seconds));
		ADD("pages_faulted", I64(res.pages_faulted));
		ADD("pages_prefetched", I64(res.pages_prefetched));
		ADD("pages_background", I64(res.run.stats.pages_background));
		ADD("ws_recorded", I64(res.ws_recorded));
		ADD("words_checked", I64(res.run.words_checked));
		ADD("mismatches", I64(res.run.mismatches));
		ADD("host_mismatches", I64(res.run.host_mismatches));
		ADD("verified", json_object_new_boolean(res.run.verified));
#undef ADD
#undef I64
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		printf("restored: %s: %u vCPU%s, %llu MiB RAM, %s%s%s\n", o.dir,
		       res.nr_vcpus, res.nr_vcpus == 1 ? "" : "s",
		       (unsigned long long)(res.mem_size >> 20),
		       o.mode == LM_RESTORE_LAZY ? "lazy, delivery " : "eager",
		       o.mode == LM_RESTORE_LAZY ? lm_vm_delivery_name(o.delivery) : "",
		       o.mode == LM_RESTORE_LAZY && o.background && !o.record_ws ?
		       ", background fill" : "");
		printf("time:     first guest instruction %.3f ms after the restore call; workload done at %.3f s\n",
		       res.first_instruction_ms, res.seconds);
		printf("pages:    working set %llu per vCPU; installed on demand %llu, prefetched %llu (of %llu listed), background %llu\n",
		       (unsigned long long)res.ws_pages,
		       (unsigned long long)res.pages_faulted,
		       (unsigned long long)res.pages_prefetched,
		       (unsigned long long)res.ws_loaded,
		       (unsigned long long)res.run.stats.pages_background);
		if (o.prefetch)
			printf("prefetch: %llu pages installed in a %.3f s pass over %llu listed (%s)\n",
			       (unsigned long long)res.pages_prefetched,
			       res.prefetch_seconds, (unsigned long long)res.ws_loaded,
			       res.prefetch_image ? "from the working-set image" :
			       "from memory.img");
		if (res.run.have_stats)
			printf("faults:   vCPU faults %llu: installed the page %llu, waited for another thread's install %llu, found it present %llu\n",
			       (unsigned long long)res.run.stats.faults[LM_ORIGIN_VCPU],
			       (unsigned long long)res.pages_faulted,
			       (unsigned long long)res.run.stats.faults_waited,
			       (unsigned long long)res.run.stats.faults_present);
		if (o.record_ws)
			printf("recorded: %llu pages to %s\n",
			       (unsigned long long)res.ws_recorded, o.record_ws);
		if (res.run.verified)
			printf("verify:   ok (%llu words checked by the guest, %llu pages sampled by the VMM)\n",
			       (unsigned long long)res.run.words_checked,
			       (unsigned long long)res.run.host_checked);
		else
			printf("verify:   FAILED: %llu guest mismatches (first at gpa 0x%llx: expected 0x%llx, got 0x%llx), %llu of %llu VMM samples wrong\n",
			       (unsigned long long)res.run.mismatches,
			       (unsigned long long)res.run.first_bad_gpa,
			       (unsigned long long)res.run.first_expected,
			       (unsigned long long)res.run.first_got,
			       (unsigned long long)res.run.host_mismatches,
			       (unsigned long long)res.run.host_checked);
	}
	return res.run.verified ? 0 : 1;
}
