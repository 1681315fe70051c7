/*
 * server_internal.h - private to src/net: the page server's state, shared
 * by server.c (create, connect, pre-copy rounds, switch-over, teardown)
 * and serve.c (post-copy: the urgent threads and the push thread).
 */
#ifndef LAZYMEM_NET_SERVER_INTERNAL_H
#define LAZYMEM_NET_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "net/conn.h"
#include "net/sock.h"

#define BUF_BYTES (LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD)
#define BATCH_BYTES (256u << 10)
#define WHY_LEN 256
#define PUSH_NICE 10

struct urgent {
	struct lm_net_server *s;
	unsigned i;
	pthread_t thread;
	uint8_t *rx, *tx;
	struct lm_net_lz4_hint hint;
};

struct lm_net_server {
	struct lm_net_layout layout;
	const uint8_t *mem;
	struct lm_net_addr to;
	bool push, compress, resume;
	int resume_timeout_ms, io_timeout_ms;
	uint64_t session;
	bool connected, switched, resumed_once;

	/* NULL: plain TCP. Atomic: lm_net_server_set_tls may change it
	 * while post-copy runs, for the next dial. */
	struct lm_net_tls *_Atomic tls;
	struct lm_net_conn *_Atomic ctl;
	unsigned nr_urgent;
	struct lm_net_conn *_Atomic uc[LM_NET_MAX_URGENT];
	/* Closed connections, freed at destroy: a cut may still shut one. */
	struct lm_net_conn *_Atomic retired;
	struct urgent u[LM_NET_MAX_URGENT];
	pthread_t push_thread;

	_Atomic uint64_t *sent;
	_Atomic int demand_active;
	_Atomic bool broken;
	uint8_t *tx, *rx;
	struct lm_net_lz4_hint hint;

	struct {
		_Atomic uint64_t demand_requests, demand_pages, push_pages;
		_Atomic uint64_t precopy_pages, bytes_out, raw, zero, lz4;
		_Atomic uint64_t resumes, push_ns;
	} st;
	pthread_mutex_t why_lock;
	char why[WHY_LEN];
};

static inline void server__bit_set(_Atomic uint64_t *bm, uint64_t i)
{
	atomic_fetch_or_explicit(&bm[i / 64], 1ull << (i % 64),
				 memory_order_relaxed);
}

static inline bool server__bit(_Atomic uint64_t *bm, uint64_t i)
{
	return atomic_load_explicit(&bm[i / 64], memory_order_relaxed) >>
		       (i % 64) & 1;
}

/* Shared by server.c and serve.c; defined in server.c. */
/* The first reason the transfer broke (kept; later ones are effects). */
void server__set_why(struct lm_net_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void server__shut_all(struct lm_net_server *s);
void server__broke(struct lm_net_server *s);
void server__peer_error(struct lm_net_server *s, const char *text);
bool server__done_pending(struct lm_net_server *s, struct lm_net_conn *c);
void server__close_all(struct lm_net_server *s);
void server__count_encodings(struct lm_net_server *s, const uint8_t *frame);
int server__send_frame(struct lm_net_server *s, struct lm_net_conn *c,
		       const uint8_t *buf,
		      size_t len);
int server__handshake(struct lm_net_server *s, bool resume);
int server__send_run(struct lm_net_server *s, struct lm_net_conn *c,
		     unsigned type,
		    uint64_t first, uint64_t n, struct lm_net_lz4_hint *hint);

#endif
