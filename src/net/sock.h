/*
 * sock.h - TCP plumbing for the migration transport: addresses, listening,
 * dialing with a timeout, and whole-frame send/receive with deadlines.
 *
 * The send and receive calls use only poll, send and recv, which are
 * async-signal-safe: the demand path calls them from the faulting thread,
 * possibly inside its SIGBUS handler. Set-up calls (address parsing,
 * listen, connect) may allocate and are for ordinary threads only.
 */
#ifndef LAZYMEM_NET_SOCK_H
#define LAZYMEM_NET_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/proto.h"

struct lm_net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[128];		/* as given, for messages */
};

/* "host:port" or "[v6]:port". -EINVAL with util_last_error() set. */
int lm_net_addr_parse(const char *s, struct lm_net_addr *a);
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

/* Deadline in CLOCK_MONOTONIC ns; UINT64_MAX: none. */
int lm_net_send_all(int fd, const void *buf, size_t len, uint64_t deadline);
int lm_net_recv_all(int fd, void *buf, size_t len, uint64_t deadline);

/*
 * Receive one frame into buf (cap bytes: header + largest payload) and
 * decode it against layout (NULL before the handshake). 0, -EPROTO (why
 * says what was wrong), -ETIMEDOUT, -ECONNRESET (peer closed), -errno.
 */
int lm_net_recv_frame(int fd, uint8_t *buf, size_t cap,
		      const struct lm_net_layout *layout,
		      struct lm_net_msg *m, uint64_t deadline, char *why,
		      size_t why_len);

/* Tell the peer what was wrong (best effort, short deadline), no close. */
void lm_net_send_error(int fd, int code, const char *text);

uint64_t lm_net_deadline_ms(int ms);

#endif
