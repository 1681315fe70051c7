/*
 * fault_exit.h - the exits that mean "a guest RAM page is missing",
 * handled on the vCPU's own thread. Each handler is called by the run
 * loop (vcpu.c) and returns to it: one that needs KVM to finish an
 * emulated access (immediate_exit) or to emulate one instruction at CPL 0
 * puts the vCPU in that step (v->step, v->emulating) and the loop's next
 * KVM_RUN does it; the loop then hands the exit back here.
 */
#ifndef LAZYMEM_VMM_FAULT_EXIT_H
#define LAZYMEM_VMM_FAULT_EXIT_H

struct lm_vcpu;

int fault_exit__mmio(struct lm_vcpu *v);
int fault_exit__memory_fault(struct lm_vcpu *v);
int fault_exit__fetch(struct lm_vcpu *v);
int fault_exit__efault(struct lm_vcpu *v);

/* The exit that ends an immediate_exit completion (v->step is
 * LM_VCPU_COMPLETE): finish the held page. */
int fault_exit__complete(struct lm_vcpu *v, int err);
/* The exit of the one instruction KVM emulated at CPL 0 (v->emulating). */
int fault_exit__emulated(struct lm_vcpu *v, int err);

#endif
