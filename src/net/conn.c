/*
 * conn.c - a migration connection (see conn.h): the TLS handshake on
 * either side, and whole-buffer send/receive with deadlines over plain TCP
 * or GnuTLS's record layer.
 *
 * kTLS (the kernel's record layer) would move encryption into send/recv;
 * this kernel has none (CONFIG_TLS not set, tcp_available_ulp lists only
 * mptcp), so the records are built here, in userspace, with AES-GCM on
 * AES-NI.
 *
 * The socket stays blocking; every call passes MSG_DONTWAIT and waits with
 * poll until the deadline, as plain TCP did, through the transport
 * functions below. GnuTLS returns GNUTLS_E_AGAIN then, and we call it
 * again with the same buffer once the socket is ready.
 *
 * Signal safety of the record layer: the demand path sends DEMAND_REQ and
 * receives the reply with gnutls_record_send/recv inside the faulting
 * thread's SIGBUS handler. Counted with an LD_PRELOAD malloc counter
 * (docs/migration.md): in steady state gnutls_record_send and
 * gnutls_record_recv call malloc/free for every record (GnuTLS keeps
 * records in heap buffers), so they are not async-signal-safe in the
 * POSIX sense. They are safe here because the SIGBUS is synchronous and
 * comes only from touching a lazymem region, which is never heap memory:
 * the signal is never taken inside malloc, so the allocator's locks are
 * never held by the interrupted code. The session itself belongs to the
 * urgent slot the thread holds, so no other code is inside it. A region
 * page touched by code that holds the malloc lock (none in the tree) would
 * break this; docs/migration.md says so.
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "net/conn.h"
#include "net/tls_internal.h"
#include "net/why.h"

struct lm_net_conn {
	_Atomic int fd;
	gnutls_session_t s;		/* NULL: plain TCP */
	/* errno of the last failed push / pull, and GnuTLS's last failure
	 * (for lm_net_conn_why): atomic, as the sending and the receiving
	 * thread of one connection may both fail at a break. */
	_Atomic int err_tx, err_rx, tls_rc;
	bool handshaking;
	uint8_t first[4];		/* first bytes received in the handshake */
	unsigned nfirst;
	char peer[96];
	struct lm_net_conn *next;	/* on a retired list */
	/* TLS only: records batched into one send, and bytes read ahead
	 * for several records per recv (see "Batching" below). */
	uint8_t *tx, *rx;
	size_t tx_len, rx_off, rx_len;
};

/*
 * ---- GnuTLS transport: non-blocking calls on our socket ----
 *
 * Batching. A record carries at most 16 KiB, and GnuTLS pushes each one
 * as it is made and pulls each in two reads (header, body): a 4 MiB frame
 * cost about 770 system calls against a handful in plain TCP, and on this
 * (virtualised) machine system calls are what the push paid for, not AES
 * (GnuTLS was 3% of the profile; push over TLS ran at 0.4x plain). So
 * after the handshake, pushed records collect in tx and go out in one
 * send when it fills and at the end of lm_net_send_all; pulls are served
 * from rx, which one recv fills with as many records as have arrived.
 * Both buffers are allocated with the connection: the demand path still
 * allocates nothing of its own.
 */
#define CONN_TX_BYTES (128u << 10)
#define CONN_RX_BYTES (128u << 10)

/* Fail a push or pull with err. GnuTLS reads errno (thread-local) when
 * gnutls_transport_set_errno was never called; that call would write the
 * session, which the sending and the receiving thread share. */
static int conn_errno(_Atomic int *slot, int err)
{
	atomic_store_explicit(slot, err, memory_order_relaxed);
	errno = err;
	return -1;
}

/* Send what tx holds: 0 when empty, -1 with errno EAGAIN or an error. */
static int tx_flush(struct lm_net_conn *c)
{
	int fd = atomic_load_explicit(&c->fd, memory_order_relaxed);
	size_t off = 0;
	int rc = 0;

	while (off < c->tx_len) {
		ssize_t n = send(fd, c->tx + off, c->tx_len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			atomic_store_explicit(&c->err_tx, errno,
					      memory_order_relaxed);
			rc = -1;
			break;
		}
		off += (size_t)n;
	}
	memmove(c->tx, c->tx + off, c->tx_len - off);
	c->tx_len -= off;
	return rc;
}

