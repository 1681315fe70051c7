/*
 * reclaim/vm_reclaim.h - reclaim on a VM: the policy's thread on the guest
 * RAM region, held off while the VM is paused (struct lm_vm_hooks), so a
 * save of a paused VM never races an eviction.
 */
#ifndef LAZYMEM_RECLAIM_VM_RECLAIM_H
#define LAZYMEM_RECLAIM_VM_RECLAIM_H

#include "reclaim/reclaimer.h"
#include "vmm/vm.h"

/* After lm_vm_create with cfg.store = lm_reclaimer_store(rc): register
 * the hooks and start rc on the VM's RAM region. 0 or -errno (util_error). */
int lm_vm_reclaim_attach(struct lm_vm *vm, struct lm_reclaimer *rc);

#endif
