/*
 * restore.c - a snapshot back to a running VM, lazily (RAM on demand from
 * the snapshot, every page checked) or eagerly; the working set's source,
 * prefetcher and recording are ws.c's, the save is save.c's.
 *
 * Snapshot layout (lazymem/snapshot.h is the format): two regions of
 * guest-physical memory, both in memory.img:
 *   region 0  gpa 0, the reserved area (descriptor tables, mailboxes,
 *             code, stacks, page tables), at offset 0;
 *   region 1  gpa LM_GPA_RAM, guest RAM, right after it.
 * Per vCPU the blobs regs, sregs, fpu (struct kvm_regs, kvm_sregs,
 * kvm_fpu), msrs (struct kvm_msrs with its entries) and cpuid (struct
 * kvm_cpuid2 with its entries). The workload state is a JSON object:
 * kind, phase, gen, vcpus, mem, guest_page_size, reserved_size, ws_pages,
 * seed; the mailboxes themselves are guest memory (region 0).
 *
 * Restore order is what makes the first instruction early: the reserved
 * area (a few MiB) is read and checked, vCPU state set, and the vCPUs run
 * before any byte of RAM is read; RAM pages come from the snapshot source
 * on demand (and from the background fill and the prefetcher).
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

#include "store/source.h"
#include "util/clock.h"
#include "util/error.h"
#include "vmm/vcpu_state.h"
#include "vmsnap/vmsnap_internal.h"

static int get_u64(json_object *o, const char *k, uint64_t *out,
		   const char *dir)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
		util_error(-EINVAL, "snapshot %s: workload state: missing or bad '%s' (a number >= 0)",
			   dir, k);
		return -EINVAL;	/* a literal: on 0, *out is seen to be set */
	}
	*out = (uint64_t)json_object_get_int64(v);
	return 0;
}

/* Is this snapshot one this VMM can resume? Every refusal names the field. */
static int restore__check(struct restore *r)
{
	const char *dir = r->o->dir;
	struct lm_snap_meta *m = &r->m;
	json_object *w = NULL, *v = NULL;
	uint64_t vcpus, mem;
	int rc = 0;

	if (m->nr_regions != 2 || m->regions[0].gpa != 0 ||
	    m->regions[1].gpa != LM_GPA_RAM)
		return util_error(-EINVAL, "snapshot %s: memory layout: expected 2 regions (reserved area at gpa 0, RAM at gpa 0x%llx), found %u",
				   dir, (unsigned long long)LM_GPA_RAM, m->nr_regions);
	r->rreg = &m->regions[0];
	r->rram = &m->regions[1];
	if (m->page_size != 4096)
		return util_error(-EINVAL, "snapshot %s: page size %llu: this VMM restores 4096-byte pages",
				   dir, (unsigned long long)m->page_size);
	if (!m->workload || !(w = json_tokener_parse(m->workload)) ||
	    !json_object_is_type(w, json_type_object)) {
		rc = util_error(-EINVAL, "snapshot %s: no workload state (not saved by 'vm run --save')", dir);
		goto out;
	}
	if (!json_object_object_get_ex(w, "kind", &v) ||
	    strcmp(json_object_get_string(v), "restore")) {
		rc = util_error(-EINVAL, "snapshot %s: workload kind '%s': only 'restore' has a save point",
				 dir, v ? json_object_get_string(v) : "(none)");
		goto out;
	}
	if (!json_object_object_get_ex(w, "phase", &v) ||
	    strcmp(json_object_get_string(v), "saved")) {
		rc = util_error(-EINVAL, "snapshot %s: workload phase: expected 'saved'", dir);
		goto out;
	}
	if ((rc = get_u64(w, "gen", &r->gen, dir)) ||
	    (rc = get_u64(w, "vcpus", &vcpus, dir)) ||
	    (rc = get_u64(w, "mem", &mem, dir)) ||
	    (rc = get_u64(w, "guest_page_size", &r->gps, dir)) ||
	    (rc = get_u64(w, "reserved_size", &r->reserved_size, dir)) ||
	    (rc = get_u64(w, "ws_pages", &r->ws_pages, dir)) ||
	    (rc = get_u64(w, "seed", &r->seed, dir)))
		goto out;
	if (vcpus != m->nr_vcpus || vcpus < 1 || vcpus > LM_MAX_VCPUS) {
		rc = util_error(-EINVAL, "snapshot %s: vCPU count: the workload state says %llu, the snapshot holds %u vCPU states (at most %d)",
				 dir, (unsigned long long)vcpus, m->nr_vcpus, LM_MAX_VCPUS);
		goto out;
	}
	if (mem != r->rram->size) {
		rc = util_error(-EINVAL, "snapshot %s: memory size: the workload state says %llu bytes, the RAM region holds %llu",
				 dir, (unsigned long long)mem,
				 (unsigned long long)r->rram->size);
		goto out;
	}
	if (r->reserved_size != r->rreg->size) {
		rc = util_error(-EINVAL, "snapshot %s: reserved area size: the workload state says %llu bytes, region 0 holds %llu",
				 dir, (unsigned long long)r->reserved_size,
				 (unsigned long long)r->rreg->size);
		goto out;
	}
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		char why[256];

		if (m->vcpus[i].id != i) {
			rc = util_error(-EINVAL, "snapshot %s: vcpus[%u] has id %u", dir, i, m->vcpus[i].id);
			goto out;
		}
		rc = vcpu_state__check(&m->vcpus[i], why, sizeof(why));
		if (rc) {
			rc = util_error(rc, "snapshot %s: %s", dir, why);
			goto out;
		}
	}
