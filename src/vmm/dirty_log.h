/*
 * dirty_log.h - dirty tracking through KVM's dirty log (manual protect),
 * a service of the VMM to the features that need written pages (live
 * migration's pre-copy rounds; live snapshots later).
 */
#ifndef LAZYMEM_VMM_DIRTY_LOG_H
#define LAZYMEM_VMM_DIRTY_LOG_H

#include <stdbool.h>
#include <stdint.h>

struct lm_vm;

/* Pages written since the last fetch, over the layout
 * (reserved area, then RAM; 4 KiB pages). fetch re-arms what it read.
 * Logging stays on for the VM's life: a migrated VM never runs again. */
/* ram false: the reserved area only (a post-copy migration pre-copies
 * only that); RAM's bits then read as clean. */
int lm_vm_dirty_log_start(struct lm_vm *vm, bool ram);
int lm_vm_dirty_log_fetch(struct lm_vm *vm, uint64_t *bitmap,
			  uint64_t *count);

#endif
