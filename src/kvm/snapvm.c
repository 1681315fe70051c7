/*
 * snapvm.c - a VM to a snapshot and back: capture at the save point, save,
 * and restore lazily (RAM on demand from the snapshot, every page checked)
 * or eagerly, with working-set record and prefetch.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/snapshot.h>

#include "kvm/kvm.h"
#include "fc/fc.h"

/* The MSRs a resumed guest could depend on; EFER is in sregs. */
static const uint32_t save_msrs[] = {
	0x10,		/* TSC */
	0x174, 0x175, 0x176,	/* SYSENTER CS/ESP/EIP */
	0x277,		/* PAT */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,	/* STAR..SFMASK */
	0xc0000100, 0xc0000101, 0xc0000102,	/* FS/GS/KERNEL_GS base */
};
#define NR_SAVE_MSRS (sizeof(save_msrs) / sizeof(save_msrs[0]))

void vcpu__state_free(struct lm_vcpu_state *st)
{
	free(st->msrs);
	free(st->cpuid);
	free(st->xsave);
	st->msrs = NULL;
	st->cpuid = NULL;
	st->xsave = NULL;
}

/*
 * On the vCPU's own thread, at the save point (an OUT exit). KVM only
 * finishes an exit's instruction on the next KVM_RUN; re-entering with
 * immediate_exit completes it without running the guest further (KVM API
 * documentation on immediate_exit), so the state captured resumes after
 * the call. Returns 1: this vCPU is done for this run.
 */
int vcpu__capture(struct lm_vcpu *v)
{
	struct lm_vcpu_state *st = &v->saved;
	size_t n;
	int rc, tries;

	v->run->immediate_exit = 1;
	for (tries = 0; tries < 8; tries++) {
		rc = ioctl(v->fd, KVM_RUN, 0);
		if (rc < 0 && errno == EINTR)
			break;
	}
	v->run->immediate_exit = 0;
	if (tries == 8)
		return vcpu__fail(v, -EIO, "save point: KVM_RUN with immediate_exit did not return EINTR");
	vcpu__state_free(st);
	if (ioctl(v->fd, KVM_GET_REGS, &st->regs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &st->sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_FPU, &st->fpu) < 0)
		return vcpu__fail(v, -errno, "save point: reading registers: %s",
				  strerror(errno));
	st->xsave = calloc(1, sizeof(*st->xsave));
	st->have_xsave = st->xsave &&
			 ioctl(v->fd, KVM_GET_XSAVE, st->xsave) == 0;
	st->have_xcrs = ioctl(v->fd, KVM_GET_XCRS, &st->xcrs) == 0;
	st->have_events = ioctl(v->fd, KVM_GET_VCPU_EVENTS, &st->events) == 0;
	st->msrs_len = sizeof(struct kvm_msrs) +
		       NR_SAVE_MSRS * sizeof(struct kvm_msr_entry);
	st->msrs = calloc(1, st->msrs_len);
	if (!st->msrs)
		return vcpu__fail(v, -ENOMEM, "save point: out of memory");
	st->msrs->nmsrs = NR_SAVE_MSRS;
	for (unsigned i = 0; i < NR_SAVE_MSRS; i++)
		st->msrs->entries[i].index = save_msrs[i];
	rc = ioctl(v->fd, KVM_GET_MSRS, st->msrs);
	if (rc < 0)
		return vcpu__fail(v, -errno, "save point: KVM_GET_MSRS: %s",
				  strerror(errno));
	/* KVM stops at the first MSR it cannot read: keep those it read. */
	st->msrs->nmsrs = (uint32_t)rc;
	st->msrs_len = sizeof(struct kvm_msrs) +
		       (size_t)rc * sizeof(struct kvm_msr_entry);
	for (n = 64; n <= 4096; n *= 2) {
		st->cpuid_len = sizeof(struct kvm_cpuid2) +
				n * sizeof(struct kvm_cpuid_entry2);
		free(st->cpuid);
		st->cpuid = calloc(1, st->cpuid_len);
		if (!st->cpuid)
			return vcpu__fail(v, -ENOMEM, "save point: out of memory");
		st->cpuid->nent = (uint32_t)n;
		if (ioctl(v->fd, KVM_GET_CPUID2, st->cpuid) == 0)
			break;
		if (errno != E2BIG)
			return vcpu__fail(v, -errno, "save point: KVM_GET_CPUID2: %s",
					  strerror(errno));
	}
	if (n > 4096)
		return vcpu__fail(v, -E2BIG, "save point: CPUID table too large");
	st->cpuid_len = sizeof(struct kvm_cpuid2) +
			st->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
	v->at_save = true;
	v->t_done_ns = lm_now_ns();
	v->done = true;
	return 1;
}

