/*
 * vm_reclaim.c - reclaim as a feature of a VM, through struct lm_vm_hooks
 * only (the VMM calls no reclaim code): the policy runs on the guest RAM
 * region; each vCPU's pause holds eviction off and its resume lets it go.
 * Faults on evicted pages need nothing from here: the vCPU exit path calls
 * lm_fault_begin, which fetches a stored page from the store as it would
 * from the source.
 */
#include <errno.h>

#include "reclaim/vm_reclaim.h"
#include "util/error.h"

static void on_paused(struct lm_vcpu *v, void *arg)
{
	(void)v;
	lm_reclaimer_hold(arg, true);
}

static void on_resumed(struct lm_vcpu *v, void *arg)
{
	(void)v;
	lm_reclaimer_hold(arg, false);
}

int lm_vm_reclaim_attach(struct lm_vm *vm, struct lm_reclaimer *rc)
{
	struct lm_vm_hooks h = {
		.paused = on_paused, .resumed = on_resumed, .arg = rc,
	};
	int err;

	if (!vm->ram.region)
		return util_error(-EINVAL, "reclaim: the VM's RAM is not a "
				  "lazymem region (delivery limit, or an "
				  "fc-handler's)");
	err = lm_vm_hooks_add(vm, &h);
	if (err)
		return util_error(err, "reclaim: registering VM hooks: no "
				  "room (at most %d features)", LM_VM_MAX_HOOKS);
	return lm_reclaimer_start(rc, vm->ram.region);
}
