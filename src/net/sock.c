/*
 * sock.c - TCP plumbing (see sock.h): addresses, listen, dial, accept,
 * and the async-signal-safe wait the connections use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "net/sock.h"

uint64_t lm_net_deadline_ms(int ms)
{
	return ms < 0 ? UINT64_MAX : lm_now_ns() + (uint64_t)ms * 1000000ull;
}

int lm_net_addr_parse(const char *s, struct lm_net_addr *a)
{
	char host[128], *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int rc;

	memset(a, 0, sizeof(*a));
	snprintf(a->text, sizeof(a->text), "%s", s);
	if (strlen(s) >= sizeof(host))
		return util_error(-EINVAL, "address '%s' is too long", s);
	snprintf(host, sizeof(host), "%s", s);
	port = strrchr(host, ':');
	if (!port || port == host || !port[1])
		return util_error(-EINVAL, "address '%s': expected HOST:PORT",
				s);
	*port++ = '\0';
	if (host[0] == '[') {
		size_t n = strlen(host);

		if (host[n - 1] != ']')
			return util_error(-EINVAL, "address '%s': expected "
					"[IPv6]:PORT", s);
		host[n - 1] = '\0';
		memmove(host, host + 1, n - 1);
	}
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		return util_error(-EINVAL, "address '%s': %s", s,
				gai_strerror(rc));
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

bool lm_net_addr_loopback(const struct lm_net_addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)&a->ss;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&a->ss;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		       s6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int lm_net_listen(struct lm_net_addr *a, int *fd_out)
{
	int one = 1;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return util_error(-errno, "socket for %s: %s", a->text,
				strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(fd, 128) < 0) {
		int err = -errno;

		close(fd);
		return util_error(err, "cannot listen on %s: %s", a->text,
				strerror(-err));
	}
	a->len = sizeof(a->ss);
	getsockname(fd, (struct sockaddr *)&a->ss, &a->len);
	*fd_out = fd;
	return 0;
}

int lm_net_dial(const struct lm_net_addr *a, int timeout_ms)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0, rc;
	socklen_t el = sizeof(err);

	if (fd < 0)
		return util_error(-errno, "socket for %s: %s", a->text,
				strerror(errno));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
	if (rc < 0 && errno != EINPROGRESS) {
		err = -errno;
		goto fail;
	}
	if (rc < 0) {
		rc = poll(&p, 1, timeout_ms);
		if (rc == 0) {
			err = -ETIMEDOUT;
			goto fail;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			err = -err;
			goto fail;
		}
	}
	fcntl(fd, F_SETFL, 0);
	set_nodelay(fd);
	return fd;
fail:
	close(fd);
	return util_error(err, "cannot connect to %s: %s", a->text,
			strerror(-err));
}

int lm_net_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return -errno;
	set_nodelay(fd);
	return fd;
}

void lm_net_addr_name(struct lm_net_addr *a)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (a->ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(a->text, sizeof(a->text), "%s:%u", host,
			 ntohs(s4->sin_port));
	} else if (a->ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(a->text, sizeof(a->text), "[%s]:%u", host,
			 ntohs(s6->sin6_port));
	}
}

void lm_net_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		}
	}
	snprintf(buf, len, "%s:%u", host, port);
}

int lm_net_wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = ev };
		int ms = -1, rc;

		if (deadline != UINT64_MAX) {
			uint64_t now = lm_now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			ms = (int)((deadline - now + 999999) / 1000000);
		}
		rc = poll(&p, 1, ms);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}
