/*
 * net_tls_decode.c - the wire decoder fuzzed on frames as they come out
 * of the TLS layer: the input is sent through a real TLS 1.3 session pair
 * (a fresh PSK, over a socketpair) and the receiving connection reads it
 * with lm_net_recv_frame, the call the destination and the page server
 * use, so the record layer, conn.c's read-ahead and the decoder are
 * exercised together. Each accepted frame must pass net_check.h; each
 * refusal must say why; a stream cut mid-frame must end as a closed
 * connection, never a hang.
 *
 * One handshake per input (about a millisecond): slower than net_decode.c,
 * which fuzzes the decoder alone; both run over the corpus in every build.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/proto.h"
#include "net/tls.h"
#include "net_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct side {
	struct lm_net_tls *tls;
	int fd;
	struct lm_net_conn *c;
	const uint8_t *data;
	size_t size;
	int rc;
	char why[256];
};

static void *server_main(void *arg)
{
	struct side *s = arg;

	s->rc = lm_net_conn_accept(s->tls, s->fd, 5000, &s->c, s->why,
				   sizeof(s->why));
	return NULL;
}

/* The sender: the whole input, then end of stream. */
static void *send_main(void *arg)
{
	struct side *s = arg;

	s->rc = lm_net_send_all(s->c, s->data, s->size,
				lm_net_deadline_ms(5000));
	lm_net_conn_shutdown(s->c, SHUT_WR);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[2] = { 1u << 20, 64u << 10 };
	static struct lm_net_tls *tls;
	static uint8_t buf[LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD];
	struct side srv = { 0 }, cli = { 0 };
	struct lm_net_layout l;
	pthread_t th;
	char why[256];
	int sv[2];

	if (!tls && lm_net_tls_create_ephemeral(&tls))
		abort();
	if (lm_net_layout_init(&l, 4096, sizes, 2, why, sizeof(why)) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	srv.tls = tls;
	srv.fd = sv[1];
	if (pthread_create(&th, NULL, server_main, &srv))
		abort();
	if (lm_net_conn_client(tls, sv[0], NULL, 5000, &cli.c, cli.why,
			       sizeof(cli.why)))
		abort();
	pthread_join(th, NULL);
	if (srv.rc)
		abort();
	cli.data = data;
	cli.size = size;
	if (pthread_create(&th, NULL, send_main, &cli))
		abort();
	for (;;) {
		struct lm_net_msg m;
		int err;

		why[0] = '\0';
		err = lm_net_recv_frame(srv.c, buf, sizeof(buf), &l, &m,
					lm_net_deadline_ms(5000), why,
					sizeof(why));
		if (err == -EPROTO && !why[0])
			abort();		/* a refusal says why */
		if (err == -ETIMEDOUT)
			abort();		/* the sender closed: no waiting */
		if (err)
			break;
		check_frame(&l, &m);
	}
	/* As the transport does after a refusal: stop reading, close. */
	lm_net_conn_shutdown(srv.c, SHUT_RDWR);
	pthread_join(th, NULL);
	lm_net_conn_close(cli.c);
	lm_net_conn_close(srv.c);
	return 0;
}
