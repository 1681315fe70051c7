/*
 * pattern.h - the page source whose content the guests verify: every
 * word a function of its address and a generation (guest_abi.h).
 */
#ifndef LAZYMEM_VMM_PATTERN_H
#define LAZYMEM_VMM_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

int pattern_source__create(uint64_t size, uint64_t gen, uint64_t stride,
			   bool code, struct lm_source **out);

#endif
