/*
 * tls_opts.c - the TLS options of the commands (see tls_opts.h); the
 * checks of what goes with what are the transport's (src/net/tls.c), so
 * the library's callers and the command refuse the same misuse.
 */
#include "cli/cli.h"
#include "cli/tls_opts.h"
#include "util/error.h"

int cli_tls_opt(int c, const char *arg, struct lm_net_tls_opts *o)
{
	switch (c) {
	case CLI_TLS_CERT: o->cert = arg; return 1;
	case CLI_TLS_KEY: o->key = arg; return 1;
	case CLI_TLS_CA: o->ca = arg; return 1;
	case CLI_TLS_PEER_NAME: o->peer_name = arg; return 1;
	case CLI_TLS_PSK_FILE: o->psk_file = arg; return 1;
	case CLI_TLS_INSECURE: o->insecure = true; return 1;
	default: return 0;
	}
}

int cli_tls_load(const struct lm_net_tls_opts *o, struct lm_net_tls **t)
{
	if (lm_net_tls_create(o, t))
		return cli_usage_error("%s", util_last_error());
	return 0;
}