out:
	if (w)
		json_object_put(w);
	return rc;
}

/* Read [off, off+len) of memory.img into dst, checked. A page failing its
 * hash is named by its guest-physical address. */
static int restore__read(struct restore *r, const struct lm_snap_region *reg,
			 uint64_t roff, void *dst, uint64_t len)
{
	uint64_t ps = r->m.page_size;
	int err = lm_source_read(r->snap, reg->offset + roff, dst, len);

	if (!err)
		return 0;
	for (uint64_t p = 0; p < len; p += ps) {
		int e = lm_source_read(r->snap, reg->offset + roff + p,
				       (uint8_t *)dst + p, ps);

		if (e)
			return util_error(e, "snapshot %s: page at gpa 0x%llx (memory.img offset 0x%llx): %s",
					   r->o->dir,
					   (unsigned long long)(reg->gpa + roff + p),
					   (unsigned long long)(reg->offset + roff + p),
					   e == -EBADMSG ? "fails its hash check (corrupt)"
							 : strerror(-e));
	}
	return util_error(err, "snapshot %s: reading memory.img: %s",
			   r->o->dir, strerror(-err));
}

/*
 * The reserved area, eagerly but only where memory.img holds data: most of
 * it (unused code and stack space) is holes, and every page written here
 * is a page fault on a fresh mapping (about 6 us each on this nested host:
 * reading all 6 MiB of a 64 MiB VM's area took 10-20 ms, most of the time
 * to first instruction). The area is replaced by a fresh zero mapping
 * first (KVM follows the new pages through its MMU notifier), so holes need
 * no writing; each hole is still checked against its recorded hashes.
 */
