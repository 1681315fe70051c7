/*
 * vcpu_state.c - a vCPU's state, a service of the VMM to its features:
 * captured on the vCPU's thread (at the save point or a pause), and as
 * named blobs (the snapshot format's, lazymem/snapshot.h): checked,
 * applied to a
 * vCPU, and packed into one buffer for the wire (a migration's VCPU
 * message). Snapshots and migrations share every check here, so a state
 * from a file and one from a network peer are refused for the same
 * reasons, in the same words.
 *
 * Packed form: per blob, u8 name length, the name, u32 length (little-
 * endian, as on x86), the bytes; nothing else. The unpacker trusts none
 * of it: names, sizes and repeats go through lm_snap_vcpu_add_blob's
 * checks and then vcpu_state__check's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/error.h"
#include "vmm/vm.h"

/* The MSRs a resumed guest could depend on; EFER is in sregs. */
static const uint32_t save_msrs[] = {
	0x10,		/* TSC */
	0x174, 0x175, 0x176,	/* SYSENTER CS/ESP/EIP */
	0x277,		/* PAT */
	0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,	/* STAR..SFMASK */
	0xc0000100, 0xc0000101, 0xc0000102,	/* FS/GS/KERNEL_GS base */
};
#define NR_SAVE_MSRS (sizeof(save_msrs) / sizeof(save_msrs[0]))

void vcpu_state__free(struct lm_vcpu_state *st)
{
	free(st->msrs);
	free(st->cpuid);
	free(st->xsave);
	st->msrs = NULL;
	st->cpuid = NULL;
	st->xsave = NULL;
}

/*
 * On the vCPU's own thread, between two KVM_RUNs. KVM only finishes an
 * exit's instruction on the next KVM_RUN, so the run loop (vcpu.c) first
 * re-enters with immediate_exit, which completes it without running the
 * guest further (KVM API documentation on immediate_exit); the state read
 * here then resumes after that instruction.
 */
int vcpu_state__capture(struct lm_vcpu *v)
{
	struct lm_vcpu_state *st = &v->saved;
	size_t n;
	int rc;

	vcpu_state__free(st);
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
	return 0;
}

int vcpu_state__to_snap(const struct lm_vcpu_state *st, unsigned id,
			struct lm_snap_vcpu *sv)
{
	memset(sv, 0, sizeof(*sv));
	sv->id = id;
	if (lm_snap_vcpu_add_blob(sv, "regs", &st->regs, sizeof(st->regs)) ||
	    lm_snap_vcpu_add_blob(sv, "sregs", &st->sregs, sizeof(st->sregs)) ||
	    lm_snap_vcpu_add_blob(sv, "fpu", &st->fpu, sizeof(st->fpu)) ||
	    lm_snap_vcpu_add_blob(sv, "msrs", st->msrs, st->msrs_len) ||
	    lm_snap_vcpu_add_blob(sv, "cpuid", st->cpuid, st->cpuid_len) ||
	    (st->have_xsave &&
	     lm_snap_vcpu_add_blob(sv, "xsave", st->xsave, sizeof(*st->xsave))) ||
	    (st->have_xcrs &&
	     lm_snap_vcpu_add_blob(sv, "xcrs", &st->xcrs, sizeof(st->xcrs))) ||
	    (st->have_events &&
	     lm_snap_vcpu_add_blob(sv, "events", &st->events, sizeof(st->events))))
		return util_error(-EINVAL, "vcpu %u: %s", id, lm_last_error());
	return 0;
}

void vcpu_state__snap_free(struct lm_snap_vcpu *sv)
{
	for (unsigned i = 0; i < sv->nr_blobs; i++) {
		free(sv->blobs[i].data);
		sv->blobs[i].data = NULL;
	}
	sv->nr_blobs = 0;
}

/* A table of n entries after a header, the count in the header. */
static bool table_ok(const struct lm_snap_blob *b, size_t head, size_t ent,
		     uint32_t count)
{
	return b->len >= head && (b->len - head) % ent == 0 &&
	       count == (b->len - head) / ent;
}

int vcpu_state__check(const struct lm_snap_vcpu *sv, char *why, size_t n)
{
	static const struct {
		const char *name;
		size_t len;
		bool optional;	/* saved where KVM supports it */
	} fixed[] = {
		{ "regs", sizeof(struct kvm_regs), false },
		{ "sregs", sizeof(struct kvm_sregs), false },
		{ "fpu", sizeof(struct kvm_fpu), false },
		{ "xsave", sizeof(struct kvm_xsave), true },
		{ "xcrs", sizeof(struct kvm_xcrs), true },
		{ "events", sizeof(struct kvm_vcpu_events), true },
	};
	const struct lm_snap_blob *b;

	for (unsigned k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++) {
		b = lm_snap_vcpu_blob(sv, fixed[k].name);
		if (!b && fixed[k].optional)
			continue;
		if (!b || b->len != fixed[k].len) {
			snprintf(why, n, "vcpu %u: state '%s' %s (expected %zu bytes)",
				 sv->id, fixed[k].name,
				 b ? "has the wrong size" : "is missing",
				 fixed[k].len);
			return -EINVAL;
		}
	}
	b = lm_snap_vcpu_blob(sv, "msrs");
	if (!b || !table_ok(b, sizeof(struct kvm_msrs),
			    sizeof(struct kvm_msr_entry),
			    ((const struct kvm_msrs *)(const void *)b->data)->nmsrs)) {
		snprintf(why, n, "vcpu %u: state 'msrs' %s (expected struct kvm_msrs and its entries)",
			 sv->id, b ? "has the wrong size" : "is missing");
		return -EINVAL;
	}
	b = lm_snap_vcpu_blob(sv, "cpuid");
	if (!b || !table_ok(b, sizeof(struct kvm_cpuid2),
			    sizeof(struct kvm_cpuid_entry2),
			    ((const struct kvm_cpuid2 *)(const void *)b->data)->nent)) {
		snprintf(why, n, "vcpu %u: state 'cpuid' %s (expected struct kvm_cpuid2 and its entries)",
			 sv->id, b ? "has the wrong size" : "is missing");
		return -EINVAL;
	}
	return 0;
}

