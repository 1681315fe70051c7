/*
 * proxy.c - a TCP proxy that delays every byte by half a round trip each
 * way: the benchmarks' stand-in for netem, which these machines lack.
 *
 * Each accepted connection gets a connection to the target and two pump
 * threads, one per direction. A pump reads whatever arrives, stamps it with
 * the time it may leave and sends it when that time comes; bytes keep their
 * order and arrive in the pieces they were read in. The whole round trip
 * is added on the way back (target to client): for request and reply, and
 * for a stream and its acknowledgements, only the sum matters, and a pump
 * with no delay forwards on the wake-up that brought the data instead of
 * sleeping again, which on two busy CPUs saved tens of microseconds per
 * round trip (bench postcopy, demand at 200 us). The
 * timer slack of pump threads is set to 1 us, since the default 50 us would
 * be a quarter of a 200 us round trip. At most QUEUE_MAX bytes wait in one
 * direction; beyond that the pump stops reading and TCP flow control pushes
 * back on the sender, as a slow link would.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "net/net.h"
#include "net/sock.h"

#define CHUNK (64u << 10)
#define QUEUE_MAX (32u << 20)
#define MAX_CONNS 256

struct chunk {
	struct chunk *next;
	uint64_t due;
	size_t len, off;
	uint8_t data[];
};

struct pump {
	struct lm_net_proxy *p;
	uint64_t delay_ns;
	_Atomic int *finished;
	int in, out;
	pthread_t thread;
};

struct conn {
	int a, b;		/* accepted, and dialed */
	struct pump up, down;
	bool used;
	_Atomic int finished;	/* pumps done: 2 means reap */
};

struct lm_net_proxy {
	struct lm_net_addr listen, target;
	uint64_t rtt_ns;	/* added target -> client */
	int lfd;
	pthread_t accept_thread;
	_Atomic bool stop;
	pthread_mutex_t lock;
	struct conn conn[MAX_CONNS];
	_Atomic uint64_t bytes;
};

static void *pump_main(void *arg)
{
	struct pump *pu = arg;
	struct lm_net_proxy *p = pu->p;
	struct chunk *head = NULL, *tail = NULL;
	size_t queued = 0;
	bool eof = false;

	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	while (!atomic_load(&p->stop) && (!eof || head)) {
		struct pollfd pf = { .fd = pu->in, .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		uint64_t now = lm_now_ns();

		if (head) {
			uint64_t left = head->due > now ? head->due - now : 0;

			ts.tv_sec = (time_t)(left / 1000000000ull);
			ts.tv_nsec = (long)(left % 1000000000ull);
			tsp = &ts;
		} else {
			ts.tv_sec = 0;
			ts.tv_nsec = 100000000;	/* look at stop now and then */
			tsp = &ts;
		}
		if (eof || queued >= QUEUE_MAX)
			pf.fd = -1;
		if (ppoll(&pf, 1, tsp, NULL) < 0 && errno != EINTR)
			break;
		if (pf.revents) {
			struct chunk *c = malloc(sizeof(*c) + CHUNK);
			ssize_t n;

			if (!c)
				break;
			n = read(pu->in, c->data, CHUNK);
			if (n <= 0) {
				free(c);
				eof = true;
			} else {
				c->next = NULL;
				c->len = (size_t)n;
				c->off = 0;
				c->due = lm_now_ns() + pu->delay_ns;
				if (tail)
					tail->next = c;
				else
					head = c;
				tail = c;
				queued += (size_t)n;
			}
		}
		now = lm_now_ns();
		while (head && head->due <= now) {
			ssize_t n = send(pu->out, head->data + head->off,
					 head->len - head->off, MSG_NOSIGNAL);
			struct chunk *c = head;

			if (n <= 0) {
				eof = true;
				goto out;
			}
			atomic_fetch_add_explicit(&p->bytes, (uint64_t)n,
						  memory_order_relaxed);
			c->off += (size_t)n;
			if (c->off < c->len)
				continue;
			queued -= c->len;
			head = c->next;
			if (!head)
				tail = NULL;
			free(c);
		}
	}
out:
	while (head) {
		struct chunk *c = head;

		head = c->next;
		free(c);
	}
	/* Pass the close on: the other side sees EOF (or a reset). */
	shutdown(pu->out, SHUT_WR);
	shutdown(pu->in, SHUT_RD);
	atomic_fetch_add(pu->finished, 1);
	return NULL;
}

static void reap(struct conn *c)
{
	pthread_join(c->up.thread, NULL);
	pthread_join(c->down.thread, NULL);
	close(c->a);
	close(c->b);
	c->used = false;
}

static void *accept_main(void *arg)
{
	struct lm_net_proxy *p = arg;

	while (!atomic_load(&p->stop)) {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
		struct conn *c = NULL;
		int a, b;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		a = lm_net_accept(p->lfd);
		if (a < 0)
			continue;
		b = lm_net_dial(&p->target, 2000);
		if (b < 0) {
			close(a);
			continue;
		}
		pthread_mutex_lock(&p->lock);
		for (unsigned i = 0; i < MAX_CONNS; i++)
			if (p->conn[i].used &&
			    atomic_load(&p->conn[i].finished) == 2)
				reap(&p->conn[i]);
		for (unsigned i = 0; i < MAX_CONNS && !c; i++)
			if (!p->conn[i].used)
				c = &p->conn[i];
		if (c) {
			c->used = true;
			c->a = a;
			c->b = b;
			atomic_store(&c->finished, 0);
			c->up = (struct pump){ .p = p, .in = a, .out = b,
					       .finished = &c->finished };
			c->down = (struct pump){ .p = p, .in = b, .out = a,
						 .delay_ns = p->rtt_ns,
						 .finished = &c->finished };
			pthread_create(&c->up.thread, NULL, pump_main, &c->up);
			pthread_create(&c->down.thread, NULL, pump_main,
				       &c->down);
		}
		pthread_mutex_unlock(&p->lock);
		if (!c) {
			close(a);
			close(b);
		}
	}
	return NULL;
}

int lm_net_proxy_create(const char *listen, const char *connect,
			uint64_t rtt_ns, struct lm_net_proxy **out)
{
	struct lm_net_proxy *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return util_error(-ENOMEM, "proxy: out of memory");
	p->rtt_ns = rtt_ns;
	p->lfd = -1;
	pthread_mutex_init(&p->lock, NULL);
	err = lm_net_addr_parse(listen, &p->listen);
	if (!err)
		err = lm_net_addr_parse(connect, &p->target);
	if (!err)
		err = lm_net_listen(&p->listen, &p->lfd);
	if (!err) {
		lm_net_addr_name(&p->listen);
		err = -pthread_create(&p->accept_thread, NULL, accept_main, p);
		if (err)
			util_error(err, "proxy: accept thread: %s",
				 strerror(-err));
	}
	if (err) {
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

const char *lm_net_proxy_address(const struct lm_net_proxy *p)
{
	return p->listen.text;
}

uint64_t lm_net_proxy_bytes(const struct lm_net_proxy *p)
{
	return atomic_load(&p->bytes);
}

void lm_net_proxy_cut(struct lm_net_proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < MAX_CONNS; i++) {
		if (!p->conn[i].used)
			continue;
		shutdown(p->conn[i].a, SHUT_RDWR);
		shutdown(p->conn[i].b, SHUT_RDWR);
	}
	pthread_mutex_unlock(&p->lock);
}

void lm_net_proxy_destroy(struct lm_net_proxy *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->accept_thread, NULL);
	lm_net_proxy_cut(p);
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (p->conn[i].used)
			reap(&p->conn[i]);
	close(p->lfd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