static int restore__reserved(struct restore *r)
{
	const struct lm_snap_region *reg = r->rreg;
	uint8_t *dst = r->vm->reserved;
	char path[4096];
	uint64_t off = 0;
	int fd, rc = 0;

	if (mmap(dst, reg->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
		 0) == MAP_FAILED)
		return util_error(-errno, "reserved area: fresh mapping: %s",
				   strerror(errno));
	snprintf(path, sizeof(path), "%s/memory.img", r->o->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return restore__read(r, reg, 0, dst, reg->size);
	while (off < reg->size && !rc) {
		off_t d = lseek(fd, (off_t)(reg->offset + off), SEEK_DATA);
		uint64_t data = d < 0 ? reg->offset + reg->size : (uint64_t)d;
		uint64_t hole_end, end;
		off_t h;

		if (data > reg->offset + reg->size)
			data = reg->offset + reg->size;
		hole_end = data - reg->offset;
		if (hole_end > off &&
		    r->snap->ops->is_zero(r->snap, reg->offset + off,
					  hole_end - off) != 1)
			rc = restore__read(r, reg, off, dst + off, hole_end - off);
		if (rc || hole_end >= reg->size)
			break;
		h = lseek(fd, (off_t)data, SEEK_HOLE);
		end = h < 0 ? reg->offset + reg->size : (uint64_t)h;
		if (end > reg->offset + reg->size)
			end = reg->offset + reg->size;
		/* extents are block-aligned; pages are whole */
		end = (end - reg->offset + r->m.page_size - 1) & ~(r->m.page_size - 1);
		if (end > reg->size)
			end = reg->size;
		rc = restore__read(r, reg, hole_end, dst + hole_end, end - hole_end);
		off = end;
	}
	close(fd);
	return rc;
}

/* The mailboxes as restored (region 0) must be those of vCPUs stopped at
 * the save point, with the slices the workload state describes. */
static int restore__check_mailboxes(struct restore *r)
{
	uint64_t slice = r->rram->size / r->m.nr_vcpus;

	for (unsigned i = 0; i < r->m.nr_vcpus; i++) {
		const struct lm_mailbox *mb = r->vm->vcpus[i].mb;

		if (mb->phase != LM_PHASE_SAVED || mb->vcpu != i ||
		    mb->nr_vcpus != r->m.nr_vcpus || mb->slice_off != slice * i ||
		    mb->slice_size != slice || mb->ram_size != r->rram->size ||
		    mb->workload != LM_WL_RESTORE)
			return util_error(-EINVAL, "snapshot %s: vcpu %u's mailbox in the reserved area (phase %llu, vcpu %llu of %llu, slice 0x%llx+0x%llx) is not one stopped at the save point of this %u-vCPU, %llu-byte VM",
					   r->o->dir, i, (unsigned long long)mb->phase,
					   (unsigned long long)mb->vcpu,
					   (unsigned long long)mb->nr_vcpus,
					   (unsigned long long)mb->slice_off,
					   (unsigned long long)mb->slice_size,
					   r->m.nr_vcpus,
					   (unsigned long long)r->rram->size);
	}
	return 0;
}

static int restore__vcpu(struct restore *r, unsigned i)
{
	return vcpu_state__apply(&r->vm->vcpus[i], &r->m.vcpus[i]);
}

static void restore__release(struct restore *r)
{
	ws__stop_prefetch(r);
	if (r->pf_fd >= 0)
		close(r->pf_fd);
	r->pf_fd = -1;
	fc_ws_free(&r->ws);
	if (r->ws_img)
		lm_source_destroy(r->ws_img);
	r->ws_img = NULL;
	lm_vm_destroy(r->vm);	/* before the sources it reads */
	r->vm = NULL;
	if (r->ram)
		lm_source_destroy(&r->ram->base);
	r->ram = NULL;
	if (r->snap)
		lm_source_destroy(r->snap);
	r->snap = NULL;
	if (r->have_meta)
		lm_snap_meta_free(&r->m);
	r->have_meta = false;
}

static bool restore__is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/*
 * A snapshot in object storage (src/store): its memory comes through the
 * store's page source (the host chunk cache, the working set recorded at
 * save time fetched first, the rest in the background), its meta.json
 * from the manifest. The reserved area is read through the same source
 * (no holes to skip: restore__reserved falls back to one read).
 */
static int restore__open_url(struct restore *r)
{
	struct store_source_opts so = { 0 };
	const struct store_manifest *man;
	int rc;

	if (r->o->store)
		so = *r->o->store;
	if (r->o->prefetch)
		return util_error(-EINVAL, "%s: --prefetch FILE is for a local snapshot; a stored one prefetches its own working set",
				  r->o->dir);
	rc = store_source_open(r->o->dir, &so, &r->snap);
	if (rc)
		return rc;
	man = store_source_manifest(r->snap);
	rc = lm_snap_meta_parse(man->meta_json, strlen(man->meta_json), &r->m);
	if (rc)
		return util_error(rc, "%s: %s", r->o->dir, lm_last_error());
	r->have_meta = true;
	return 0;
}

int lm_vm_restore(const struct lm_restore_opts *o,
		  struct lm_restore_result *res)
{
	struct restore r = { .o = o, .pf_fd = -1 };
	struct lm_vm_config cfg = { 0 };
	struct lm_vm_workload wl = { 0 };
	uint64_t t0 = lm_now_ns(), first = UINT64_MAX, last = 0, rec_n = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	if (restore__is_url(o->dir)) {
		rc = restore__open_url(&r);
		if (rc)
			goto out;
	} else {
		rc = lm_snap_open(o->dir, &r.m);
		if (rc)
			return util_error(rc, "%s", lm_last_error());
		r.have_meta = true;
	}
	rc = restore__check(&r);
	if (rc)
		goto out;
	if (!r.snap && (rc = lm_snap_source_open(o->dir, &r.m, &r.snap))) {
		rc = util_error(rc, "%s", lm_last_error());
		goto out;
	}

	cfg.mem_size = r.rram->size;
	cfg.nr_vcpus = r.m.nr_vcpus;
	cfg.guest_page_size = r.gps;
	cfg.gen = r.gen;
	cfg.backing = LM_BACKING_ANON;
	cfg.delivery = LM_VM_LIMIT;
	cfg.restoring = true;
	if (o->mode == LM_RESTORE_LAZY) {
		r.ram = calloc(1, sizeof(*r.ram));
		if (!r.ram) {
			rc = util_error(-ENOMEM, "restore: out of memory");
			goto out;
		}
		r.ram->base.ops = &ram_source_ops;
		r.ram->base.size = r.rram->size;
		snprintf(r.ram->base.desc, sizeof(r.ram->base.desc), "%s",
			 r.snap->desc);
		r.ram->inner = r.snap;
		r.ram->base_off = r.rram->offset;
		r.ram->page_size = r.m.page_size;
		atomic_store(&r.ram->staged_off, UINT64_MAX);
		if (o->record_ws) {
			r.ram->rec_cap = r.rram->size / r.m.page_size;
			r.ram->rec = malloc(r.ram->rec_cap * 8);
			if (!r.ram->rec) {
				rc = util_error(-ENOMEM, "restore: out of memory");
				goto out;
			}
		}
		cfg.ram_source = &r.ram->base;
		cfg.delivery = o->delivery;
		if (o->delivery == LM_VM_MINOR || o->delivery == LM_VM_HYBRID)
			cfg.backing = LM_BACKING_MEMFD;
		/* Recording wants first touches only, not the fill's pages. */
		cfg.background = o->background && !o->record_ws;
		cfg.thp = o->thp;
	}	/* else limit RAM, filled below */
	rc = lm_vm_create(&cfg, &r.vm);
	if (rc)
		goto out;
	if (r.vm->reserved_size != r.rreg->size) {
		rc = util_error(-EINVAL, "snapshot %s: reserved area of %llu bytes, a VM with %llu bytes of RAM and %llu-byte guest pages has %llu",
				 o->dir, (unsigned long long)r.rreg->size,
				 (unsigned long long)cfg.mem_size,
				 (unsigned long long)cfg.guest_page_size,
				 (unsigned long long)r.vm->reserved_size);
		goto out;
	}
	/* The reserved area, eagerly: code, tables, stacks, mailboxes. */
	rc = restore__reserved(&r);
	if (!rc)
		rc = restore__check_mailboxes(&r);
	if (rc)
		goto out;
	if (o->mode != LM_RESTORE_LAZY) {
		const uint64_t chunk = 8u << 20;

		for (uint64_t off = 0; off < r.rram->size && !rc; off += chunk) {
			uint64_t len = r.rram->size - off < chunk ?
				       r.rram->size - off : chunk;

			rc = restore__read(&r, r.rram, off,
					   (uint8_t *)r.vm->ram.host + off, len);
			if (o->progress)
				o->progress(off + len, r.rram->size, o->progress_arg);
		}
		if (rc)
			goto out;
		if (o->mode == LM_RESTORE_LIMIT)
			t0 = lm_now_ns();	/* all memory already present */
	}
	for (unsigned i = 0; i < cfg.nr_vcpus && !rc; i++) {
		rc = restore__vcpu(&r, i);
		if (!rc && o->ws_fraction > 0) {
			uint64_t per = r.rram->size / r.m.page_size / cfg.nr_vcpus;
			uint64_t k = (uint64_t)((double)per * o->ws_fraction);

			r.vm->vcpus[i].mb->ws_pages = k ? (k < per ? k : per) : 1;
		}
	}
	if (rc)
		goto out;
	res->ws_pages = r.vm->vcpus[0].mb->ws_pages;
	if (o->prefetch && o->mode == LM_RESTORE_LAZY) {
		rc = ws__start_prefetch(&r);
		if (rc)
			goto out;
		res->ws_loaded = r.ws.n;
	}

	wl.kind = LM_WL_RESTORE;
	wl.timeout_ms = o->timeout_ms;
	rc = lm_vm_resume(r.vm, &wl, &res->run);
	if (r.ram)
		rec_n = atomic_load(&r.ram->rec_n);
	if (rc)
		goto out;
	for (unsigned i = 0; i < cfg.nr_vcpus; i++) {
		const struct lm_vcpu *v = &r.vm->vcpus[i];

		if (v->t_enter_ns && v->t_enter_ns < first)
			first = v->t_enter_ns;
		if (v->t_done_ns > last)
			last = v->t_done_ns;
	}
	res->first_instruction_ms = first != UINT64_MAX && first > t0 ?
				    (double)(first - t0) / 1e6 : 0;
	res->seconds = last > t0 ? (double)(last - t0) / 1e9 : 0;
	res->pages_faulted = res->run.have_stats ?
			     res->run.stats.pages_demand + res->run.stats.pages_around : 0;
	res->pages_prefetched = atomic_load(&r.pf_pages);
	if (r.pf_running) {
		atomic_store(&r.pf_stop, true);
		pthread_join(r.pf_thread, NULL);
		r.pf_running = false;
		res->pages_prefetched = atomic_load(&r.pf_pages);
		res->prefetch_seconds = r.pf_t1 > r.pf_t0 ?
					(double)(r.pf_t1 - r.pf_t0) / 1e9 : 0;
		res->prefetch_image = r.ws_img != NULL;
	}
	lm_vm_host_check(r.vm, &res->run);
	res->run.verified = res->run.words_checked > 0 &&
			    res->run.mismatches == 0 &&
			    res->run.host_mismatches == 0;
	res->nr_vcpus = cfg.nr_vcpus;
	res->mem_size = cfg.mem_size;
	if (o->record_ws && r.ram) {
		res->ws_recorded = rec_n;
		rc = ws__record(&r, rec_n);
	}
out:
	restore__release(&r);
	return rc;
}