/* Only after vcpu_state__check: every blob used here is there and sized. */
int vcpu_state__apply(struct lm_vcpu *v, const struct lm_snap_vcpu *sv)
{
	const struct lm_snap_blob *b;
	unsigned i = v->id;
	int rc;

	/* CPUID first: KVM only takes a new table before the first KVM_RUN. */
	b = lm_snap_vcpu_blob(sv, "cpuid");
	if (ioctl(v->fd, KVM_SET_CPUID2, b->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_CPUID2 with the saved table: %s",
				   i, strerror(errno));
	if (ioctl(v->fd, KVM_SET_SREGS, lm_snap_vcpu_blob(sv, "sregs")->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_SREGS: %s", i, strerror(errno));
	b = lm_snap_vcpu_blob(sv, "msrs");
	rc = ioctl(v->fd, KVM_SET_MSRS, b->data);
	if (rc < 0 || (uint32_t)rc != ((const struct kvm_msrs *)(const void *)b->data)->nmsrs)
		return util_error(-EINVAL, "vcpu %u: KVM_SET_MSRS set %d of %u saved MSRs",
				   i, rc, ((const struct kvm_msrs *)(const void *)b->data)->nmsrs);
	if (ioctl(v->fd, KVM_SET_FPU, lm_snap_vcpu_blob(sv, "fpu")->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_FPU: %s", i, strerror(errno));
	/* XCRs before the XSAVE area they enable; both after CPUID */
	if ((b = lm_snap_vcpu_blob(sv, "xcrs")) &&
	    ioctl(v->fd, KVM_SET_XCRS, b->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_XCRS: %s", i, strerror(errno));
	if ((b = lm_snap_vcpu_blob(sv, "xsave")) &&
	    ioctl(v->fd, KVM_SET_XSAVE, b->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_XSAVE: %s", i, strerror(errno));
	if (ioctl(v->fd, KVM_SET_REGS, lm_snap_vcpu_blob(sv, "regs")->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_REGS: %s", i, strerror(errno));
	if ((b = lm_snap_vcpu_blob(sv, "events")) &&
	    ioctl(v->fd, KVM_SET_VCPU_EVENTS, b->data) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_VCPU_EVENTS: %s", i, strerror(errno));
	return 0;
}

int vcpu_state__pack(const struct lm_snap_vcpu *sv, uint8_t **out,
		     uint32_t *out_len)
{
	size_t len = 0, at = 0;
	uint8_t *buf;

	for (unsigned i = 0; i < sv->nr_blobs; i++)
		len += 1 + strlen(sv->blobs[i].name) + 4 + sv->blobs[i].len;
	if (len > VCPU_STATE_MAX)
		return util_error(-E2BIG, "vcpu %u: state of %zu bytes, at most %d travel in one message",
				   sv->id, len, VCPU_STATE_MAX);
	buf = malloc(len ? len : 1);
	if (!buf)
		return util_error(-ENOMEM, "vcpu %u: out of memory", sv->id);
	for (unsigned i = 0; i < sv->nr_blobs; i++) {
		const struct lm_snap_blob *b = &sv->blobs[i];
		uint8_t nl = (uint8_t)strlen(b->name);
		uint32_t bl = (uint32_t)b->len;

		buf[at++] = nl;
		memcpy(buf + at, b->name, nl);
		at += nl;
		memcpy(buf + at, &bl, 4);
		at += 4;
		memcpy(buf + at, b->data, b->len);
		at += b->len;
	}
	*out = buf;
	*out_len = (uint32_t)len;
	return 0;
}

int vcpu_state__unpack(const uint8_t *buf, uint32_t len, unsigned id,
		       struct lm_snap_vcpu *sv, char *why, size_t n)
{
	uint32_t at = 0;

	memset(sv, 0, sizeof(*sv));
	sv->id = id;
	while (at < len) {
		char name[32];
		uint32_t bl;
		uint8_t nl = buf[at++];

		if (nl == 0 || nl >= sizeof(name) || len - at < nl + 4u) {
			snprintf(why, n, "vcpu %u: state truncated or malformed at byte %u (a name of %u bytes)",
				 id, at - 1, nl);
			goto bad;
		}
		memcpy(name, buf + at, nl);
		name[nl] = '\0';
		at += nl;
		memcpy(&bl, buf + at, 4);
		at += 4;
		if (bl > len - at) {
			snprintf(why, n, "vcpu %u: state '%.31s' claims %u bytes, %u remain",
				 id, name, bl, len - at);
			goto bad;
		}
		if (lm_snap_vcpu_add_blob(sv, name, buf + at, bl)) {
			snprintf(why, n, "%s", lm_last_error());
			goto bad;
		}
		at += bl;
	}
	if (vcpu_state__check(sv, why, n))
		goto bad;
	return 0;
bad:
	vcpu_state__snap_free(sv);
	return -EINVAL;
}
