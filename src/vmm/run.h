/*
 * run.h - one run of a guest workload on a VM: load the image, start the
 * vCPU threads, watch them, collect; or resume vCPUs whose state and
 * memory were restored; or pause a running VM with its state captured.
 */
#ifndef LAZYMEM_VMM_RUN_H
#define LAZYMEM_VMM_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#include "vmm/guest_abi.h"
#include "vmm/vcpu.h"

struct lm_vm;

struct lm_vm_workload {
	enum lm_workload kind;
	bool write;
	uint64_t iterations;
	uint64_t seed;
	uint64_t stos_len;
	unsigned timeout_ms;		/* no progress for this long: fail */
	uint64_t ws_pages;		/* restore: pages per vCPU after the save
					 * point; migrate: its hot set */
	/* Set every vCPU's mailbox stop flag this long after the run
	 * starts (0: never): how long a workload that loops until stopped
	 * (counter, migrate) runs. */
	unsigned stop_after_ms;
};

struct lm_vm_result {
	double seconds;		/* measured part: first START to last MARK */
	double cpu_seconds;	/* CPU time of the whole process (vCPUs and
				 * handler threads) in that window: immune to
				 * other load on a shared machine */
	double total_seconds;	/* vCPU threads start to last DONE */
	uint64_t pages;		/* pages touched in the measured part */
	uint64_t words_checked;
	uint64_t mismatches;
	uint64_t first_bad_gpa, first_expected, first_got;
	uint64_t counter;	/* counter workload: vCPU 0's iterations */
	double counter_seconds;
	uint64_t host_checked;	/* pages the VMM sampled itself */
	uint64_t host_mismatches;
	bool verified;		/* guest and host checks ran and passed */
	struct lm_vm_exits exits;
	bool have_stats;
	struct lm_stats stats;	/* the region's own counters */
};

int lm_vm_run(struct lm_vm *vm, const struct lm_vm_workload *wl,
	      struct lm_vm_result *res);
/* Run vCPUs whose state and memory were restored (no image load, no
 * reset, mailboxes as they are); the VMM's own sample check is left to
 * the caller (lm_vm_host_check) so that it can read statistics first. */
int lm_vm_resume(struct lm_vm *vm, const struct lm_vm_workload *wl,
		 struct lm_vm_result *res);
void lm_vm_host_check(struct lm_vm *vm, struct lm_vm_result *res);
/* From another thread while lm_vm_run or lm_vm_resume runs: stop every
 * vCPU between two exits with its state captured (v->saved, at_save),
 * as at a save point; that run then returns 0. 0 once all have stopped,
 * or -ETIMEDOUT. */
int lm_vm_pause(struct lm_vm *vm, unsigned timeout_ms);

#endif
