/*
 * vm.c - one connection is one VM: the handshake (one JSON message with
 * the userfaultfd attached), serving it through a foreign space, and
 * teardown when the VMM goes away.
 *
 * A bad message refuses only its own connection: the reason goes to the
 * log and, as one line, back to the peer; other VMs are not affected.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/bits.h"
#include "util/clock.h"
#include "fc/fc.h"

struct fc_vm *fc_vm_new(struct fc_server *s, int sock)
{
	struct fc_vm *vm = calloc(1, sizeof(*vm));
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	if (!vm)
		return NULL;
	vm->buf = malloc(FC_MSG_MAX);
	if (!vm->buf) {
		free(vm);
		return NULL;
	}
	vm->srv = s;
	vm->id = atomic_fetch_add(&s->next_id, 1) + 1;
	vm->sock = sock;
	vm->t_connect_ns = lm_now_ns();
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		vm->pid = cred.pid;
	return vm;
}

bool fc_vm_handshake_expired(const struct fc_vm *vm, uint64_t now_ns)
{
	return !vm->serving &&
	       now_ns - vm->t_connect_ns > FC_HANDSHAKE_MS * 1000000ull;
}

void fc_vm_refuse(struct fc_vm *vm, const char *fmt, ...)
{
	char why[512], line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fc_log(vm->srv, "vm %u (pid %d): connection refused: %s", vm->id,
	       (int)vm->pid, why);
	n = snprintf(line, sizeof(line), "lazymem fc-handler: refused: %s\n",
		     why);
	if (send(vm->sock, line, (size_t)LM_MIN(n, (int)sizeof(line) - 1),
		 MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* The peer may be gone already; the log has the reason. */
	}
	/* A VMM whose memory nobody serves hangs on its first fault. */
	if (vm->srv->o.kill_peer && vm->pid > 0 && vm->pid != getpid()) {
		fc_log(vm->srv, "vm %u (pid %d): killing the peer "
		       "(--kill-peer-on-error): its guest would hang on its "
		       "first fault", vm->id, (int)vm->pid);
		kill(vm->pid, SIGKILL);
	}
}

/* "region 1, file offset 0x..." for the page at addr, or "no region". */
static void describe(const struct fc_vm *vm, uint64_t addr, char *b, size_t n)
{
	for (unsigned i = 0; i < vm->layout.n; i++) {
		const struct fc_region *r = &vm->layout.r[i];

		if (addr - r->base < r->size) {
			snprintf(b, n, "region %u, file offset 0x%llx", i,
				 (unsigned long long)(r->offset + addr -
						      r->base));
			return;
		}
	}
	snprintf(b, n, "outside every region the VMM announced");
}

static void on_fail(struct lm_foreign *f, uint64_t addr, int err, void *arg)
{
	struct fc_vm *vm = arg;
	bool kill_it = vm->srv->o.kill_peer && vm->pid > 0;
	char where[128];

	(void)f;
	/* ESRCH: the VMM's memory is gone, it is exiting; not a fault of
	 * ours to report. */
	if (err == -ESRCH)
		return;
	describe(vm, addr, where, sizeof(where));
	if (err == -EOPNOTSUPP)
		fc_log(vm->srv, "vm %u (pid %d): the VMM moved its memory "
		       "(mremap at 0x%llx); lazymem does not follow a remap "
		       "and cannot serve the moved range%s", vm->id,
		       (int)vm->pid, (unsigned long long)addr,
		       kill_it ? "; killing the peer" : "");
	else
		fc_log(vm->srv, "vm %u (pid %d): fault at 0x%llx (%s) cannot "
		       "be served: %s; %s", vm->id, (int)vm->pid,
		       (unsigned long long)addr, where, strerror(-err),
		       kill_it ? "killing the peer (--kill-peer-on-error)"
			       : "the page is poisoned, so the faulting access "
				 "gets SIGBUS instead of hanging");
	if (kill_it && !atomic_exchange(&vm->failed, true))
		kill(vm->pid, SIGKILL);
	else
		atomic_store(&vm->failed, true);
}

/* First-touch order of demand faults, for --record-ws. Only this VM's
 * handler thread gets here. */
static void record(struct fc_vm *vm, uint64_t off)
{
	uint64_t b = off >> 12;

	if (vm->rec_seen[b / 8] & (1u << (b % 8)))
		return;
	vm->rec_seen[b / 8] |= (uint8_t)(1u << (b % 8));
	if (vm->rec_n == vm->rec_cap) {
		size_t cap = vm->rec_cap ? 2 * vm->rec_cap : 4096;
		uint64_t *p = realloc(vm->rec, cap * sizeof(*p));

		if (!p)
			return;
		vm->rec = p;
		vm->rec_cap = cap;
	}
	vm->rec[vm->rec_n++] = off;
}

