/*
 * foreign_internal.h - the foreign space object (see lazymem/foreign.h):
 * one userfaultfd of another process, its ranges, the thread reading it.
 */
#ifndef LAZYMEM_CORE_FOREIGN_INTERNAL_H
#define LAZYMEM_CORE_FOREIGN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <lazymem/foreign.h>
#include "core/region_internal.h"

struct lm_foreign {
	char name[64];
	int uffd;
	unsigned nr;
	struct lm_region *region[LM_FOREIGN_MAX_RANGES];
	struct lm_source *slice[LM_FOREIGN_MAX_RANGES];
	uint64_t src_off[LM_FOREIGN_MAX_RANGES];
	struct lm_foreign_config cfg;	/* as created, for lm_foreign_fork */
	struct lm_foreign_range range[LM_FOREIGN_MAX_RANGES];
	const struct lm_foreign_ops *ops;
	void *arg;
	pthread_rwlock_t events_lock;	/* see prefetch.c */
	bool lock_ready;
	pthread_t thread;
	bool running;
	int stop_fd;
	_Atomic uint64_t fault_msgs, events;
};

#endif
