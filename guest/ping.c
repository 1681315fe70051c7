/*
 * ping.c - the floor under every exit-based delivery: iterations calls to
 * the VMM that do nothing, so the time per call is one round trip out of
 * KVM_RUN to the vCPU thread and back. Touches no RAM.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	uint64_t n = mb->iterations ? mb->iterations : 1;

	lm_call(LM_CALL_START);
	for (uint64_t i = 0; i < n; i++) {
		lm_call(LM_CALL_PING);
		mb->progress++;
	}
	mb->touched = n;
	lm_call(LM_CALL_MARK);
	mb->checked = 1;	/* nothing to verify; the calls all came back */
	return 0;
}
