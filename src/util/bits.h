/*
 * bits.h - small number helpers: min/max and the weight of a bitmap of
 * 64-bit words (the KVM dirty log, a migration's page lists, the
 * snapshot's page sets all count bits the same way).
 */
#ifndef LAZYMEM_UTIL_BITS_H
#define LAZYMEM_UTIL_BITS_H

#include <stdint.h>

#define LM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LM_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Set bits of a bitmap of words 64-bit words. */
static inline uint64_t lm_bitmap_weight(const uint64_t *b, uint64_t words)
{
	uint64_t c = 0;

	for (uint64_t w = 0; w < words; w++)
		c += (uint64_t)__builtin_popcountll(b[w]);
	return c;
}

#endif
