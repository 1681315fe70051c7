/*
 * uffd.c - userfaultfd set-up and the resolve ioctls.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/uffd.h"

static int uffd_new(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0)
		return fd;
	/* vm.unprivileged_userfaultfd=0 refuses the syscall to unprivileged
	 * users; /dev/userfaultfd is the sanctioned way around it. */
	if (errno == EPERM) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			int err;

			fd = ioctl(dev, _IO(0xAA, 0x00), O_CLOEXEC | O_NONBLOCK);
			err = errno;
			close(dev);
			if (fd >= 0)
				return fd;
			errno = err;	/* the ioctl's reason, not close()'s */
		}
	}
	return -errno;
}

/* A new userfaultfd after the UFFDIO_API handshake asking for `features`;
 * *got is what the kernel granted, 0 (nothing) when there is no fd. */
static int uffd_open_api(uint64_t features, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd;

	*got = 0;
	fd = uffd_new();
	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*got = api.features;
	return fd;
}

int lm_uffd_open(uint64_t features, int *fd_out)
{
	uint64_t got;
	int fd = uffd_open_api(features, &got);

	if (fd < 0)
		return fd;
	if ((got & features) != features) {
		close(fd);
		return -EOPNOTSUPP;
	}
	*fd_out = fd;
	return 0;
}

int lm_uffd_probe_features(uint64_t *features)
{
	/* Asking for none makes the kernel report all it has. */
	int fd = uffd_open_api(0, features);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int lm_uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/*
 * The resolve ioctls report progress in a field of their own; -EAGAIN means
 * the mm changed under us (or only a part was done): the rest is retried.
 */
int lm_uffd_copy(int uffd, void *dst, const void *src, uint64_t len, bool wake)
{
	return lm_uffd_copy_mode(uffd, dst, src, len,
				 wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE);
}

int lm_uffd_copy_mode(int uffd, void *dst, const void *src, uint64_t len,
		      uint64_t mode)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
		.mode = mode,
	};

	for (;;) {
		c.copy = 0;
		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (c.copy > 0) {
			c.dst += (uint64_t)c.copy;
			c.src += (uint64_t)c.copy;
			c.len -= (uint64_t)c.copy;
		}
	}
}

static int range_ioctl(int uffd, unsigned long ioc, void *req,
		       struct uffdio_range *range, __s64 *done)
{
	for (;;) {
		*done = 0;
		if (ioctl(uffd, ioc, req) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (*done > 0) {
			range->start += (uint64_t)*done;
			range->len -= (uint64_t)*done;
		}
	}
}

int lm_uffd_zeropage(int uffd, void *dst, uint64_t len, bool wake)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};

	return range_ioctl(uffd, UFFDIO_ZEROPAGE, &z, &z.range, &z.zeropage);
}

int lm_uffd_continue(int uffd, void *dst, uint64_t len, bool wake)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = wake ? 0 : UFFDIO_CONTINUE_MODE_DONTWAKE,
	};

	return range_ioctl(uffd, UFFDIO_CONTINUE, &c, &c.range, &c.mapped);
}

int lm_uffd_poison(int uffd, void *dst, uint64_t len, bool wake)
{
	struct uffdio_poison p = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = wake ? 0 : UFFDIO_POISON_MODE_DONTWAKE,
	};

	return range_ioctl(uffd, UFFDIO_POISON, &p, &p.range, &p.updated);
}

int lm_uffd_wake(int uffd, void *dst, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)dst, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

int lm_uffd_copy_try(int uffd, void *dst, const void *src, uint64_t len,
		     bool wake, uint64_t *done)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
		.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
	};

	*done = 0;
	if (ioctl(uffd, UFFDIO_COPY, &c) == 0) {
		*done = len;
		return 0;
	}
	if (c.copy > 0)
		*done = (uint64_t)c.copy;
	return -errno;
}

int lm_uffd_zeropage_try(int uffd, void *dst, uint64_t len, bool wake,
			 uint64_t *done)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};

	*done = 0;
	if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0) {
		*done = len;
		return 0;
	}
	if (z.zeropage > 0)
		*done = (uint64_t)z.zeropage;
	return -errno;
}

int lm_uffd_writeprotect(int uffd, void *addr, uint64_t len, bool protect,
			 bool wake)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		/* The kernel refuses DONTWAKE with WP: protecting wakes
		 * nobody anyway. */
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP
			: wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};

	/* No progress field: the ioctl is all or nothing, and EAGAIN (the
	 * mm changing under it) is retried whole, which is idempotent. */
	for (;;) {
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w) == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}
