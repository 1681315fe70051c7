/*
 * server.c - the daemon's event loop: the listening Unix socket, one
 * connection per VM, and signals (SIGUSR1 prints every VM's statistics,
 * SIGINT / SIGTERM stop). One thread runs it; each VM being served has
 * its own handler thread (the foreign space's) and, with working-set
 * prefetch, a prefetch thread. A VM ends when its socket does: the VMM
 * never closes it on purpose, so EOF means the VMM exited.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "fc/fc.h"

void fc_log(const struct fc_server *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (s->o.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "lazymem fc-handler: %s\n", line);
}

static int bind_socket(struct fc_server *s)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(s->o.socket_path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "lazymem fc-handler: socket path %s is longer "
			"than %zu bytes\n", s->o.socket_path,
			sizeof(a.sun_path) - 1);
		return -1;
	}
	strcpy(a.sun_path, s->o.socket_path);
	/* A socket left by a previous run would make bind fail; anything
	 * else at that path is not ours to remove. */
	if (lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(a.sun_path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
			      SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0 ||
	    bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s->listen_fd, 128) < 0) {
		fprintf(stderr, "lazymem fc-handler: cannot listen on %s: %s\n",
			s->o.socket_path, strerror(errno));
		return -1;
	}
	snprintf(s->sock_name, sizeof(s->sock_name), "%s", s->o.socket_path);
	return 0;
}

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define FC_LISTEN_FD 3

static int activation_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int activation_error(const char *fmt, ...)
{
	va_list ap;

	fputs("lazymem fc-handler: socket activation: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* Is fd 3 a listening Unix stream socket? Names it in s->sock_name. */
static int check_inherited(struct fc_server *s, int fd)
{
	struct sockaddr_un a = { 0 };
	socklen_t alen = sizeof(a), olen;
	struct stat st;
	int domain = -1, type = -1, acc = 0;

	if (fstat(fd, &st) < 0)
		return activation_error("fd %d is not open (LISTEN_FDS=1 but "
					"nothing was passed)", fd);
	if (!S_ISSOCK(st.st_mode))
		return activation_error("fd %d is not a socket; expected a "
					"listening Unix stream socket", fd);
	olen = sizeof(domain);
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &olen);
	olen = sizeof(type);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen);
	olen = sizeof(acc);
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &olen);
	if (domain != AF_UNIX || type != SOCK_STREAM)
		return activation_error("fd %d is a socket of the wrong kind "
			"(%s, %s); expected a Unix stream socket "
			"(ListenStream=/path in the .socket unit)", fd,
			domain == AF_UNIX ? "Unix" : domain == AF_INET ? "IPv4" :
			domain == AF_INET6 ? "IPv6" : "non-Unix",
			type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ?
			"datagram" : type == SOCK_SEQPACKET ? "seqpacket" :
			"non-stream");
	if (!acc)
		return activation_error("fd %d is a Unix stream socket that is "
			"not listening (a connection, or Accept=yes in the "
			".socket unit); expected the listening socket", fd);
	if (getsockname(fd, (struct sockaddr *)&a, &alen) < 0 ||
	    alen <= offsetof(struct sockaddr_un, sun_path) || !a.sun_path[0])
		snprintf(s->sock_name, sizeof(s->sock_name),
			 "an unnamed or abstract socket (fd %d)", fd);
	else
		snprintf(s->sock_name, sizeof(s->sock_name), "%.*s",
			 (int)sizeof(a.sun_path), a.sun_path);
	if (s->o.socket_path && strcmp(s->o.socket_path, s->sock_name))
		return activation_error("the socket passed in is bound to %s, "
					"not to --socket %s", s->sock_name,
					s->o.socket_path);
	return 0;
}

/*
 * systemd's socket activation (sd_listen_fds(3), done by hand: a few
 * lines, no libsystemd): LISTEN_PID names the process the descriptors are
 * for, LISTEN_FDS how many there are, from fd 3 on. The variables are
 * removed either way so that nothing this process starts takes them for
 * its own. 1: s->listen_fd is the inherited socket; 0: none for us; -1:
 * refused, with the reason on stderr.
 */