static void on_fault(struct lm_foreign *f, uint64_t src_off, void *arg)
{
	struct fc_vm *vm = arg;

	(void)f;
	if (!atomic_load_explicit(&vm->first_fault, memory_order_relaxed)) {
		atomic_store(&vm->t_first_fault_ns, lm_now_ns());
		atomic_store(&vm->first_fault, true);
		fc_prefetch_kick(vm);
	}
	if (vm->recording)
		record(vm, src_off);
}

static void on_fork(struct lm_foreign *f, int child_uffd, void *arg);

static const struct lm_foreign_ops fc_ops = {
	.fault = on_fault,
	.fail = on_fail,
	.fork = on_fork,
};

/*
 * The VMM forked with UFFD_FEATURE_EVENT_FORK: serve the child's copy of
 * guest memory as a VM of its own (same regions and file, the parent's
 * removed pages zero). It has no socket, so it lives as long as its
 * parent's connection. Runs on the parent's handler thread; the loop
 * thread gets the new VM through the fork pipe.
 */
static void on_fork(struct lm_foreign *f, int child_uffd, void *arg)
{
	struct fc_vm *vm = arg, *child = calloc(1, sizeof(*child));
	struct fc_server *s = vm->srv;

	if (!child) {
		close(child_uffd);
		fc_log(s, "vm %u: out of memory for its forked child", vm->id);
		return;
	}
	child->srv = s;
	child->id = atomic_fetch_add(&s->next_id, 1) + 1;
	child->parent_id = vm->id;
	child->sock = -1;
	child->t_connect_ns = lm_now_ns();
	child->layout = vm->layout;
	child->serving = true;
	if (lm_foreign_fork(f, child_uffd, &fc_ops, child, &child->f)) {
		fc_log(s, "vm %u: cannot serve its forked child: %s", vm->id,
		       lm_last_error());
		free(child);
		return;
	}
	fc_log(s, "vm %u (pid %d): the VMM forked; its child's memory is "
	       "served as vm %u", vm->id, (int)vm->pid, child->id);
	if (write(s->fork_pipe[1], &child, sizeof(child)) != sizeof(child)) {
		fc_log(s, "vm %u: fork pipe: %s", vm->id, strerror(errno));
		lm_foreign_destroy(child->f);
		free(child);
	}
}

static bool is_userfaultfd(int fd, char *what, size_t n)
{
	char link[64];
	ssize_t len;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	len = readlink(link, what, n - 1);
	if (len < 0) {
		snprintf(what, n, "unknown descriptor");
		return false;
	}
	what[len] = '\0';
	return !strcmp(what, "anon_inode:[userfaultfd]");
}

static int start_serving(struct fc_vm *vm)
{
	struct fc_server *s = vm->srv;
	struct lm_foreign_range ranges[FC_MAX_REGIONS];
	struct lm_foreign_config c = {
		.ranges = ranges,
		.nr_ranges = vm->layout.n,
		.source = s->mem,
		.image = s->image,
		.background = s->o.prefetch == FC_PREFETCH_ALL,
		.ops = &fc_ops,
		.arg = vm,
	};
	char name[32], what[128];
	int err;

	if (vm->fds_truncated || vm->nfds > 1) {
		fc_vm_refuse(vm, "%s%u file descriptors attached; expected "
			     "exactly one (the userfaultfd)",
			     vm->fds_truncated ? "more than " : "", vm->nfds);
		return -1;
	}
	if (vm->nfds == 0) {
		fc_vm_refuse(vm, "no file descriptor attached; expected the "
			     "userfaultfd as SCM_RIGHTS with the message");
		return -1;
	}
	if (!is_userfaultfd(vm->fds[0], what, sizeof(what))) {
		fc_vm_refuse(vm, "the attached descriptor is %s, not a "
			     "userfaultfd", what);
		return -1;
	}
	for (unsigned i = 0; i < vm->layout.n; i++)
		ranges[i] = (struct lm_foreign_range){
			.addr = vm->layout.r[i].base,
			.size = vm->layout.r[i].size,
			.page_size = vm->layout.r[i].page_size,
			.src_off = vm->layout.r[i].offset,
		};
	if (s->o.record_path && !s->record_taken) {
		vm->rec_seen = calloc(s->mem_size / 4096 / 8 + 1, 1);
		vm->recording = vm->rec_seen != NULL;
		s->record_taken = vm->recording;
	}
	snprintf(name, sizeof(name), "vm%u", vm->id);
	c.name = name;
	c.exact = vm->recording;
	c.uffd = vm->fds[0];
	vm->fds[0] = -1;
	vm->nfds = 0;
	vm->serving = true;	/* callbacks may run from here on */
	err = lm_foreign_create(&c, &vm->f);
	if (err) {
		vm->serving = false;
		if (vm->recording)	/* the next VM records instead */
			s->record_taken = vm->recording = false;
		fc_vm_refuse(vm, "%s", lm_last_error());
		return -1;
	}
	if (s->o.prefetch == FC_PREFETCH_WS && fc_prefetch_start(vm) < 0)
		fc_log(s, "vm %u: cannot start the working-set prefetch "
		       "thread; serving on demand only", vm->id);
	fc_log(s, "vm %u (pid %d): serving %u region%s, %s pages%s%s", vm->id,
	       (int)vm->pid, vm->layout.n, vm->layout.n == 1 ? "" : "s",
	       vm->layout.r[0].page_size == 4096 ? "4 KiB" : "2 MiB",
	       s->o.prefetch == FC_PREFETCH_ALL ? ", prefetching all"
	       : s->o.prefetch == FC_PREFETCH_WS ? ", working-set prefetch"
						 : "",
	       vm->recording ? ", recording its working set" : "");
	free(vm->buf);
	vm->buf = NULL;
	return 0;
}

