/*
 * guest_abi.h - the contract between the VMM (src/vmm) and the guest
 * workloads (guest/): guest-physical layout, the per-vCPU mailbox, the
 * port-I/O calls and the content pattern both sides compute.
 *
 * This header is compiled twice: into the lazymem binary and, freestanding,
 * into every guest image. It must only use fixed-width types and inline
 * arithmetic, and its layout must not depend on the compiler.
 */
#ifndef LAZYMEM_VMM_GUEST_ABI_H
#define LAZYMEM_VMM_GUEST_ABI_H

#include <stdint.h>

/*
 * Guest-physical layout. The reserved area (memslot 0, plain memory that
 * is always present) holds everything the guest needs that must never
 * fault: descriptor tables, mailboxes, code, stacks, page tables. Guest
 * RAM (memslot 1, the lazily filled region) starts at 4 GiB so the two
 * can never be confused. Virtual addresses equal physical ones.
 */
#define LM_GPA_GDT		0x1000ULL
#define LM_GPA_TSS		0x2000ULL
#define LM_GPA_SHARED		0x3000ULL	/* one page shared by all vCPUs */
#define LM_GPA_MAILBOX		0x10000ULL	/* 4 KiB per vCPU */
#define LM_GPA_CODE		0x100000ULL
#define LM_CODE_MAX		0x100000ULL
#define LM_GPA_STACKS		0x200000ULL
#define LM_STACK_SIZE		0x4000ULL
#define LM_GPA_PGTABLE		0x400000ULL
#define LM_GPA_RAM		0x100000000ULL
#define LM_MAX_VCPUS		64

/* The one port the guest calls the VMM through: outl(call number). */
#define LM_PORT_CALL		0x4c4d

enum lm_guest_call {
	LM_CALL_START = 1,	/* about to begin the measured part */
	LM_CALL_MARK = 2,	/* measured part finished */
	LM_CALL_DONE = 3,	/* all finished, results in the mailbox */
	LM_CALL_FAIL = 4,	/* unrecoverable: fail_* fields say why */
	LM_CALL_PING = 5,	/* nothing: measures one exit round trip */
	/* The save point: every vCPU of a run with --save stops here and the
	 * VM is saved; a restored VM resumes just after it. Otherwise a
	 * no-op. */
	LM_CALL_SAVE = 6,
};

enum lm_workload {
	LM_WL_TOUCH = 1,	/* one access per page of the vCPU's slice */
	LM_WL_RANDOM,		/* same pages, pseudo-random order */
	LM_WL_COUNTER,		/* vCPU 0 counts, the others touch */
	LM_WL_DIRTY,		/* write every page, iterations times */
	LM_WL_VERIFY,		/* check every word of the slice */
	LM_WL_LOCKINC,		/* every vCPU lock-increments every page */
	LM_WL_STOS,		/* rep stosb over the start of the slice */
	LM_WL_FETCH,		/* call code that lives in lazy RAM */
	LM_WL_PING,		/* iterations empty calls to the VMM */
	LM_WL_SPIN,		/* never progresses: the watchdog's test */
	LM_WL_RESTORE,		/* fill, save point, touch + verify a working set */
	LM_WL_MIGRATE,		/* fill, dirty a hot set until stop, verify all */
};

/* Mailbox: one 4 KiB page per vCPU at LM_GPA_MAILBOX + vcpu * 4096. */
struct lm_mailbox {
	/* in: written by the VMM before the vCPU starts */
	uint64_t workload;
	uint64_t vcpu;
	uint64_t nr_vcpus;
	uint64_t ram_base;	/* guest address of RAM */
	uint64_t ram_size;
	uint64_t slice_off;	/* this vCPU's slice, offset in RAM */
	uint64_t slice_size;
	uint64_t stride;	/* bytes per touched page (region page size) */
	uint64_t gen;		/* generation of the source content */
	uint64_t write;		/* touch/random: write instead of read */
	uint64_t iterations;	/* dirty passes, lockinc rounds */
	uint64_t seed;
	uint64_t stos_len;
	uint64_t shared;	/* guest address of the shared page */
	/* control: written by the VMM while the guest runs */
	volatile uint64_t stop;
	/* out: written by the guest */
	volatile uint64_t progress;	/* pages done so far */
	uint64_t touched;	/* pages accessed in the measured part */
	uint64_t counter;	/* counter loop iterations */
	uint64_t checked;	/* words verified */
	uint64_t mismatches;
	uint64_t fail_addr;	/* first mismatch (guest address) */
	uint64_t fail_expected;
	uint64_t fail_got;
	uint64_t fail_code;	/* LM_FAIL_* for LM_CALL_FAIL */
	uint64_t sum;		/* read results, so reads are not elided */
	/* restore workload (appended: older fields keep their offsets) */
	uint64_t ws_pages;	/* in: pages of the slice to touch after the
				 * save point (restore), or to dirty pass
				 * after pass (migrate); the VMM may rewrite
				 * it at restore, before the vCPU resumes */
	volatile uint64_t phase;	/* out: LM_PHASE_* */
};

enum lm_restore_phase {
	LM_PHASE_FILL = 1,	/* writing the slice */
	LM_PHASE_SAVED,		/* at the save point */
	LM_PHASE_RESUMED,	/* touching the working set */
	LM_PHASE_DIRTYING,	/* migrate: dirtying its hot set until stop */
	LM_PHASE_CHECKING,	/* migrate: stopped, checking every word */
};

enum lm_fail_code {
	LM_FAIL_BAD_WORKLOAD = 1,
	LM_FAIL_BAD_CONFIG,
	LM_FAIL_FETCH,		/* code in RAM returned the wrong value */
};

/* The shared page: barriers for workloads whose vCPUs meet. */
struct lm_shared {
	volatile uint64_t barrier;
};

/*
 * The content of guest RAM: word at RAM offset off of generation gen.
 * Generation 0 is all zeroes (what the kernel gives with no userfaultfd);
 * every other generation is a mix of address and generation, so a page
 * installed at the wrong place or from the wrong generation shows.
 */
static inline uint64_t lm_pattern(uint64_t off, uint64_t gen)
{
	uint64_t x;

	if (gen == 0)
		return 0;
	x = off * 0x9E3779B97F4A7C15ULL ^ gen * 0xC2B2AE3D27D4EB4FULL;
	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 29;
	return x;
}

/* lockinc: the word of each page that every vCPU increments. Never the
 * last word, which the VMM samples on its own. */
static inline uint64_t lm_lockinc_word(uint64_t page_index)
{
	return page_index % 511;
}

/* fetch: each page begins with "mov rax, imm64; ret" (11 bytes). */
#define LM_FETCH_CODE_BYTES 16

#endif
