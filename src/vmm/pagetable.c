/*
 * pagetable.c - the guest's x86-64 page tables, built by the VMM into the
 * reserved area before any vCPU runs. Virtual equals physical.
 *
 * The reserved area (first GiB) is mapped with 2 MiB pages. Guest RAM is
 * mapped with 4 KiB pages by default, as the kernel's own KVM demand-paging
 * test does, or 2 MiB pages. On this shadow-paging backend the guest's
 * page-table shape changes the cost of every fault, which is why it is an
 * option. 1 GiB guest pages are refused by this host.
 *
 * Tables come from the reserved area only, so the MMU's page walk never
 * touches lazily filled memory. A and D are preset so the walk never has to
 * write them back.
 */
#include <errno.h>
#include <string.h>

#include "vmm/vm.h"
#include "vmm/pagetable.h"

#define PTE_P	0x001ULL
#define PTE_RW	0x002ULL
#define PTE_A	0x020ULL
#define PTE_D	0x040ULL
#define PTE_PS	0x080ULL
#define PTE_US	0x004ULL	/* user: the guest runs at CPL 3, see vcpu.c */
#define TABLE	(PTE_P | PTE_RW | PTE_US | PTE_A)
#define LEAF	(PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D)

#define SZ_2M	(2ULL << 20)
#define SZ_1G	(1ULL << 30)

uint64_t pagetable__size(uint64_t ram_size, uint64_t guest_page_size)
{
	uint64_t pages = 3 + (ram_size + SZ_1G - 1) / SZ_1G;

	if (guest_page_size == 4096)
		pages += (ram_size + SZ_2M - 1) / SZ_2M;
	return pages * 4096;
}

struct pt_alloc {
	uint8_t *reserved;
	uint64_t next;		/* guest-physical address of the next table */
};

static uint64_t *pt__alloc(struct pt_alloc *a, uint64_t *gpa)
{
	*gpa = a->next;
	a->next += 4096;
	return (uint64_t *)(void *)(a->reserved + *gpa);
}

void pagetable__build(uint8_t *reserved, uint64_t ram_size,
		      uint64_t guest_page_size, uint64_t reserved_size)
{
	struct pt_alloc a = { reserved, LM_GPA_PGTABLE };
	uint64_t pml4_gpa, pdpt_gpa, pd_gpa, *pml4, *pdpt, *pd;

	memset(reserved + LM_GPA_PGTABLE, 0,
	       pagetable__size(ram_size, guest_page_size));
	pml4 = pt__alloc(&a, &pml4_gpa);
	pdpt = pt__alloc(&a, &pdpt_gpa);
	pd = pt__alloc(&a, &pd_gpa);
	pml4[0] = pdpt_gpa | TABLE;
	pdpt[0] = pd_gpa | TABLE;
	for (uint64_t i = 0; i < reserved_size / SZ_2M && i < 512; i++)
		pd[i] = i * SZ_2M | LEAF | PTE_PS;

	for (uint64_t g = 0; g * SZ_1G < ram_size; g++) {
		uint64_t gb = LM_GPA_RAM + g * SZ_1G;

		pd = pt__alloc(&a, &pd_gpa);
		pdpt[gb / SZ_1G] = pd_gpa | TABLE;
		for (uint64_t e = 0; e < 512 && g * SZ_1G + e * SZ_2M < ram_size;
		     e++) {
			uint64_t base = gb + e * SZ_2M, pt_gpa, *pt;

			if (guest_page_size == SZ_2M) {
				pd[e] = base | LEAF | PTE_PS;
				continue;
			}
			pt = pt__alloc(&a, &pt_gpa);
			pd[e] = pt_gpa | TABLE;
			for (uint64_t k = 0; k < 512; k++)
				pt[k] = (base + k * 4096) | LEAF;
		}
	}
}

int pagetable__walk(const uint8_t *reserved, uint64_t reserved_size,
		    uint64_t la, uint64_t *gpa)
{
	uint64_t table = LM_GPA_PGTABLE;

	for (int level = 4; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t e;

		if (table + 4096 > reserved_size)
			return -EFAULT;
		memcpy(&e, reserved + table + ((la >> shift) & 511) * 8, 8);
		if (!(e & PTE_P))
			return -EFAULT;
		if (level == 1 || (level <= 3 && (e & PTE_PS))) {
			uint64_t mask = (1ULL << shift) - 1;

			*gpa = (e & 0x000ffffffffff000ULL & ~mask) | (la & mask);
			return 0;
		}
		table = e & 0x000ffffffffff000ULL;
	}
	return -EFAULT;
}
