/*
 * cmd_snapshot.c - `lazymem snapshot inspect|verify DIR`: what a snapshot
 * holds, and whether every page of it is intact.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/lazymem.h>
#include "cli/cli.h"

static int parse(int argc, char **argv, const char *help, bool *json,
		 const char **dir)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		if (o == 'j' && json) {
			*json = true;
		} else if (o == 'h') {
			fputs(help, stdout);
			exit(0);
		} else {
			return cli_usage_error("%s: unknown option", argv[0]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("%s: expected one snapshot directory",
				       argv[0]);
	*dir = argv[optind];
	return 0;
}

static json_object *meta_json(const struct lm_snap_meta *m)
{
	json_object *o = json_object_new_object(), *regs, *vcpus;

	json_object_object_add(o, "version", json_object_new_int((int)m->version));
	json_object_object_add(o, "created", json_object_new_int64((int64_t)m->created));
	json_object_object_add(o, "page_size", json_object_new_int64((int64_t)m->page_size));
	json_object_object_add(o, "mem_size", json_object_new_int64((int64_t)m->mem_size));
	json_object_object_add(o, "nonzero_pages",
			       json_object_new_int64((int64_t)m->nonzero_pages));
	regs = json_object_new_array();
	for (unsigned i = 0; i < m->nr_regions; i++) {
		json_object *r = json_object_new_object();

		json_object_object_add(r, "gpa", json_object_new_int64((int64_t)m->regions[i].gpa));
		json_object_object_add(r, "size", json_object_new_int64((int64_t)m->regions[i].size));
		json_object_object_add(r, "offset", json_object_new_int64((int64_t)m->regions[i].offset));
		json_object_array_add(regs, r);
	}
	json_object_object_add(o, "regions", regs);
	vcpus = json_object_new_array();
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		json_object *v = json_object_new_object();

		for (unsigned b = 0; b < m->vcpus[i].nr_blobs; b++)
			json_object_object_add(v, m->vcpus[i].blobs[b].name,
				json_object_new_int64((int64_t)m->vcpus[i].blobs[b].len));
		json_object_array_add(vcpus, v);
	}
	json_object_object_add(o, "vcpu_state_bytes", vcpus);
	if (m->workload)
		json_object_object_add(o, "workload", json_tokener_parse(m->workload));
	return o;
}

static int inspect(int argc, char **argv)
{
	struct lm_snap_meta m;
	bool json = false;
	const char *dir;
	int err = parse(argc, argv,
		"usage: lazymem snapshot inspect DIR [--json]\n\n"
		"Print a snapshot's format version, memory layout, vCPU state\n"
		"and workload state, after checking that its files agree.\n",
		&json, &dir);

	if (err)
		return err;
	if (lm_snap_open(dir, &m))
		return cli_fail("%s", lm_last_error());
	if (json) {
		json_object *o = meta_json(&m);

		json_object_object_add(o, "snapshot", json_object_new_string(dir));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("snapshot %s: format version %u\n", dir, m.version);
		printf("memory: %llu MiB in pages of %llu KiB, %llu of %llu "
		       "pages stored (the rest are zero)\n",
		       (unsigned long long)(m.mem_size >> 20),
		       (unsigned long long)(m.page_size >> 10),
		       (unsigned long long)m.nonzero_pages,
		       (unsigned long long)(m.mem_size / m.page_size));
		for (unsigned i = 0; i < m.nr_regions; i++)
			printf("  region %u: gpa 0x%llx, %llu MiB, file offset "
			       "0x%llx\n", i,
			       (unsigned long long)m.regions[i].gpa,
			       (unsigned long long)(m.regions[i].size >> 20),
			       (unsigned long long)m.regions[i].offset);
		printf("vcpus: %u\n", m.nr_vcpus);
		for (unsigned i = 0; i < m.nr_vcpus; i++) {
			printf("  vcpu %u:", i);
			for (unsigned b = 0; b < m.vcpus[i].nr_blobs; b++)
				printf(" %s (%zu bytes)", m.vcpus[i].blobs[b].name,
				       m.vcpus[i].blobs[b].len);
			printf("\n");
		}
		printf("workload: %s\n", m.workload ? m.workload : "(none)");
	}
	lm_snap_meta_free(&m);
	return 0;
}

static int verify(int argc, char **argv)
{
	struct lm_snap_meta m;
	uint64_t bad = 0, first = 0;
	const char *dir;
	int err = parse(argc, argv,
		"usage: lazymem snapshot verify DIR\n\n"
		"Check every page of the snapshot's memory against its hash.\n"
		"Exit status 0 if all match, 1 otherwise.\n", NULL, &dir);

	if (err)
		return err;
	if (lm_snap_open(dir, &m))
		return cli_fail("%s", lm_last_error());
	err = lm_snap_verify(dir, &m, &bad, &first,
			     cli_progress_enabled() ? cli_progress : NULL,
			     (void *)"verify");
	if (!err)
		printf("snapshot %s: all %llu pages match their hashes\n", dir,
		       (unsigned long long)(m.mem_size / m.page_size));
	lm_snap_meta_free(&m);
	return err ? cli_fail("%s", lm_last_error()) : 0;
}

int cmd_snapshot_inspect(int argc, char **argv) { return inspect(argc, argv); }
int cmd_snapshot_verify(int argc, char **argv) { return verify(argc, argv); }
