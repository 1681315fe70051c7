/*
 * vm_opts.h - option values shared by "lazymem vm run" and "lazymem bench
 * paging". Each returns 0 or -EINVAL; the caller names the option.
 */
#ifndef LAZYMEM_CLI_VM_OPTS_H
#define LAZYMEM_CLI_VM_OPTS_H

#include <lazymem/region.h>

#include "vmm/vm.h"

int vm_opt_uint(const char *s, unsigned long min, unsigned long max,
		unsigned long *out);
int vm_opt_backing(const char *s, enum lm_backing *out);
int vm_opt_guest_pages(const char *s, uint64_t *out);
int vm_opt_placement(const char *s, enum lm_vm_placement *out);
/* "10%" of RAM or a size ("64M") -> pages per vCPU (at least 1). */
/* "10%" -> 0.1; (0, 100] only. */
int vm_opt_percent(const char *s, double *fraction);
int vm_opt_ws(const char *s, uint64_t mem, uint64_t page_size,
	      unsigned vcpus, uint64_t *pages_per_vcpu);

#endif