static ssize_t conn_push(gnutls_transport_ptr_t p, const void *buf,
			 size_t len)
{
	struct lm_net_conn *c = p;
	ssize_t n;

	if (!c->handshaking && c->tx) {
		if (c->tx_len + len > CONN_TX_BYTES && tx_flush(c) < 0 &&
		    atomic_load(&c->err_tx) != EAGAIN)
			return conn_errno(&c->err_tx, atomic_load(&c->err_tx));
		if (c->tx_len + len <= CONN_TX_BYTES) {
			memcpy(c->tx + c->tx_len, buf, len);
			c->tx_len += len;
			return (ssize_t)len;
		}
		if (c->tx_len)	/* full and the socket too: later */
			return conn_errno(&c->err_tx, EAGAIN);
	}
	n = send(atomic_load_explicit(&c->fd, memory_order_relaxed), buf, len,
		 MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? conn_errno(&c->err_tx, errno) : n;
}

static ssize_t conn_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct lm_net_conn *c = p;
	int fd = atomic_load_explicit(&c->fd, memory_order_relaxed);
	ssize_t n;

	if (c->handshaking || !c->rx) {
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n < 0)
			return conn_errno(&c->err_rx, errno);
		for (ssize_t i = 0; i < n && c->nfirst < sizeof(c->first); i++)
			c->first[c->nfirst++] = ((uint8_t *)buf)[i];
		return n;
	}
	if (c->rx_off == c->rx_len) {
		n = recv(fd, c->rx, CONN_RX_BYTES, MSG_DONTWAIT);
		if (n <= 0)
			return n < 0 ? conn_errno(&c->err_rx, errno) : 0;
		c->rx_off = 0;
		c->rx_len = (size_t)n;
	}
	n = (ssize_t)(len < c->rx_len - c->rx_off ? len
						  : c->rx_len - c->rx_off);
	memcpy(buf, c->rx + c->rx_off, (size_t)n);
	c->rx_off += (size_t)n;
	return n;
}

static int wait_dir(struct lm_net_conn *c, uint64_t deadline)
{
	return lm_net_wait_fd(atomic_load(&c->fd),
			      gnutls_record_get_direction(c->s) ? POLLOUT
								: POLLIN,
			      deadline);
}

/* ---- handshake ---- */

static bool first_is_magic(const struct lm_net_conn *c)
{
	static const uint8_t magic[4] = { 'L', 'M', 'N', 'P' };

	return c->nfirst == 4 && !memcmp(c->first, magic, 4);
}

/* Why a handshake failed, as one phrase. */
static void hs_why(struct lm_net_conn *c, const struct lm_net_tls *t, int rc,
		   char *why, size_t len)
{
	const char *psk = t->kind == LM_NET_TLS_PSK
				  ? " (is the PSK the same on both sides?)" : "";

	if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t out = { 0 };
		unsigned st = gnutls_session_get_verify_cert_status(c->s);

		if (gnutls_certificate_verification_status_print(
			    st, GNUTLS_CRT_X509, &out, 0) == 0) {
			size_t n = strlen((char *)out.data);

			while (n && out.data[n - 1] == ' ')
				out.data[--n] = '\0';
			snprintf(why, len, "TLS: the peer's certificate was "
				 "rejected: %s", (char *)out.data);
			gnutls_free(out.data);
		} else {
			snprintf(why, len, "TLS: the peer's certificate was "
				 "rejected (status 0x%x)", st);
		}
	} else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		snprintf(why, len, "TLS: the peer refused us: %s%s",
			 gnutls_alert_get_name(gnutls_alert_get(c->s)), psk);
	} else if (first_is_magic(c)) {
		snprintf(why, len, "TLS: the peer answered in plain lazymem "
			 "protocol, not TLS: it has no TLS options");
	} else if (rc == GNUTLS_E_PREMATURE_TERMINATION ||
		   (rc == GNUTLS_E_PULL_ERROR &&
		    atomic_load(&c->err_rx) == ECONNRESET)) {
		snprintf(why, len, "TLS: the peer closed the connection during "
			 "the handshake (it refused us, or speaks no TLS)");
	} else if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND ||
		   rc == GNUTLS_E_CERTIFICATE_REQUIRED) {
		snprintf(why, len, "TLS: the peer showed no certificate "
			 "(none it has is signed by a CA we trust)");
	} else {
		snprintf(why, len, "TLS handshake: %s%s", gnutls_strerror(rc),
			 psk);
	}
}

