/*
 * uffd.h - thin wrappers around the userfaultfd ioctls.
 *
 * Each returns 0 or -errno, retries the kernel's transient EAGAIN and
 * finishes partial operations, so callers see one outcome per call. They
 * are async-signal-safe (plain ioctls), as the SIGBUS path needs.
 */
#ifndef LAZYMEM_CORE_UFFD_H
#define LAZYMEM_CORE_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat/linux_compat.h"

/* Open a userfaultfd, negotiate `features` (all required). */
int lm_uffd_open(uint64_t features, int *fd_out);
/* Which features this kernel offers (for messages and skips). */
int lm_uffd_probe_features(uint64_t *features);
int lm_uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode);

/* wake=false passes DONTWAKE: nobody sleeps in SIGBUS mode. */
int lm_uffd_copy(int uffd, void *dst, const void *src, uint64_t len,
		 bool wake);
/* mode: UFFDIO_COPY_MODE_* (DONTWAKE, WP: the page stays protected). */
int lm_uffd_copy_mode(int uffd, void *dst, const void *src, uint64_t len,
		      uint64_t mode);
/* Write-protect [addr, addr+len) or lift it (protect=false; wake: wake a
 * blocking sleeper on the range). Registered in WP mode only. */
int lm_uffd_writeprotect(int uffd, void *addr, uint64_t len, bool protect,
			 bool wake);
int lm_uffd_zeropage(int uffd, void *dst, uint64_t len, bool wake);
int lm_uffd_continue(int uffd, void *dst, uint64_t len, bool wake);
int lm_uffd_poison(int uffd, void *dst, uint64_t len, bool wake);
int lm_uffd_wake(int uffd, void *dst, uint64_t len);

/*
 * One attempt, for a userfaultfd of another process whose events this
 * thread may have to read itself: -EAGAIN is returned (with *done bytes
 * installed) instead of retried, because while a REMOVE/UNMAP event is
 * pending the kernel refuses every install until someone reads the event.
 */
int lm_uffd_copy_try(int uffd, void *dst, const void *src, uint64_t len,
		     bool wake, uint64_t *done);
int lm_uffd_zeropage_try(int uffd, void *dst, uint64_t len, bool wake,
			 uint64_t *done);

#endif
