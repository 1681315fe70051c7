/*
 * save.c - a VM stopped at its save point to a snapshot directory: the
 * reserved area and RAM as the two regions of memory.img, each vCPU's
 * captured state as blobs (vmm/vcpu_state.h), the workload as JSON.
 * The layout is restore.c's top comment.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/snapshot.h>

#include "util/clock.h"
#include "util/error.h"
#include "vmm/vcpu_state.h"
#include "vmsnap/vmsnap.h"

static char *workload_json(const struct lm_vm *vm)
{
	json_object *o = json_object_new_object();
	char *s;

#define ADD(k, v) json_object_object_add(o, k, v)
#define I64(x) json_object_new_int64((int64_t)(x))
	ADD("kind", json_object_new_string(lm_workload_name(vm->wl.kind)));
	ADD("phase", json_object_new_string("saved"));
	ADD("gen", I64(vm->cfg.gen));
	ADD("vcpus", I64(vm->cfg.nr_vcpus));
	ADD("mem", I64(vm->ram.size));
	ADD("guest_page_size", I64(vm->cfg.guest_page_size));
	ADD("reserved_size", I64(vm->reserved_size));
	ADD("ws_pages", I64(vm->vcpus[0].mb->ws_pages));
	ADD("seed", I64(vm->vcpus[0].mb->seed));
	/* The mailboxes travel in region 0; their gist is repeated here so
	 * that inspect shows it and restore can cross-check the two. */
	json_object *mbs = json_object_new_array();

	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		const struct lm_mailbox *mb = vm->vcpus[i].mb;
		json_object *e = json_object_new_object();

		json_object_object_add(e, "vcpu", I64(mb->vcpu));
		json_object_object_add(e, "slice_off", I64(mb->slice_off));
		json_object_object_add(e, "slice_size", I64(mb->slice_size));
		json_object_object_add(e, "phase", json_object_new_string(
			mb->phase == LM_PHASE_SAVED ? "saved" : "other"));
		json_object_object_add(e, "ws_pages", I64(mb->ws_pages));
		json_object_array_add(mbs, e);
	}
	ADD("mailboxes", mbs);
#undef ADD
#undef I64
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

int lm_vm_save(struct lm_vm *vm, const char *dir,
	       void (*progress)(uint64_t done, uint64_t total, void *arg),
	       void *arg)
{
	struct lm_snap_meta m;
	uint64_t rs = vm->reserved_size, total = rs + vm->ram.size;
	uint8_t *mem = MAP_FAILED;
	int memfd = vm->ram.memfd, rc = 0;

	memset(&m, 0, sizeof(m));
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
		if (!vm->vcpus[i].at_save)
			return util_error(-EINVAL, "vcpu %u did not reach the save point (workload %s has none?)",
					   i, lm_workload_name(vm->wl.kind));
	m.version = LM_SNAP_VERSION;
	m.page_size = vm->ram.page_size;
	m.mem_size = total;
	m.nr_regions = 2;
	m.regions[0] = (struct lm_snap_region){ 0, rs, 0 };
	m.regions[1] = (struct lm_snap_region){ LM_GPA_RAM, vm->ram.size, rs };
	m.nr_vcpus = vm->cfg.nr_vcpus;
	m.vcpus = calloc(m.nr_vcpus, sizeof(*m.vcpus));
	m.workload = workload_json(vm);
	if (!m.vcpus || !m.workload) {
		rc = util_error(-ENOMEM, "save: out of memory");
		goto out;
	}
	for (unsigned i = 0; i < m.nr_vcpus && !rc; i++) {
		rc = vcpu_state__to_snap(&vm->vcpus[i].saved, i, &m.vcpus[i]);
		if (rc)
			rc = util_error(rc, "save: %s", util_last_error());
	}
	if (rc)
		goto out;

	/* One contiguous view for lm_snap_save: a copy of the reserved area,
	 * then RAM mapped in place when it has a memfd (no copy of RAM). */
	if (memfd < 0 && vm->ram.region)
		memfd = lm_region_memfd(vm->ram.region);
	mem = mmap(NULL, total, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		rc = util_error(-errno, "save: %llu bytes of address space: %s",
				 (unsigned long long)total, strerror(errno));
		goto out;
	}
	memcpy(mem, vm->reserved, rs);
	if (memfd >= 0) {
		if (mmap(mem + rs, vm->ram.size, PROT_READ, MAP_SHARED | MAP_FIXED,
			 memfd, 0) == MAP_FAILED) {
			rc = util_error(-errno, "save: mapping guest RAM: %s",
					 strerror(errno));
			goto out;
		}
	} else {
		memcpy(mem + rs, vm->ram.vmm_view, vm->ram.size);
	}
	rc = lm_snap_save(dir, &m, mem, progress, arg);
	if (rc)
		rc = util_error(rc, "save to %s: %s", dir, lm_last_error());
out:
	if (mem != MAP_FAILED)
		munmap(mem, total);
	lm_snap_meta_free(&m);
	return rc;
}
