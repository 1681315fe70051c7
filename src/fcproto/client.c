/*
 * client.c - the VMM side of the protocol (see client.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "fcproto/client.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

int fc_guest_map(struct fc_guest *g, uint64_t size, uint64_t page_size,
		 unsigned nregions)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	void *p;

	memset(g, 0, sizeof(*g));
	g->uffd = g->sock = -1;
	if (!nregions || size % ((uint64_t)nregions * page_size))
		return -EINVAL;
	/* Firecracker: anonymous private memory, or hugetlbfs-backed
	 * shared memory for 2 MiB pages. */
	if (page_size == (2u << 20))
		flags = MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB |
			MAP_NORESERVE;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (page_size == 4096)
		madvise(p, size, MADV_NOHUGEPAGE);
	g->mem = p;
	g->size = size;
	g->page_size = page_size;
	g->nregions = nregions;
	return 0;
}

int fc_guest_register(struct fc_guest *g)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_REMOVE | g->extra_features,
	};
	uint64_t part = g->size / g->nregions;

	/* No UFFD_USER_MODE_ONLY: faults from kernel mode (KVM, read(2)
	 * into guest memory) are delivered too. */
	g->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (g->uffd < 0)
		return -errno;
	if (ioctl(g->uffd, UFFDIO_API, &api) < 0)
		return -errno;
	for (unsigned i = 0; i < g->nregions; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)g->mem + i * part,
				   .len = part },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(g->uffd, UFFDIO_REGISTER, &reg) < 0)
			return -errno;
	}
	return 0;
}

char *fc_guest_json(const struct fc_guest *g)
{
	uint64_t part = g->size / g->nregions;
	size_t cap = 64 + 192 * (size_t)g->nregions, n = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	n += (size_t)snprintf(s + n, cap - n, "[");
	for (unsigned i = 0; i < g->nregions; i++)
		n += (size_t)snprintf(s + n, cap - n,
			"%s{\"base_host_virt_addr\":%llu,\"size\":%llu,"
			"\"offset\":%llu,\"page_size\":%llu,"
			"\"page_size_kib\":%llu}", i ? "," : "",
			(unsigned long long)((uintptr_t)g->mem + i * part),
			(unsigned long long)part,
			(unsigned long long)(i * part),
			(unsigned long long)g->page_size,
			(unsigned long long)g->page_size);
	snprintf(s + n, cap - n, "]");
	return s;
}

int fc_client_send(const char *path, const char *json, size_t len,
		   const int *fds, int nfds, int *sock_out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	union {
		char b[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)json, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int s, err;

	if (nfds > 16 || strlen(path) >= sizeof(a.sun_path))
		return -EINVAL;
	strcpy(a.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		/* The control buffer is ours and large enough: the first
		 * header is its start. */
		c = (struct cmsghdr *)(void *)ctl.b;
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	if (sendmsg(s, &mh, MSG_NOSIGNAL) != (ssize_t)len)
		goto fail;
	*sock_out = s;
	return 0;
fail:
	err = -errno;
	close(s);
	return err;
}

int fc_guest_start(struct fc_guest *g, const char *path, uint64_t size,
		   uint64_t page_size, unsigned nregions)
{
	char *json;
	int err = fc_guest_map(g, size, page_size, nregions);

	if (!err)
		err = fc_guest_register(g);
	if (err)
		return err;
	json = fc_guest_json(g);
	if (!json)
		return -ENOMEM;
	err = fc_client_send(path, json, strlen(json), &g->uffd, 1, &g->sock);
	free(json);
	return err;
}

int fc_guest_balloon(struct fc_guest *g, uint64_t off, uint64_t len)
{
	int advice = g->page_size == 4096 ? MADV_DONTNEED : MADV_REMOVE;

	return madvise(g->mem + off, len, advice) < 0 ? -errno : 0;
}

void fc_guest_stop(struct fc_guest *g)
{
	if (g->sock >= 0)
		close(g->sock);
	if (g->uffd >= 0)
		close(g->uffd);
	if (g->mem)
		munmap(g->mem, g->size);
	g->mem = NULL;
	g->sock = g->uffd = -1;
}
