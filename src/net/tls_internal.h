/*
 * tls_internal.h - private to src/net: the credentials object (tls.c),
 * which conn.c's handshakes read.
 */
#ifndef LAZYMEM_NET_TLS_INTERNAL_H
#define LAZYMEM_NET_TLS_INTERNAL_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/tls.h"

enum lm_net_tls_kind { LM_NET_TLS_X509, LM_NET_TLS_PSK };

struct lm_net_tls {
	enum lm_net_tls_kind kind;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t psk_client;
	gnutls_psk_server_credentials_t psk_server;
	gnutls_priority_t prio;
	char peer_name[256];		/* "" : none given */
	char psk_identity[128];
	uint8_t psk_key[64];
	unsigned psk_len;
};

#endif
