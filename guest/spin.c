/*
 * spin.c - a guest that never makes progress, for the watchdog: the run
 * must fail after --timeout, with every vCPU kicked out of KVM_RUN.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	(void)mb;
	lm_call(LM_CALL_START);
	for (;;)
		__asm__ volatile("pause");
	return 0;
}
