/*
 * tls_opts.h - the TLS options every command that opens migration
 * connections takes (page-server, page-fetch, migrate send/recv, bench
 * postcopy/migrate): one table entry list, one help block, one parser,
 * so the six commands cannot drift apart.
 */
#ifndef LAZYMEM_CLI_TLS_OPTS_H
#define LAZYMEM_CLI_TLS_OPTS_H

#include <getopt.h>

#include "net/tls.h"

enum {
	CLI_TLS_CERT = 0x7400, CLI_TLS_KEY, CLI_TLS_CA, CLI_TLS_PEER_NAME,
	CLI_TLS_PSK_FILE, CLI_TLS_INSECURE,
};

#define CLI_TLS_LONGOPTS \
	{ "tls-cert", required_argument, NULL, CLI_TLS_CERT }, \
	{ "tls-key", required_argument, NULL, CLI_TLS_KEY }, \
	{ "tls-ca", required_argument, NULL, CLI_TLS_CA }, \
	{ "tls-peer-name", required_argument, NULL, CLI_TLS_PEER_NAME }, \
	{ "psk-file", required_argument, NULL, CLI_TLS_PSK_FILE }, \
	{ "insecure", no_argument, NULL, CLI_TLS_INSECURE }

#define CLI_TLS_HELP \
"      --tls-cert FILE       TLS 1.3 with X.509: our certificate (PEM), with\n" \
"      --tls-key FILE        its private key and\n" \
"      --tls-ca FILE         the CA that signed the peer's (both sides check)\n" \
"      --tls-peer-name NAME  the name the peer's certificate must carry\n" \
"                            (dialing: default the host dialed)\n" \
"      --psk-file FILE       TLS 1.3 with a pre-shared key: IDENTITY:HEXKEY\n" \
"                            (psktool's format), the same on both sides\n" \
"      --insecure            allow plain TCP beyond loopback\n"

/* 1 when c is one of the options above (stored in o), else 0. */
int cli_tls_opt(int c, const char *arg, struct lm_net_tls_opts *o);
/* The credentials (NULL without TLS options): 0, or 2 after printing the
 * one-line error naming the option. */
int cli_tls_load(const struct lm_net_tls_opts *o, struct lm_net_tls **t);

#endif
