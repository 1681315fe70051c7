/*
 * vcpu_state.h - a vCPU's state as a service of the VMM to the features
 * above it: capture it on the vCPU's own thread (at the save point, or
 * when lm_vm_pause stops the vCPU), free it, turn it into the snapshot
 * format's named blobs and back, apply it to a vCPU, pack it for the wire.
 * Snapshots (src/vmsnap) and live migration (src/migrate) share it.
 */
#ifndef LAZYMEM_VMM_VCPU_STATE_H
#define LAZYMEM_VMM_VCPU_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat/linux_compat.h"
#include <linux/kvm.h>

/* A vCPU's state as captured on its own thread (vcpu_state__capture). */
struct lm_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	/* saved only where KVM supports them (have_*): XSAVE area, XCRs,
	 * pending events (exception, interrupt shadow, NMI) */
	struct kvm_xsave *xsave;	/* allocated: the struct ends in a
					 * flexible array in newer headers */
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	bool have_xsave, have_xcrs, have_events;
	struct kvm_msrs *msrs;		/* with its entries */
	size_t msrs_len;
	struct kvm_cpuid2 *cpuid;	/* with its entries */
	size_t cpuid_len;
};

struct lm_vcpu;
struct lm_snap_vcpu;

/* On the vCPU's thread, once KVM has completed the instruction of the last
 * exit (the run loop re-enters with immediate_exit first: vcpu.c): read
 * every register into v->saved and set v->at_save. 0 or -errno (the vCPU
 * failed with why). */
int vcpu_state__capture(struct lm_vcpu *v);
void vcpu_state__free(struct lm_vcpu_state *st);

/* As the snapshot format's named blobs (lazymem/snapshot.h). */
#define VCPU_STATE_MAX 65536	/* packed, at most: one VCPU message */
int vcpu_state__to_snap(const struct lm_vcpu_state *st, unsigned id,
			struct lm_snap_vcpu *sv);
void vcpu_state__snap_free(struct lm_snap_vcpu *sv);
/* Every blob a resume needs, each of its size: 0, or -EINVAL and why. */
int vcpu_state__check(const struct lm_snap_vcpu *sv, char *why, size_t n);
int vcpu_state__apply(struct lm_vcpu *v, const struct lm_snap_vcpu *sv);
int vcpu_state__pack(const struct lm_snap_vcpu *sv, uint8_t **buf,
		     uint32_t *len);
/* From a peer: 0 with sv filled and checked, or -EINVAL and why. */
int vcpu_state__unpack(const uint8_t *buf, uint32_t len, unsigned id,
		       struct lm_snap_vcpu *sv, char *why, size_t n);

#endif
