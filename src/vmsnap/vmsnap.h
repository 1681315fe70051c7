/*
 * vmsnap.h - snapshots of a VM, a feature above the VMM: save a VM stopped
 * at its save point (save.c), restore it lazily (RAM on demand from the
 * snapshot, every page checked) or eagerly (restore.c), with its working
 * set recorded and prefetched (ws.c). docs/restore.md.
 */
#ifndef LAZYMEM_VMSNAP_H
#define LAZYMEM_VMSNAP_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm.h"

/* save.c: every vCPU must be stopped at the save point (cfg.save_point). */
int lm_vm_save(struct lm_vm *vm, const char *dir,
	       void (*progress)(uint64_t done, uint64_t total, void *arg),
	       void *arg);

enum lm_restore_mode {
	LM_RESTORE_LAZY,	/* resume at once, RAM on demand */
	LM_RESTORE_EAGER,	/* read all RAM, then resume (the baseline) */
	LM_RESTORE_LIMIT,	/* as eager, but the clock starts once RAM is in */
};

struct store_source_opts;

struct lm_restore_opts {
	const char *dir;		/* a directory, or a store URL
					 * (http(s)://HOST/BUCKET/PREFIX) */
	const struct store_source_opts *store;	/* URL: cache, requests */
	enum lm_restore_mode mode;
	enum lm_vm_delivery delivery;	/* lazy: exit, hybrid, handler, minor */
	bool background;		/* lazy: background fill */
	enum lm_thp thp;		/* lazy: huge pages once ranges fill */
	double ws_fraction;		/* > 0: working set, a fraction of RAM,
					 * instead of the saved one */
	const char *record_ws;		/* write the pages touched here */
	const char *prefetch;		/* install these pages ahead */
	unsigned timeout_ms;
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
};

struct lm_restore_result {
	struct lm_vm_result run;
	unsigned nr_vcpus;
	uint64_t mem_size, ws_pages;
	double first_instruction_ms;	/* restore call -> first KVM_RUN */
	double seconds;			/* restore call -> last vCPU done */
	uint64_t pages_faulted;		/* installed on a vCPU's demand */
	uint64_t pages_prefetched;
	double prefetch_seconds;	/* the prefetch thread's whole pass */
	bool prefetch_image;		/* it read the working-set image */
	uint64_t ws_recorded;
	uint64_t ws_loaded;
};

int lm_vm_restore(const struct lm_restore_opts *o,
		  struct lm_restore_result *res);

#endif
