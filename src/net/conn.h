/*
 * conn.h - one migration connection: a TCP socket and, when the command
 * has credentials, the TLS session over it. Every frame the transport
 * sends or receives (control, urgent, push; page-server and page-fetch;
 * the destination's accept path and a resume's re-dial) goes through it,
 * so the frame decoder sees the same plain bytes either way.
 *
 * The TLS handshake runs as soon as the socket is connected or accepted,
 * before any frame: a listener reads nothing of the protocol from a peer
 * it has not authenticated.
 *
 * Send and receive use only poll, send, recv and, with TLS, GnuTLS's
 * record layer on the connection's own session: the demand path calls
 * them on the faulting thread, possibly inside its SIGBUS handler (see
 * conn.c on why the record layer is safe there). One thread sends and one
 * receives at a time; set-up calls (dial, accept, close) allocate and are
 * for ordinary threads only.
 */
#ifndef LAZYMEM_NET_CONN_H
#define LAZYMEM_NET_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/proto.h"
#include "net/sock.h"
#include "net/tls.h"

struct lm_net_conn;

/*
 * Dial a and, with t, run the TLS handshake as the client: the listener
 * must show a certificate for peer_name (NULL: the host of a) signed by
 * our CA, or know our PSK. The connection, or -errno with
 * util_last_error() saying what failed.
 */
int lm_net_conn_dial(struct lm_net_tls *t, const struct lm_net_addr *a,
		     int timeout_ms, struct lm_net_conn **out);
/* The same on a socket already connected (taken over; closed on
 * failure): the name is what the listener's certificate must carry
 * unless the credentials name one. */
int lm_net_conn_client(struct lm_net_tls *t, int fd, const char *name,
		       int timeout_ms, struct lm_net_conn **out, char *why,
		       size_t why_len);
/*
 * Take over an accepted socket fd and, with t, run the TLS handshake as
 * the server (a client certificate signed by our CA is required). On
 * failure fd is closed and why says who was refused and why; a plain
 * lazymem peer on a TLS listener is told so in an ERROR frame first.
 */
int lm_net_conn_accept(struct lm_net_tls *t, int fd, int timeout_ms,
		       struct lm_net_conn **out, char *why, size_t why_len);

/* End the session, close the socket, free. */
void lm_net_conn_close(struct lm_net_conn *c);
/*
 * For connections other threads may still shut down: end the session and
 * close the socket now, free later (lm_net_conn_free_retired), so a racing
 * lm_net_conn_shutdown touches valid memory (and fd -1).
 */
void lm_net_conn_retire(struct lm_net_conn *c,
			struct lm_net_conn *_Atomic *list);
void lm_net_conn_free_retired(struct lm_net_conn *_Atomic *list);
/* shutdown(2) on the socket: async-signal-safe, c may be NULL. */
void lm_net_conn_shutdown(struct lm_net_conn *c, int how);

int lm_net_conn_fd(const struct lm_net_conn *c);
bool lm_net_conn_is_tls(const struct lm_net_conn *c);
/* The peer, "ip:port", for messages. */
const char *lm_net_conn_peer(const struct lm_net_conn *c);
/* What err (from a send or receive on c) means, as a phrase: with TLS,
 * an alert from the peer (it refused us) or a record that failed. */
const char *lm_net_conn_why(struct lm_net_conn *c, int err, char *buf,
			    size_t len);
/* Wait up to ms for something to read (decrypted bytes already buffered
 * count): 1, 0 on timeout, -errno. */
int lm_net_conn_wait_in(struct lm_net_conn *c, int ms);

/* Deadline in CLOCK_MONOTONIC ns; UINT64_MAX: none. 0 or -errno
 * (-ECONNRESET: the peer closed; -EBADMSG: a TLS record failed). */
int lm_net_send_all(struct lm_net_conn *c, const void *buf, size_t len,
		    uint64_t deadline);
int lm_net_recv_all(struct lm_net_conn *c, void *buf, size_t len,
		    uint64_t deadline);

/*
 * Receive one frame into buf (cap bytes: header + largest payload) and
 * decode it against layout (NULL before the handshake). 0, -EPROTO (why
 * says what was wrong), -ETIMEDOUT, -ECONNRESET (peer closed), -errno.
 */
int lm_net_recv_frame(struct lm_net_conn *c, uint8_t *buf, size_t cap,
		      const struct lm_net_layout *layout,
		      struct lm_net_msg *m, uint64_t deadline, char *why,
		      size_t why_len);

/* Tell the peer what was wrong (best effort, short deadline), no close. */
void lm_net_send_error(struct lm_net_conn *c, int code, const char *text);

#endif
