/*
 * client.h - the VMM side of the Firecracker page-fault-handler protocol,
 * done exactly as Firecracker does it: guest memory mapped anonymous
 * private (4 KiB pages) or on hugetlbfs (2 MiB pages, shared), one
 * userfaultfd (O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_EVENT_REMOVE, kernel
 * faults included) registered in MISSING mode over every region, then one
 * message on a Unix stream socket: the JSON region list with the
 * userfaultfd as SCM_RIGHTS. Used by the tests, `lazymem bench
 * fc-handler`, and any VMM of ours that hands its memory to a handler.
 */
#ifndef LAZYMEM_FCPROTO_CLIENT_H
#define LAZYMEM_FCPROTO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct fc_guest {
	uint8_t *mem;		/* all regions, back to back */
	uint64_t size, page_size;
	unsigned nregions;	/* equal parts of mem, cumulative offsets */
	int uffd;		/* kept open, as Firecracker does */
	int sock;		/* kept open: closing it says "gone" */
	/* Userfaultfd features beyond EVENT_REMOVE, for a VMM that enables
	 * more events (UNMAP, REMAP, FORK); Firecracker asks for none. Set
	 * between fc_guest_map (which clears it) and fc_guest_register. */
	uint64_t extra_features;
};

/* Map size bytes of 4096- or 2 MiB-page guest memory, unpopulated. */
int fc_guest_map(struct fc_guest *g, uint64_t size, uint64_t page_size,
		 unsigned nregions);
/* Create the userfaultfd and register every region. */
int fc_guest_register(struct fc_guest *g);
/* The message Firecracker sends for g (malloc'd). */
char *fc_guest_json(const struct fc_guest *g);
/* Connect to path and send json with fds attached (nfds may be 0). */
int fc_client_send(const char *path, const char *json, size_t len,
		   const int *fds, int nfds, int *sock_out);
/* map + register + send: a whole VM restore's memory hand-off. */
int fc_guest_start(struct fc_guest *g, const char *path, uint64_t size,
		   uint64_t page_size, unsigned nregions);
/* Drop [off, off+len) as a balloon does: MADV_DONTNEED (anonymous) or
 * MADV_REMOVE (hugetlbfs). */
int fc_guest_balloon(struct fc_guest *g, uint64_t off, uint64_t len);
/* Close the socket and userfaultfd, unmap. */
void fc_guest_stop(struct fc_guest *g);

#endif