/* ---- save ---- */

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
			return lm_vm_error(-EINVAL, "vcpu %u did not reach the save point (workload %s has none?)",
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
		rc = lm_vm_error(-ENOMEM, "save: out of memory");
		goto out;
	}
	for (unsigned i = 0; i < m.nr_vcpus && !rc; i++) {
		rc = vcpu_state__to_snap(&vm->vcpus[i].saved, i, &m.vcpus[i]);
		if (rc)
			rc = lm_vm_error(rc, "save: %s", lm_vm_last_error());
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
		rc = lm_vm_error(-errno, "save: %llu bytes of address space: %s",
				 (unsigned long long)total, strerror(errno));
		goto out;
	}
	memcpy(mem, vm->reserved, rs);
	if (memfd >= 0) {
		if (mmap(mem + rs, vm->ram.size, PROT_READ, MAP_SHARED | MAP_FIXED,
			 memfd, 0) == MAP_FAILED) {
			rc = lm_vm_error(-errno, "save: mapping guest RAM: %s",
					 strerror(errno));
			goto out;
		}
	} else {
		memcpy(mem + rs, vm->ram.vmm_view, vm->ram.size);
	}
	rc = lm_snap_save(dir, &m, mem, progress, arg);
	if (rc)
		rc = lm_vm_error(rc, "save to %s: %s", dir, lm_last_error());
out:
	if (mem != MAP_FAILED)
		munmap(mem, total);
	lm_snap_meta_free(&m);
	return rc;
}

/* ---- restore ---- */

/*
 * RAM's view of the snapshot source: RAM offset o is memory.img offset
 * base + o. With recording on, every page read (or found zero) is appended
 * in the order the region asked for it: first touch first, since the
 * region fetches each page exactly once.
 */
struct ram_source {
	struct lm_source base;
	struct lm_source *inner;
	uint64_t base_off, page_size;
	uint64_t *rec;			/* NULL: not recording */
	uint64_t rec_cap;
	atomic_uint_fast64_t rec_n;
	/* The one page the prefetcher hands over from the working-set image
	 * (already checked there): the page's RAM offset, or UINT64_MAX. Only
	 * the thread that claimed that page reads it, and the prefetcher
	 * waits for that claim before it moves on, so the data stays put. */
	_Atomic uint64_t staged_off;
	const uint8_t *_Atomic staged_data;
};

static void ram_source_note(struct ram_source *rs, uint64_t off, size_t len)
{
	if (!rs->rec)
		return;
	for (uint64_t p = 0; p < len; p += rs->page_size) {
		uint64_t i = atomic_fetch_add(&rs->rec_n, 1);

		if (i < rs->rec_cap)
			rs->rec[i] = rs->base_off + off + p;
	}
}

static int ram_source_read(struct lm_source *s, uint64_t off, void *dst,
			   size_t len)
{
	struct ram_source *rs = (struct ram_source *)s;
	int err;

	if (len == rs->page_size && atomic_load(&rs->staged_off) == off) {
		memcpy(dst, atomic_load(&rs->staged_data), len);
		ram_source_note(rs, off, len);
		return 0;
	}
	err = lm_source_read(rs->inner, rs->base_off + off, dst, len);
	if (!err)
		ram_source_note(rs, off, len);
	return err;
}

static int ram_source_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct ram_source *rs = (struct ram_source *)s;
	int z = rs->inner->ops->is_zero ?
		rs->inner->ops->is_zero(rs->inner, rs->base_off + off, len) : 0;

	if (z == 1)
		ram_source_note(rs, off, len);
	return z;
}

static void ram_source_destroy(struct lm_source *s)
{
	struct ram_source *rs = (struct ram_source *)s;

	free(rs->rec);
	free(rs);
}

static const struct lm_source_ops ram_source_ops = {
	.read = ram_source_read,
	.is_zero = ram_source_is_zero,
	.destroy = ram_source_destroy,
};