static int inherit_socket(struct fc_server *s)
{
	const char *fds_s = getenv("LISTEN_FDS"), *pid_s = getenv("LISTEN_PID");
	char fds_v[32], pid_v[32], *end;
	long nfds, pid;
	int fd = FC_LISTEN_FD, fl;

	snprintf(fds_v, sizeof(fds_v), "%s", fds_s ? fds_s : "");
	snprintf(pid_v, sizeof(pid_v), "%s", pid_s ? pid_s : "");
	if (fds_s || pid_s) {
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
	}
	if (!fds_s) {
		if (!s->o.socket_activated)
			return 0;
		return activation_error("LISTEN_FDS is not set: start it from "
			"a systemd .socket unit (or a launcher that passes the "
			"listening socket as fd 3), or use --socket PATH");
	}
	errno = 0;
	pid = strtol(pid_v, &end, 10);
	if (!pid_s || errno || end == pid_v || *end || pid != (long)getpid()) {
		/* Set for another process (inherited through exec): not ours.
		 * Serving on --socket is still fine; activation is not. */
		if (!s->o.socket_activated)
			return 0;
		return activation_error("LISTEN_PID=%s%s is not this process "
			"(pid %d): the passed sockets are meant for another "
			"process; refusing them", pid_s ? pid_v : "",
			pid_s ? "" : "(unset)", (int)getpid());
	}
	errno = 0;
	nfds = strtol(fds_v, &end, 10);
	if (errno || end == fds_v || *end || nfds != 1)
		return activation_error("LISTEN_FDS=%s: expected exactly one "
			"listening socket (one ListenStream= in the .socket unit)",
			fds_v);
	if (check_inherited(s, fd) < 0)
		return -1;
	/* Ours from now: not passed on to anything we exec, and accept_all
	 * drains it without blocking. */
	fl = fcntl(fd, F_GETFL);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return activation_error("fd %d: fcntl: %s", fd, strerror(errno));
	s->listen_fd = fd;
	s->inherited = true;
	return 1;
}

static void drop_vm(struct fc_server *s, struct fc_vm *vm, const char *why)
{
	for (struct fc_vm **p = &s->vms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
	if (vm->sock >= 0)
		epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, vm->sock, NULL);
	if (vm->serving)
		fc_log(s, "vm %u (pid %d): %s", vm->id, (int)vm->pid, why);
	/* A forked child has no connection of its own: it goes with its
	 * parent's (children of children too, by recursion). */
	for (struct fc_vm *c = s->vms, *next; c; c = next) {
		next = c->next;
		if (c->parent_id == vm->id) {
			drop_vm(s, c, "parent disconnected");
			next = s->vms;	/* the list changed */
		}
	}
	fc_vm_close(vm, why);
}

static void adopt_children(struct fc_server *s)
{
	struct fc_vm *child;

	while (read(s->fork_pipe[0], &child, sizeof(child)) == sizeof(child)) {
		bool parent_alive = false;

		for (struct fc_vm *v = s->vms; v; v = v->next)
			parent_alive |= v->id == child->parent_id;
		child->next = s->vms;
		s->vms = child;
		if (!parent_alive)
			drop_vm(s, child, "parent disconnected");
	}
}

static void accept_all(struct fc_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		struct fc_vm *vm;

		if (fd < 0)
			return;
		vm = fc_vm_new(s, fd);
		if (!vm) {
			fc_log(s, "out of memory for a new connection");
			close(fd);
			continue;
		}
		ev.data.ptr = vm;
		epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
		vm->next = s->vms;
		s->vms = vm;
	}
}

/* 1: stop the daemon. */
static int on_signal(struct fc_server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGUSR1)
			return 1;
		for (struct fc_vm *vm = s->vms; vm; vm = vm->next)
			if (vm->serving)
				fc_report(vm, "sigusr1");
	}
	return 0;
}

/*
 * The memory file mapped read-only and shared, once for every VM: faults
 * are installed with one UFFDIO_COPY straight from the page cache instead
 * of a pread into a buffer and a copy from there (which copies every byte
 * twice: 2 MiB each time for a hugetlbfs guest). Without it (mmap failed)
 * pread from the one descriptor is used.
 */
static void map_image(struct fc_server *s)
{
	int fd = open(s->o.mem_path, O_RDONLY | O_CLOEXEC);
	void *p;

	if (fd < 0 || !s->mem_size)
		goto out;
	/* Populated now, before any VM: an install then finds the source
	 * page mapped instead of taking a page fault on it. */
	p = mmap(NULL, s->mem_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd,
		 0);
	if (p != MAP_FAILED)
		s->image = p;
out:
	if (fd >= 0)
		close(fd);
	if (!s->image)
		fc_log(s, "cannot map %s (%s); reading it with pread",
		       s->o.mem_path, strerror(errno));
}