static int handshake(struct lm_net_conn *c, struct lm_net_tls *t,
		     bool server, const char *name, uint64_t deadline,
		     char *why, size_t len)
{
	unsigned flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
			 GNUTLS_NO_TICKETS | GNUTLS_NONBLOCK;
	int rc = gnutls_init(&c->s, flags);

	if (rc < 0) {
		c->s = NULL;
		snprintf(why, len, "TLS: %s", gnutls_strerror(rc));
		return -ENOMEM;
	}
	gnutls_session_set_ptr(c->s, t);
	gnutls_priority_set(c->s, t->prio);
	if (t->kind == LM_NET_TLS_PSK) {
		rc = gnutls_credentials_set(c->s, GNUTLS_CRD_PSK,
					    server ? (void *)t->psk_server
						   : (void *)t->psk_client);
	} else {
		rc = gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE,
					    t->x509);
		if (server)
			gnutls_certificate_server_set_request(
				c->s, GNUTLS_CERT_REQUIRE);
		/* Verified inside the handshake: chain to our CA, dates, and
		 * the name when there is one (the listener's only if told). */
		gnutls_session_set_verify_cert(c->s, name && *name ? name
								   : NULL, 0);
	}
	if (rc < 0) {
		snprintf(why, len, "TLS: %s", gnutls_strerror(rc));
		return -EINVAL;
	}
	gnutls_transport_set_ptr(c->s, c);
	gnutls_transport_set_push_function(c->s, conn_push);
	gnutls_transport_set_pull_function(c->s, conn_pull);
	c->handshaking = true;
	do {
		rc = gnutls_handshake(c->s);
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			int w = wait_dir(c, deadline);

			if (w) {
				snprintf(why, len, w == -ETIMEDOUT
					 ? "TLS: no handshake within the "
					   "timeout" : "TLS: %s", strerror(-w));
				return w;
			}
		}
	} while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0) {
		hs_why(c, t, rc, why, len);
		/* Tell the peer (an alert): in TLS 1.3 a client finishes its
		 * handshake before the server has judged its certificate,
		 * and would otherwise see only a closed connection. */
		if (rc != GNUTLS_E_FATAL_ALERT_RECEIVED)
			gnutls_alert_send_appropriate(c->s, rc);
		return -EACCES;
	}
	c->tx = malloc(CONN_TX_BYTES);
	c->rx = malloc(CONN_RX_BYTES);
	if (!c->tx || !c->rx) {
		snprintf(why, len, "TLS: out of memory");
		return -ENOMEM;
	}
	c->handshaking = false;
	return 0;
}

/* What the listener saw first: a TLS record (0x16, a handshake), our
 * plain protocol ("LMNP"), or something else. Peeked, never read. */
