/*
 * tls.h - the credentials of the migration transport: who we are and whom
 * we accept, for every connection a command makes or accepts.
 *
 * One object, made once per command from its options and handed to the
 * destination and the page server (and through them to every connection
 * they open): it owns GnuTLS's global state (init/deinit are counted by
 * GnuTLS itself) and the credentials, so nothing here is a mutable global.
 * Two ways to authenticate, both mutual:
 *
 *   X.509  our certificate and key, the CA that signed the peer's; the
 *          dialer checks the listener's name (the host it dialed, or
 *          peer_name), the listener requires a client certificate signed
 *          by the CA and checks peer_name when given;
 *   PSK    one "identity:hexkey" line, as psktool writes it, on both sides.
 *
 * TLS 1.3 only, no session tickets: a resumed migration connection is a
 * new full handshake, authenticated exactly as the first one.
 * Without credentials (a NULL object) connections are plain TCP, which the
 * destination and the page server allow on loopback only, unless insecure.
 */
#ifndef LAZYMEM_NET_TLS_H
#define LAZYMEM_NET_TLS_H

#include <stdbool.h>

struct lm_net_tls_opts {
	const char *cert;		/* --tls-cert: our certificate (PEM) */
	const char *key;		/* --tls-key: its private key (PEM) */
	const char *ca;			/* --tls-ca: the CA we trust (PEM) */
	const char *peer_name;		/* --tls-peer-name */
	const char *psk_file;		/* --psk-file */
	bool insecure;			/* --insecure: plain TCP anywhere */
};

struct lm_net_tls;

/*
 * Check the options and load the credentials. No TLS option: 0 with *out
 * NULL (plain). Any misuse (cert without key, PSK and cert together, an
 * unreadable or malformed file) is -errno with util_last_error() naming
 * the option.
 */
int lm_net_tls_create(const struct lm_net_tls_opts *o, struct lm_net_tls **out);
/* A fresh random PSK: both ends in one process (benchmarks). */
int lm_net_tls_create_ephemeral(struct lm_net_tls **out);
void lm_net_tls_destroy(struct lm_net_tls *t);

/* "x509", "psk" or "plain" (t NULL), for messages and JSON. */
const char *lm_net_tls_mode(const struct lm_net_tls *t);

#endif
