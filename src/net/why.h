/*
 * why.h - formatting an error message without malloc or locale, so the
 * demand path can explain a refused frame from inside a SIGBUS handler
 * (snprintf is not on the async-signal-safe list).
 *
 * Conversions: %s (string), %u (unsigned), %U (uint64_t), %X (uint64_t in
 * hex with 0x), %% . Anything else is copied as is.
 */
#ifndef LAZYMEM_NET_WHY_H
#define LAZYMEM_NET_WHY_H

#include <stddef.h>
#include <stdint.h>

/* Returns -EPROTO, the error every refused frame carries. */
int lm_net_why(char *why, size_t len, const char *fmt, ...);
/* Same, returning nothing: for messages that are not protocol errors. */
void lm_net_whyf(char *why, size_t len, const char *fmt, ...);

#endif