static int peek_first(int fd, uint64_t deadline, uint8_t *b)
{
	int err = lm_net_wait_fd(fd, POLLIN, deadline);
	ssize_t n;

	if (err)
		return err;
	n = recv(fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 1 ? 0 : n == 0 ? -ECONNRESET : -errno;
}

/*
 * After refusing a TLS peer: our alert is sent; stop writing and read
 * (and drop) what the peer still sends for a moment before closing. In
 * TLS 1.3 the client's handshake ends before we judge its certificate,
 * so its first frame may be on its way: closing on unread bytes would
 * reset the connection, and the peer would see "broken pipe" instead of
 * our alert. Bounded by REFUSE_LINGER_MS, on the handshake's own thread.
 */
#define REFUSE_LINGER_MS 300

static void linger_drain(int fd)
{
	uint64_t deadline = lm_net_deadline_ms(REFUSE_LINGER_MS);
	char sink[512];

	shutdown(fd, SHUT_WR);
	while (lm_net_wait_fd(fd, POLLIN, deadline) == 0) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

static struct lm_net_conn *conn_new(int fd)
{
	struct lm_net_conn *c = calloc(1, sizeof(*c));

	if (c) {
		atomic_store(&c->fd, fd);
		lm_net_peer_name(fd, c->peer, sizeof(c->peer));
	}
	return c;
}

/* The host part of "host:port" / "[v6]:port", the name a listener's
 * certificate must carry when none is given. */
static void host_of(const char *text, char *host, size_t len)
{
	const char *colon = strrchr(text, ':');
	size_t n = colon ? (size_t)(colon - text) : strlen(text);

	if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
		text++;
		n -= 2;
	}
	snprintf(host, len, "%.*s", (int)n, text);
}

int lm_net_conn_client(struct lm_net_tls *t, int fd, const char *name,
		       int timeout_ms, struct lm_net_conn **out, char *why,
		       size_t why_len)
{
	struct lm_net_conn *c = conn_new(fd);
	int err;

	*out = NULL;
	if (!c) {
		close(fd);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	if (t) {
		err = handshake(c, t, false, t->peer_name[0] ? t->peer_name
							     : name,
				lm_net_deadline_ms(timeout_ms), why, why_len);
		if (err) {
			lm_net_conn_close(c);
			return err;
		}
	}
	*out = c;
	return 0;
}

int lm_net_conn_dial(struct lm_net_tls *t, const struct lm_net_addr *a,
		     int timeout_ms, struct lm_net_conn **out)
{
	char why[512], host[160];
	int fd = lm_net_dial(a, timeout_ms), err;

	*out = NULL;
	if (fd < 0)
		return fd;
	host_of(a->text, host, sizeof(host));
	err = lm_net_conn_client(t, fd, host, timeout_ms, out, why,
				 sizeof(why));
	if (err)
		return util_error(err, "%s: %s", a->text, why);
	return 0;
}

int lm_net_conn_accept(struct lm_net_tls *t, int fd, int timeout_ms,
		       struct lm_net_conn **out, char *why, size_t why_len)
{
	uint64_t deadline = lm_net_deadline_ms(timeout_ms);
	struct lm_net_conn *c = conn_new(fd);
	uint8_t b;
	int err;

	*out = NULL;
	if (!c) {
		close(fd);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	if (!t) {
		*out = c;
		return 0;
	}
	err = peek_first(fd, deadline, &b);
	if (err) {
		snprintf(why, why_len, "TLS: %s before its handshake",
			 err == -ETIMEDOUT ? "silent" : err == -ECONNRESET
			 ? "closed" : strerror(-err));
	} else if (b == 'L') {
		/* A source without TLS options: say why in its own
		 * protocol, or it would only see a closed connection. */
		snprintf(why, why_len, "spoke plain TCP to a TLS listener: "
			 "give both sides the same TLS options");
		lm_net_send_error(c, EACCES, "this destination requires TLS: "
				  "give the same TLS options as its own");
		linger_drain(fd);	/* its HELLO is unread: no reset */
		err = -EACCES;
	} else if (b != 0x16) {
		snprintf(why, why_len, "TLS: the first byte 0x%02x is not a "
			 "TLS handshake", b);
		err = -EACCES;
	} else {
		err = handshake(c, t, true, t->peer_name, deadline, why,
				why_len);
		if (err == -EACCES)
			linger_drain(fd);
	}
	if (err) {
		lm_net_conn_close(c);
		return err;
	}
	*out = c;
	return 0;
}

/* ---- teardown ---- */

static void conn_end(struct lm_net_conn *c)
{
	int fd = atomic_exchange(&c->fd, -1);

	if (c->s)
		gnutls_deinit(c->s);
	c->s = NULL;
	free(c->tx);
	free(c->rx);
	c->tx = c->rx = NULL;
	if (fd >= 0)
		close(fd);
}

void lm_net_conn_close(struct lm_net_conn *c)
{
	if (!c)
		return;
	conn_end(c);
	free(c);
}

void lm_net_conn_retire(struct lm_net_conn *c,
			struct lm_net_conn *_Atomic *list)
{
	if (!c)
		return;
	conn_end(c);
	c->next = atomic_load(list);
	while (!atomic_compare_exchange_weak(list, &c->next, c))
		;
}

void lm_net_conn_free_retired(struct lm_net_conn *_Atomic *list)
{
	struct lm_net_conn *c = atomic_exchange(list, NULL);

	while (c) {
		struct lm_net_conn *n = c->next;

		free(c);
		c = n;
	}
}

void lm_net_conn_shutdown(struct lm_net_conn *c, int how)
{
	int fd = c ? atomic_load(&c->fd) : -1;

	if (fd >= 0)
		shutdown(fd, how);
}

int lm_net_conn_fd(const struct lm_net_conn *c)
{
	return atomic_load(&c->fd);
}

bool lm_net_conn_is_tls(const struct lm_net_conn *c)
{
	return c->s != NULL;
}

const char *lm_net_conn_peer(const struct lm_net_conn *c)
{
	return c->peer;
}

const char *lm_net_conn_why(struct lm_net_conn *c, int err, char *buf,
			   size_t len)
{
	int rc = c ? atomic_load(&c->tls_rc) : 0;

	if (c && c->s && rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
		snprintf(buf, len, "TLS: the peer refused us: %s",
			 gnutls_alert_get_name(gnutls_alert_get(c->s)));
	else if (c && c->s && err == -EBADMSG)
		snprintf(buf, len, "TLS: %s", gnutls_strerror(rc));
	else if (err == -ECONNRESET)
		snprintf(buf, len, "connection closed");
	else
		snprintf(buf, len, "%s", strerror(-err));
	return buf;
}

int lm_net_conn_wait_in(struct lm_net_conn *c, int ms)
{
	struct pollfd p = { .fd = atomic_load(&c->fd), .events = POLLIN };
	int rc;

	if (c->s && (gnutls_record_check_pending(c->s) > 0 ||
		     c->rx_off < c->rx_len))
		return 1;
	rc = poll(&p, 1, ms);
	return rc < 0 ? -errno : rc > 0;
}

/* ---- send and receive (async-signal-safe as conn.h says) ---- */

static int tls_err(struct lm_net_conn *c, ssize_t rc, bool tx)
{
	int e = atomic_load_explicit(tx ? &c->err_tx : &c->err_rx,
				     memory_order_relaxed);

	atomic_store_explicit(&c->tls_rc, (int)rc, memory_order_relaxed);
	if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == 0)
		return -ECONNRESET;
	if (rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_PULL_ERROR)
		return e ? -e : -EIO;
	return -EBADMSG;	/* a record that failed to decrypt, an alert */
}

int lm_net_send_all(struct lm_net_conn *c, const void *buf, size_t len,
		    uint64_t deadline)
{
	const uint8_t *p = buf;
	int fd = atomic_load_explicit(&c->fd, memory_order_relaxed);

	while (len) {
		ssize_t n = c->s ? gnutls_record_send(c->s, p, len)
				 : send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		bool again;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (c->s) {
			if (n == GNUTLS_E_INTERRUPTED)
				continue;
			again = n == GNUTLS_E_AGAIN;
			if (!again)
				return tls_err(c, n, true);
		} else {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN)
				return -errno;
		}
		/* GnuTLS: called again with the same buffer once ready */
		n = lm_net_wait_fd(fd, POLLOUT, deadline);
		if (n)
			return (int)n;
	}
	/* the records batched for one send go out now: a frame is sent
	 * when this returns, as in plain TCP */
	while (c->s && c->tx_len) {
		int n;

		if (tx_flush(c) == 0)
			break;
		if (atomic_load(&c->err_tx) != EAGAIN)
			return -atomic_load(&c->err_tx);
		n = lm_net_wait_fd(fd, POLLOUT, deadline);
		if (n)
			return n;
	}
	return 0;
}

int lm_net_recv_all(struct lm_net_conn *c, void *buf, size_t len,
		    uint64_t deadline)
{
	uint8_t *p = buf;
	int fd = atomic_load_explicit(&c->fd, memory_order_relaxed);

	while (len) {
		ssize_t n = c->s ? gnutls_record_recv(c->s, p, len)
				 : recv(fd, p, len, MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (c->s) {
			if (n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n != GNUTLS_E_AGAIN)
				return tls_err(c, n, false);
		} else {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
		}
		n = lm_net_wait_fd(fd, POLLIN, deadline);
		if (n)
			return (int)n;
	}
	return 0;
}

int lm_net_recv_frame(struct lm_net_conn *c, uint8_t *buf, size_t cap,
		      const struct lm_net_layout *layout,
		      struct lm_net_msg *m, uint64_t deadline, char *why,
		      size_t why_len)
{
	struct lm_net_hdr h;
	int err = lm_net_recv_all(c, buf, LM_NET_HDR_SIZE, deadline);

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
	err = lm_net_recv_all(c, buf + LM_NET_HDR_SIZE, h.length, deadline);
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

void lm_net_send_error(struct lm_net_conn *c, int code, const char *text)
{
	uint8_t buf[LM_NET_HDR_SIZE + 8 + LM_NET_MAX_MSG];
	size_t n = lm_net_enc_error(buf, code > 0 ? code : EPROTO, text);

	lm_net_send_all(c, buf, n, lm_net_deadline_ms(200));
}