/* Keep the descriptors that came with a message; count the ones beyond
 * what we accept (they are closed). */
static void take_fds(struct fc_vm *vm, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		int *fds;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)(void *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			if (vm->nfds < FC_MAX_FDS)
				vm->fds[vm->nfds++] = fds[i];
			else
				close(fds[i]);
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		vm->fds_truncated = true;
}

static int handshake_read(struct fc_vm *vm)
{
	union {
		char b[CMSG_SPACE(FC_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {
		.iov_base = vm->buf + vm->len,
		.iov_len = FC_MSG_MAX - vm->len,
	};
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.b, .msg_controllen = sizeof(ctl.b),
	};
	char why[512];
	ssize_t n;

	if (iov.iov_len == 0) {
		fc_vm_refuse(vm, "message longer than %u bytes", FC_MSG_MAX);
		return -1;
	}
	n = recvmsg(vm->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	take_fds(vm, &mh);
	if (n == 0) {
		fc_log(vm->srv, "vm %u (pid %d): closed before sending its "
		       "message", vm->id, (int)vm->pid);
		return -1;
	}
	vm->len += (size_t)n;
	switch (fc_protocol_parse(vm->buf, vm->len, vm->srv->mem_size,
				  &vm->layout, why, sizeof(why))) {
	case FC_PARSE_MORE:
		return 0;
	case FC_PARSE_BAD:
		fc_vm_refuse(vm, "%s", why);
		return -1;
	case FC_PARSE_OK:
		break;
	}
	return start_serving(vm);
}

int fc_vm_on_readable(struct fc_vm *vm)
{
	char junk[256];
	ssize_t n;

	if (!vm->serving)
		return handshake_read(vm);
	n = recv(vm->sock, junk, sizeof(junk), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (n > 0)
		fc_log(vm->srv, "vm %u (pid %d): %zd unexpected bytes after "
		       "its message; ignored", vm->id, (int)vm->pid, n);
	return 0;
}

static void write_ws(struct fc_vm *vm)
{
	struct fc_ws ws = {
		.page_size = vm->layout.r[0].page_size,
		.off = vm->rec,
		.n = vm->rec_n,
	};
	char why[512];

	if (fc_ws_write(vm->srv->o.record_path, &ws, why, sizeof(why)))
		fc_log(vm->srv, "vm %u: %s", vm->id, why);
	else
		fc_log(vm->srv, "vm %u: working set of %zu pages written to %s",
		       vm->id, vm->rec_n, vm->srv->o.record_path);
}

void fc_vm_close(struct fc_vm *vm, const char *why)
{
	if (vm->serving) {
		fc_prefetch_stop(vm);
		lm_foreign_stop(vm->f);
		/* Every thread that counts has stopped: final figures. */
		fc_report(vm, why);
		lm_foreign_destroy(vm->f);
		vm->f = NULL;
		if (vm->recording)
			write_ws(vm);
	}
	for (unsigned i = 0; i < vm->nfds; i++)
		close(vm->fds[i]);
	if (vm->sock >= 0)
		close(vm->sock);
	free(vm->rec);
	free(vm->rec_seen);
	free(vm->buf);
	free(vm);
}
