/*
 * sock.h - TCP plumbing for the migration transport: addresses, listening,
 * dialing with a timeout, waiting with a deadline. Frames travel over a
 * connection (conn.h), which may add TLS on top of these sockets.
 *
 * lm_net_wait_fd uses only poll: async-signal-safe, the demand path waits
 * with it. Set-up calls (address parsing, listen, connect) may allocate
 * and are for ordinary threads only.
 */
#ifndef LAZYMEM_NET_SOCK_H
#define LAZYMEM_NET_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>


struct lm_net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[128];		/* as given, for messages */
};

/* "host:port" or "[v6]:port". -EINVAL with util_last_error() set. */
int lm_net_addr_parse(const char *s, struct lm_net_addr *a);
/* 127.0.0.0/8, ::1 or ::ffff:127.x.y.z: the only addresses plain TCP
 * may use without --insecure. */
bool lm_net_addr_loopback(const struct lm_net_addr *a);
/* A listening socket (SO_REUSEADDR); port 0 picks one, written back. */
int lm_net_listen(struct lm_net_addr *a, int *fd_out);
/* Dial with a timeout; TCP_NODELAY set. fd or -errno with a message. */
int lm_net_dial(const struct lm_net_addr *a, int timeout_ms);
/* Accept one connection; TCP_NODELAY set. fd or -errno. */
int lm_net_accept(int lfd);
/* Rewrite a->text from the address itself ("ip:port", "[v6]:port"). */
void lm_net_addr_name(struct lm_net_addr *a);
/* The connected peer "ip:port" of fd, for messages. */
void lm_net_peer_name(int fd, char *buf, size_t len);

/* Wait for fd to be ready for ev (POLLIN, POLLOUT) until deadline
 * (CLOCK_MONOTONIC ns, UINT64_MAX: none): 0, -ETIMEDOUT or -errno.
 * Async-signal-safe. */
int lm_net_wait_fd(int fd, short ev, uint64_t deadline);

uint64_t lm_net_deadline_ms(int ms);

#endif