/* Everything restore holds; released in one place. */
struct restore {
	const struct lm_restore_opts *o;
	struct lm_snap_meta m;
	bool have_meta;
	struct lm_source *snap;
	struct ram_source *ram;
	struct lm_vm *vm;
	const struct lm_snap_region *rreg, *rram;
	uint64_t gen, gps, reserved_size, ws_pages, seed;
	/* prefetch */
	struct fc_ws ws;
	struct lm_snap_meta ws_meta;	/* the working-set image, if any */
	struct lm_source *ws_img;
	pthread_t pf_thread;
	bool pf_running;
	atomic_bool pf_stop;
	atomic_uint_fast64_t pf_pages;
	uint64_t pf_t0, pf_t1;		/* prefetch thread start, end (ns) */
	int pf_fd;
};

static int get_u64(json_object *o, const char *k, uint64_t *out,
		   const char *dir)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
		lm_vm_error(-EINVAL, "snapshot %s: workload state: missing or bad '%s' (a number >= 0)",
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
		return lm_vm_error(-EINVAL, "snapshot %s: memory layout: expected 2 regions (reserved area at gpa 0, RAM at gpa 0x%llx), found %u",
				   dir, (unsigned long long)LM_GPA_RAM, m->nr_regions);
	r->rreg = &m->regions[0];
	r->rram = &m->regions[1];
	if (m->page_size != 4096)
		return lm_vm_error(-EINVAL, "snapshot %s: page size %llu: this VMM restores 4096-byte pages",
				   dir, (unsigned long long)m->page_size);
	if (!m->workload || !(w = json_tokener_parse(m->workload)) ||
	    !json_object_is_type(w, json_type_object)) {
		rc = lm_vm_error(-EINVAL, "snapshot %s: no workload state (not saved by 'vm run --save')", dir);
		goto out;
	}
	if (!json_object_object_get_ex(w, "kind", &v) ||
	    strcmp(json_object_get_string(v), "restore")) {
		rc = lm_vm_error(-EINVAL, "snapshot %s: workload kind '%s': only 'restore' has a save point",
				 dir, v ? json_object_get_string(v) : "(none)");
		goto out;
	}
	if (!json_object_object_get_ex(w, "phase", &v) ||
	    strcmp(json_object_get_string(v), "saved")) {
		rc = lm_vm_error(-EINVAL, "snapshot %s: workload phase: expected 'saved'", dir);
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
		rc = lm_vm_error(-EINVAL, "snapshot %s: vCPU count: the workload state says %llu, the snapshot holds %u vCPU states (at most %d)",
				 dir, (unsigned long long)vcpus, m->nr_vcpus, LM_MAX_VCPUS);
		goto out;
	}
	if (mem != r->rram->size) {
		rc = lm_vm_error(-EINVAL, "snapshot %s: memory size: the workload state says %llu bytes, the RAM region holds %llu",
				 dir, (unsigned long long)mem,
				 (unsigned long long)r->rram->size);
		goto out;
	}
	if (r->reserved_size != r->rreg->size) {
		rc = lm_vm_error(-EINVAL, "snapshot %s: reserved area size: the workload state says %llu bytes, region 0 holds %llu",
				 dir, (unsigned long long)r->reserved_size,
				 (unsigned long long)r->rreg->size);
		goto out;
	}
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		char why[256];

		if (m->vcpus[i].id != i) {
			rc = lm_vm_error(-EINVAL, "snapshot %s: vcpus[%u] has id %u", dir, i, m->vcpus[i].id);
			goto out;
		}
		rc = vcpu_state__check(&m->vcpus[i], why, sizeof(why));
		if (rc) {
			rc = lm_vm_error(rc, "snapshot %s: %s", dir, why);
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
			return lm_vm_error(e, "snapshot %s: page at gpa 0x%llx (memory.img offset 0x%llx): %s",
					   r->o->dir,
					   (unsigned long long)(reg->gpa + roff + p),
					   (unsigned long long)(reg->offset + roff + p),
					   e == -EBADMSG ? "fails its hash check (corrupt)"
							 : strerror(-e));
	}
	return lm_vm_error(err, "snapshot %s: reading memory.img: %s",
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
		return lm_vm_error(-errno, "reserved area: fresh mapping: %s",
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
			return lm_vm_error(-EINVAL, "snapshot %s: vcpu %u's mailbox in the reserved area (phase %llu, vcpu %llu of %llu, slice 0x%llx+0x%llx) is not one stopped at the save point of this %u-vCPU, %llu-byte VM",
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

/*
 * The prefetcher: installs the working set's pages in first-touch order,
 * ahead of the vCPUs. It claims one page at a time (begin, read, commit),
 * so a vCPU never waits on it for a page it does not need right now; a
 * page a vCPU got to first is simply skipped. The reads behind it are
 * started early with readahead hints a window ahead, so a cold page cache
 * is read with many requests in flight instead of one at a time.
 */
#define PF_WINDOW 1024

/* Install one working-set page; data: its checked content, or NULL to
 * have it read from the snapshot like any fault. */
static void prefetch__page(struct restore *r, uint64_t fo, const uint8_t *data)
{
	struct lm_region *region = r->vm->ram.region;
	uint64_t base = r->rram->offset;
	struct lm_fault f;

	if (fo < base || fo - base >= r->rram->size)
		return;		/* the reserved area: already in */
	if (data) {
		atomic_store(&r->ram->staged_data, data);
		atomic_store(&r->ram->staged_off, fo - base);
	}
	if (lm_fault_begin(region, fo - base, LM_ORIGIN_BACKGROUND, &f) == 1 &&
	    lm_fault_commit(region, &f) == 0)
		atomic_fetch_add(&r->pf_pages, 1);
	/* A failed page is failed in the region: a vCPU that needs it fails
	 * visibly with its address. Nothing more to do here. */
	if (data)
		atomic_store(&r->ram->staged_off, UINT64_MAX);
}

/*
 * With a working-set image (FILE.img, written by --record-ws): the pages'
 * content in first-touch order, read in large sequential chunks, each page
 * checked against the image's hashes, which were taken from pages checked
 * against the snapshot's. A chunk that fails its check is fetched page by
 * page from the snapshot instead.
 */
#define PF_CHUNK_PAGES 512

static void *restore__prefetch_image(void *arg)
{
	struct restore *r = arg;
	uint64_t ps = r->m.page_size;
	uint8_t *buf = malloc(PF_CHUNK_PAGES * ps);

	r->pf_t0 = lm_now_ns();
	/* The first reads are short, so the first pages are in before the
	 * vCPUs reach them; then 16, 64, 256, 512 pages per read. */
	size_t want = 16, k;

	for (size_t i = 0; i < r->ws.n && !atomic_load(&r->pf_stop); i += k) {
		k = r->ws.n - i < want ? r->ws.n - i : want;
		want = want * 4 < PF_CHUNK_PAGES ? want * 4 : PF_CHUNK_PAGES;
		bool ok = buf && lm_source_read(r->ws_img, i * ps, buf, k * ps) == 0;

		for (size_t j = 0; j < k && !atomic_load(&r->pf_stop); j++)
			prefetch__page(r, r->ws.off[i + j], ok ? buf + j * ps : NULL);
	}
	free(buf);
	r->pf_t1 = lm_now_ns();
	return NULL;
}

static void *restore__prefetch(void *arg)
{
	struct restore *r = arg;
	uint64_t ps = r->m.page_size;
	size_t hinted = 0;

	r->pf_t0 = lm_now_ns();
	for (size_t i = 0; i < r->ws.n && !atomic_load(&r->pf_stop); i++) {
		if (r->pf_fd >= 0) {
			for (; hinted < r->ws.n && hinted < i + PF_WINDOW; hinted++)
				posix_fadvise(r->pf_fd, (off_t)r->ws.off[hinted],
					      (off_t)ps, POSIX_FADV_WILLNEED);
		}
		prefetch__page(r, r->ws.off[i], NULL);
	}
	r->pf_t1 = lm_now_ns();
	return NULL;
}

static int restore__start_prefetch(struct restore *r)
{
	char path[4096];
	int err;

	char why[512];

	err = fc_ws_load(r->o->prefetch, r->m.mem_size, &r->ws, why, sizeof(why));
	if (err)
		return lm_vm_error(err, "%s", why);
	if (r->ws.page_size != r->m.page_size)
		return lm_vm_error(-EINVAL, "working-set file %s: page size %llu, the snapshot's is %llu",
				   r->o->prefetch, (unsigned long long)r->ws.page_size,
				   (unsigned long long)r->m.page_size);
	/* The image is optional: without it (or if it does not match) the
	 * pages are read from memory.img, with readahead hints. */
	snprintf(path, sizeof(path), "%s.img", r->o->prefetch);
	if (r->ws.n && access(path, F_OK) == 0) {
		if (lm_snap_open(path, &r->ws_meta) == 0) {
			if (r->ws_meta.mem_size == r->ws.n * r->m.page_size &&
			    r->ws_meta.page_size == r->m.page_size)
				lm_snap_source_open(path, &r->ws_meta, &r->ws_img);
			lm_snap_meta_free(&r->ws_meta);
		}
	}
	snprintf(path, sizeof(path), "%s/memory.img", r->o->dir);
	r->pf_fd = open(path, O_RDONLY | O_CLOEXEC);
	err = pthread_create(&r->pf_thread, NULL, r->ws_img ?
			     restore__prefetch_image : restore__prefetch, r);
	if (err)
		return lm_vm_error(-err, "prefetch thread: %s", strerror(err));
	r->pf_running = true;
	return 0;
}

static void restore__release(struct restore *r)
{
	if (r->pf_running) {
		atomic_store(&r->pf_stop, true);
		pthread_join(r->pf_thread, NULL);
		r->pf_running = false;
	}
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

/*
 * FILE: the offsets (src/fc/wsfile.c). FILE.img: the working-set image, the same
 * pages' content in the same order, as a one-region snapshot of its own
 * (so it is hashed and checked like one), read in one sequential pass by
 * --prefetch. Its pages are read back through the checking source.
 */
static int restore__record(struct restore *r, uint64_t n)
{
	struct fc_ws ws = {
		.page_size = r->m.page_size,
		.off = r->ram->rec,
		.n = n < r->ram->rec_cap ? n : r->ram->rec_cap,
	};
	uint64_t ps = r->m.page_size, len = ws.n * ps;
	struct lm_snap_vcpu none = { 0 };
	struct lm_snap_meta im = {
		.version = LM_SNAP_VERSION, .page_size = ps, .mem_size = len,
		.nr_regions = 1, .nr_vcpus = 1, .vcpus = &none,
		.workload = (char *)"{\"kind\":\"working-set image\"}",
	};
	char path[4200], why[512];
	uint8_t *buf;
	int rc = fc_ws_write(r->o->record_ws, &ws, why, sizeof(why));

	if (rc)
		return lm_vm_error(rc, "%s", why);
	if (!ws.n)
		return 0;
	im.regions[0] = (struct lm_snap_region){ 0, len, 0 };
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf == MAP_FAILED)
		return lm_vm_error(-errno, "working-set image: %s", strerror(errno));
	for (size_t i = 0; i < ws.n && !rc; i++) {
		rc = lm_source_read(r->snap, ws.off[i], buf + i * ps, ps);
		if (rc)
			rc = lm_vm_error(rc, "working-set image: memory.img page at offset 0x%llx: %s",
					 (unsigned long long)ws.off[i], strerror(-rc));
	}
	snprintf(path, sizeof(path), "%s.img", r->o->record_ws);
	if (!rc) {
		rc = lm_snap_save(path, &im, buf, NULL, NULL);
		if (rc)
			rc = lm_vm_error(rc, "working-set image %s: %s", path,
					 lm_last_error());
	}
	munmap(buf, len);
	return rc;
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
	rc = lm_snap_open(o->dir, &r.m);
	if (rc)
		return lm_vm_error(rc, "%s", lm_last_error());
	r.have_meta = true;
	rc = restore__check(&r);
	if (rc)
		goto out;
	rc = lm_snap_source_open(o->dir, &r.m, &r.snap);
	if (rc) {
		rc = lm_vm_error(rc, "%s", lm_last_error());
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
			rc = lm_vm_error(-ENOMEM, "restore: out of memory");
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
				rc = lm_vm_error(-ENOMEM, "restore: out of memory");
				goto out;
			}
		}
		cfg.ram_source = &r.ram->base;
		cfg.delivery = o->delivery;
		if (o->delivery == LM_VM_MINOR || o->delivery == LM_VM_HYBRID)
			cfg.backing = LM_BACKING_MEMFD;
		/* Recording wants first touches only, not the fill's pages. */
		cfg.background = o->background && !o->record_ws;
	}	/* else limit RAM, filled below */
	rc = lm_vm_create(&cfg, &r.vm);
	if (rc)
		goto out;
	if (r.vm->reserved_size != r.rreg->size) {
		rc = lm_vm_error(-EINVAL, "snapshot %s: reserved area of %llu bytes, a VM with %llu bytes of RAM and %llu-byte guest pages has %llu",
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
		rc = restore__start_prefetch(&r);
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
		rc = restore__record(&r, rec_n);
	}
out:
	restore__release(&r);
	return rc;
}