static int setup(struct fc_server *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	char why[512];
	sigset_t set;
	int err;

	/* First, while fd 3 is still the one that was passed in. */
	if (inherit_socket(s) < 0)
		return -1;
	err = lm_source_file_open(s->o.mem_path, &s->mem);
	if (err) {
		fprintf(stderr, "lazymem fc-handler: memory file: %s\n",
			lm_last_error());
		return -1;
	}
	s->mem_size = s->mem->size;
	map_image(s);
	if (s->o.prefetch == FC_PREFETCH_WS &&
	    fc_ws_load(s->o.ws_path, s->mem_size, &s->ws, why, sizeof(why))) {
		fprintf(stderr, "lazymem fc-handler: %s\n", why);
		return -1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (s->sig_fd < 0 || s->epoll_fd < 0 ||
	    (!s->inherited && bind_socket(s) < 0) ||
	    pipe2(s->fork_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	ev.data.ptr = &s->fork_pipe[0];
	epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->fork_pipe[0], &ev);
	ev.data.ptr = &s->listen_fd;
	epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &ev);
	ev.data.ptr = &s->sig_fd;
	epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->sig_fd, &ev);
	return 0;
}

static void loop(struct fc_server *s)
{
	struct epoll_event ev[32];

	for (;;) {
		int n = epoll_wait(s->epoll_fd, ev, 32, 1000);
		uint64_t now;

		for (int i = 0; i < n; i++) {
			struct fc_vm *vm = ev[i].data.ptr;

			if (ev[i].data.ptr == &s->listen_fd)
				accept_all(s);
			else if (ev[i].data.ptr == &s->fork_pipe[0])
				adopt_children(s);
			else if (ev[i].data.ptr == &s->sig_fd) {
				if (on_signal(s))
					return;
			} else if (fc_vm_on_readable(vm) < 0) {
				drop_vm(s, vm, "disconnected");
			}
		}
		now = lm_now_ns();	/* after accepting: no VM is newer */
		for (struct fc_vm *vm = s->vms, *next; vm; vm = next) {
			next = vm->next;
			if (fc_vm_handshake_expired(vm, now)) {
				fc_vm_refuse(vm, "no complete message within "
					     "%d ms", FC_HANDSHAKE_MS);
				drop_vm(s, vm, "refused");
			}
		}
	}
}

int fc_server_run(const struct fc_options *o)
{
	struct fc_server s = {
		.o = *o, .listen_fd = -1, .epoll_fd = -1, .sig_fd = -1,
		.fork_pipe = { -1, -1 },
	};
	sigset_t old;
	int rc = 1;

	pthread_sigmask(SIG_SETMASK, NULL, &old);
	if (setup(&s) == 0) {
		if (o->ready_fd >= 0) {
			if (write(o->ready_fd, "r", 1) != 1)
				fc_log(&s, "cannot signal readiness: %s",
				       strerror(errno));
			close(o->ready_fd);
		}
		fc_log(&s, "listening on %s%s, memory file %s (%llu bytes)%s%s",
		       s.sock_name, s.inherited ? " (socket from systemd)" : "",
		       o->mem_path,
		       (unsigned long long)s.mem_size,
		       o->prefetch == FC_PREFETCH_WS ? ", working set " : "",
		       o->prefetch == FC_PREFETCH_WS ? o->ws_path : "");
		loop(&s);
		rc = 0;
	}
	while (s.vms)
		drop_vm(&s, s.vms, "handler stopping");
	if (s.fork_pipe[0] >= 0) {
		/* Children forked after the loop stopped. */
		adopt_children(&s);
		while (s.vms)
			drop_vm(&s, s.vms, "handler stopping");
		close(s.fork_pipe[0]);
		close(s.fork_pipe[1]);
	}
	if (s.listen_fd >= 0) {
		close(s.listen_fd);
		/* An inherited socket stays: its owner (systemd) keeps
		 * listening on it and removes it. */
		if (!s.inherited)
			unlink(o->socket_path);
	}
	if (s.epoll_fd >= 0)
		close(s.epoll_fd);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	fc_ws_free(&s.ws);
	if (s.image)
		munmap(s.image, s.mem_size);
	lm_source_destroy(s.mem);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}
