/*
 * sock.c - TCP plumbing (see sock.h). The send/receive half is
 * async-signal-safe; the set-up half is not and says so.
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
#include "net/why.h"

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

/* Wait for fd to be ready; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short ev, uint64_t deadline)
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

int lm_net_send_all(int fd, const void *buf, size_t len, uint64_t deadline)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		n = wait_fd(fd, POLLOUT, deadline);
		if (n)
			return (int)n;
	}
	return 0;
}

int lm_net_recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		n = wait_fd(fd, POLLIN, deadline);
		if (n)
			return (int)n;
	}
	return 0;
}

int lm_net_recv_frame(int fd, uint8_t *buf, size_t cap,
		      const struct lm_net_layout *layout,
		      struct lm_net_msg *m, uint64_t deadline, char *why,
		      size_t why_len)
{
	struct lm_net_hdr h;
	int err = lm_net_recv_all(fd, buf, LM_NET_HDR_SIZE, deadline);

	if (err)
		return err;
	err = lm_net_check_header(buf, &h, why, why_len);
	if (err)
		return err;
	if (h.length > cap - LM_NET_HDR_SIZE)
		return lm_net_why(why, why_len, "%s: length %U exceeds our "
				  "buffer of %U", lm_net_type_name(h.type),
				  (uint64_t)h.length,
				  (uint64_t)(cap - LM_NET_HDR_SIZE));
	err = lm_net_recv_all(fd, buf + LM_NET_HDR_SIZE, h.length, deadline);
	if (err == -ECONNRESET)
		return lm_net_why(why, why_len, "%s: truncated frame: the "
				  "peer closed after the header of a %U-byte "
				  "payload", lm_net_type_name(h.type),
				  (uint64_t)h.length);
	if (err)
		return err;
	return lm_net_decode(layout, &h, buf + LM_NET_HDR_SIZE, m, why,
			     why_len);
}

void lm_net_send_error(int fd, int code, const char *text)
{
	uint8_t buf[LM_NET_HDR_SIZE + 8 + LM_NET_MAX_MSG];
	size_t n = lm_net_enc_error(buf, code > 0 ? code : EPROTO, text);

	lm_net_send_all(fd, buf, n, lm_net_deadline_ms(200));
}
