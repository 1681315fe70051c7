/*
 * net_hostile.c - malformed and hostile peers, on both ends.
 *
 * Each case sends one bad frame and expects an ERROR frame naming what was
 * wrong, then a closed connection; the destination (or source) stays up
 * and serves a well-behaved peer afterwards.
 *
 * Every case runs twice: over plain TCP and over TLS (X.509, mutual), where
 * the hostile peer is an authenticated one sending the same bad frames
 * inside its TLS session: the decoder must judge them the same way.
 */
#include "util/clock.h"
#include "net_util.h"
#include "net/conn.h"
#include "net/sock.h"
#include "net_tls.h"
#include "util/error.h"
#include <arpa/inet.h>

#define SIZE (1u << 20)
#define SESSION 0x5eed5eed5eedull

/* The group's credentials: NULL both for plain TCP. */
static struct lm_net_tls *g_dest_tls, *g_src_tls;
static struct t_tls_dir g_dir;

struct fixture {
	struct lm_net_layout l;
	struct lm_net_dest *d;
	struct lm_region *r;
	uint8_t *mem;
};

static void fx_setup(struct fixture *f)
{
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &f->l, .nr_urgent = 1,
					 .req_timeout_ms = 1000,
					 .tls = g_dest_tls };
	struct lm_region_config rc = { .name = "hostile", .size = SIZE,
				       .delivery = LM_DELIVERY_SELF };

	t_layout(&f->l, SIZE);
	f->mem = t_map(SIZE);
	t_fill(f->mem, SIZE, 9);
	LM_OK(lm_net_dest_create(&dc, &f->d));
	rc.source = lm_net_dest_source(f->d);
	LM_OK(lm_region_create(&rc, &f->r));
	LM_OK(lm_net_dest_attach(f->d, f->r));
}

static void fx_teardown(struct fixture *f)
{
	lm_net_dest_destroy(f->d);
	lm_region_destroy(f->r);
	munmap(f->mem, SIZE);
}

static struct lm_net_conn *dial(const char *addr)
{
	struct lm_net_addr a;
	struct lm_net_conn *c;

	LM_OK(lm_net_addr_parse(addr, &a));
	LM_OK(lm_net_conn_dial(g_src_tls, &a, 2000, &c));
	return c;
}

/* After the bad frame: an ERROR containing want, then EOF. */
static void expect_refusal(struct lm_net_conn *fd, const char *want)
{
	static uint8_t buf[LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD];
	struct lm_net_msg m;
	char why[256];
	int err = lm_net_recv_frame(fd, buf, sizeof(buf), NULL, &m,
				    lm_net_deadline_ms(3000), why, sizeof(why));

	LM_ASSERT(err == 0 && m.h.type == LM_NET_ERROR,
		  "expected an ERROR frame, got err %d (%s)", err, why);
	print_message("  refused: %s\n", m.u.error.text);
	LM_ASSERT(strstr(m.u.error.text, want), "ERROR '%s' lacks '%s'",
		  m.u.error.text, want);
	err = lm_net_recv_all(fd, buf, 1, lm_net_deadline_ms(3000));
	LM_ASSERT(err == -ECONNRESET, "connection not closed (%d)", err);
	lm_net_conn_close(fd);
}

static void send_raw(struct lm_net_conn *fd, const void *b, size_t n)
{
	LM_OK(lm_net_send_all(fd, b, n, lm_net_deadline_ms(2000)));
}

static size_t hello(uint8_t *buf, const struct lm_net_layout *l,
		    uint32_t role, uint32_t slot)
{
	struct lm_net_hello hi = { .session = SESSION, .role = role,
				   .slot = slot, .layout = *l };

	return lm_net_enc_hello(buf, 0, &hi);
}

static void t_before_handshake(void **state)
{
	struct fixture f;
	uint8_t b[4096];
	struct lm_net_layout other;
	uint64_t big = 2 * SIZE;
	char why[64];
	size_t n;
	struct lm_net_conn *fd;

	(void)state;
	LM_REQUIRE_UFFD();
	fx_setup(&f);
	const char *addr = lm_net_dest_address(f.d);
	/* A peer that connects and says nothing: it must delay no one. */
	struct lm_net_conn *silent = dial(addr);
	uint64_t t0 = lm_now_ns();

	fd = dial(addr);
	send_raw(fd, "GET / HTTP/1.1\r\n", 16);
	expect_refusal(fd, "bad magic");

	fd = dial(addr);
	n = hello(b, &f.l, 0, 0);
	b[4] = 9;
	send_raw(fd, b, n);
	expect_refusal(fd, "protocol version 9");

	fd = dial(addr);
	lm_net_hdr_encode(b, 77, 0, 0, 0);
	send_raw(fd, b, LM_NET_HDR_SIZE);
	expect_refusal(fd, "unknown message type 77");

	fd = dial(addr);
	lm_net_hdr_encode(b, LM_NET_PUSH, 0, 0xffffffffu, 0);
	send_raw(fd, b, LM_NET_HDR_SIZE);
	expect_refusal(fd, "exceeds the limit");

	fd = dial(addr);
	n = hello(b, &f.l, 0, 0);
	lm_put64(b + LM_NET_HDR_SIZE + 16, 12345);	/* page size */
	send_raw(fd, b, n);
	expect_refusal(fd, "page size 12345");

	fd = dial(addr);
	n = hello(b, &f.l, 0, 0);
	lm_put32(b + LM_NET_HDR_SIZE + 24, 100000);	/* regions */
	send_raw(fd, b, n);
	expect_refusal(fd, "100000 regions");

	fd = dial(addr);
	LM_ASSERT(lm_net_layout_init(&other, 4096, &big, 1, why,
				     sizeof(why)) == 0, "%s", why);
	send_raw(fd, b, hello(b, &other, 0, 0));
	expect_refusal(fd, "region 0: peer's size");

	fd = dial(addr);
	n = hello(b, &f.l, 0, 0);
	send_raw(fd, b, 20);				/* truncated */
	lm_net_conn_shutdown(fd, SHUT_WR);
	if (g_src_tls) {
		/* TLS: a session cut short is void (a truncation attack
		 * looks the same), so no ERROR can follow; the refusal is
		 * in the destination's log. */
		uint8_t one;

		LM_ASSERT(lm_net_recv_all(fd, &one, 1, lm_net_deadline_ms(3000))
			  == -ECONNRESET, "connection not closed");
		lm_net_conn_close(fd);
		LM_ASSERT(strstr(lm_net_dest_last_error(f.d), "truncated frame"),
			  "log: %s", lm_net_dest_last_error(f.d));
	} else {
		expect_refusal(fd, "truncated frame");
	}

	fd = dial(addr);
	send_raw(fd, b, lm_net_enc_req(b, 1, 0, 4096));
	expect_refusal(fd, "DEMAND_REQ before the HELLO");

	fd = dial(addr);
	send_raw(fd, b, hello(b, &f.l, LM_NET_ROLE_URGENT, 0));
	expect_refusal(fd, "without a control connection");

	fd = dial(addr);
	send_raw(fd, b, hello(b, &f.l, LM_NET_ROLE_URGENT, 99));
	expect_refusal(fd, "urgent slot 99");

	/* Still up: a real source fills the region. */
	{
		struct t_src src = { 0 };

		src.cfg = (struct lm_net_server_config){
			.mem = f.mem, .layout = &f.l, .to = addr,
			.push = true, .compress = true, .tls = g_src_tls };
		t_src_thread(&src);
		LM_OK(lm_region_wait_complete(f.r, 10000));
		LM_OK(lm_net_dest_finish(f.d));
		LM_OK(t_src_join(&src));
		LM_ASSERT(!memcmp(lm_region_addr(f.r), f.mem, SIZE),
			  "content differs");
	}
	LM_ASSERT(lm_now_ns() - t0 < 1500000000ull, "the silent peer delayed "
		  "the others: %llu ms", (unsigned long long)((lm_now_ns() - t0) / 1000000));
	expect_refusal(silent, "no HELLO within 2000 ms");
	fx_teardown(&f);
}

/* A fake source: control + one urgent connection, session SESSION. */
static struct lm_net_conn *fake_session(struct fixture *f)
{
	static uint8_t buf[LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD];
	const char *addr = lm_net_dest_address(f->d);
	struct lm_net_conn *ctl = dial(addr), *urg;
	struct lm_net_msg m;
	char why[256];
	uint64_t covered = 0;

	send_raw(ctl, buf, hello(buf, &f->l, LM_NET_ROLE_CONTROL, 0));
	LM_OK(lm_net_recv_frame(ctl, buf, sizeof(buf), &f->l, &m,
				lm_net_deadline_ms(2000), why, sizeof(why)));
	LM_ASSERT(m.h.type == LM_NET_WELCOME, "got %s",
		  lm_net_type_name(m.h.type));
	while (m.u.welcome.resumed && covered < f->l.nr_pages) {
		LM_OK(lm_net_recv_frame(ctl, buf, sizeof(buf), &f->l, &m,
					lm_net_deadline_ms(2000), why,
					sizeof(why)));
		LM_ASSERT(m.h.type == LM_NET_HAVE, "got %s",
			  lm_net_type_name(m.h.type));
		covered += m.u.bitmap.nbits;
	}
	urg = dial(addr);
	send_raw(urg, buf, hello(buf, &f->l, LM_NET_ROLE_URGENT, 0));
	LM_OK(lm_net_dest_wait_up(f->d, 2000));
	lm_net_conn_close(urg);
	return ctl;
}

static void t_after_handshake(void **state)
{
	static uint8_t b[LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD];
	struct fixture f;
	uint64_t bm[(SIZE / 4096 + 63) / 64] = { 0 };
	size_t n;
	struct lm_net_conn *fd;

	(void)state;
	LM_REQUIRE_UFFD();
	fx_setup(&f);

	fd = fake_session(&f);
	n = lm_net_enc_pages(b, LM_NET_PUSH, 0, &f.l, f.mem, 0, 1, NULL);
	lm_put64(b + LM_NET_HDR_SIZE, SIZE);		/* past the end */
	send_raw(fd, b, n);
	expect_refusal(fd, "outside the");

	fd = fake_session(&f);
	n = lm_net_enc_pages(b, LM_NET_PUSH, 0, &f.l, f.mem, 0, 1, NULL);
	lm_put64(b + LM_NET_HDR_SIZE, 100);		/* unaligned */
	send_raw(fd, b, n);
	expect_refusal(fd, "not aligned");

	fd = fake_session(&f);
	n = lm_net_enc_pages(b, LM_NET_PUSH, 0, &f.l, f.mem, 0, 1, NULL);
	lm_put32(b + LM_NET_HDR_SIZE + 8, 100000);	/* absurd count */
	send_raw(fd, b, n);
	expect_refusal(fd, "100000 pages in one frame");

	fd = fake_session(&f);
	n = lm_net_enc_pages(b, LM_NET_PUSH, 0, &f.l, f.mem, 0, 2, NULL);
	lm_put32(b + LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED + 4, 0);
	b[LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED] = LM_NET_ENC_ZERO;
	send_raw(fd, b, n);				/* records < data */
	expect_refusal(fd, "add up to");

	fd = fake_session(&f);
	n = lm_net_enc_pages(b, LM_NET_PUSH, 0, &f.l, f.mem, 8192, 1, NULL);
	b[LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED] = LM_NET_ENC_LZ4;
	lm_put32(b + LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED + 4, 16);
	memset(b + LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED + 8, 0xff, 16);
	lm_put32(b + 8, LM_NET_PAGES_FIXED + 8 + 16);
	send_raw(fd, b, LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED + 8 + 16);
	expect_refusal(fd, "does not expand to one page");

	fd = fake_session(&f);
	n = lm_net_enc_bitmap(b, LM_NET_DIRTY, 0, SIZE / 4096, bm);
	lm_put64(b + LM_NET_HDR_SIZE, 5);		/* first + n > pages */
	send_raw(fd, b, n);
	expect_refusal(fd, "outside the layout");

	fd = fake_session(&f);
	n = lm_net_enc_vcpu(b, 0, "abc", 3);
	lm_put32(b + LM_NET_HDR_SIZE + 4, 300);		/* blob length */
	send_raw(fd, b, n);
	expect_refusal(fd, "VCPU: id 0 with 300 bytes");

	fd = fake_session(&f);
	send_raw(fd, b, lm_net_enc_welcome(b, 1, false, 0));
	expect_refusal(fd, "unexpected WELCOME");

	/* The region took no page from any of that. */
	LM_ASSERT(lm_region_pages_present(f.r) == 0, "%llu pages present",
		  (unsigned long long)lm_region_pages_present(f.r));
	/* And the destination still shakes hands. */
	lm_net_conn_close(fake_session(&f));
	fx_teardown(&f);
}

/* A hostile destination against the page server. */
static void t_hostile_destination(void **state)
{
	static uint8_t b[LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD];
	struct lm_net_layout l;
	struct lm_net_addr a;
	struct lm_net_server_config sc;
	struct t_src src = { 0 };
	struct lm_net_msg m;
	char why[256], addr[64];
	uint8_t *mem = t_map(SIZE);
	struct lm_net_conn *ctl, *urg;
	char hwhy[256];
	int lfd;

	(void)state;
	t_layout(&l, SIZE);
	LM_OK(lm_net_addr_parse("127.0.0.1:0", &a));
	LM_OK(lm_net_listen(&a, &lfd));
	snprintf(addr, sizeof(addr), "127.0.0.1:%u",
		 ntohs(((struct sockaddr_in *)&a.ss)->sin_port));
	sc = (struct lm_net_server_config){ .mem = mem, .layout = &l,
					    .to = addr, .tls = g_src_tls };

	/* 1: an absurd WELCOME fails the handshake with its reason. */
	{
		struct lm_net_server *s;
		pid_t pid;
		int rc;

		LM_OK(lm_net_server_create(&sc, &s));
		pid = fork();
		if (pid == 0) {
			struct lm_net_conn *fd;

			if (lm_net_conn_accept(g_dest_tls, lm_net_accept(lfd),
					       2000, &fd, hwhy, sizeof(hwhy)))
				_exit(1);
			lm_net_recv_frame(fd, b, sizeof(b), NULL, &m,
					  lm_net_deadline_ms(2000), why,
					  sizeof(why));
			lm_net_enc_welcome(b, 1, false, 0);
			lm_put32(b + LM_NET_HDR_SIZE, 1000);
			lm_net_send_all(fd, b, LM_NET_HDR_SIZE + 16,
					lm_net_deadline_ms(2000));
			usleep(200000);
			_exit(0);
		}
		rc = lm_net_server_connect(s);
		waitpid(pid, NULL, 0);
		print_message("  source: %s\n", util_last_error());
		LM_ASSERT(rc == -EPROTO && strstr(util_last_error(),
						  "1000 urgent connections"),
			  "connect returned %d", rc);
		lm_net_server_destroy(s);
	}

	/* 2: a DEMAND_REQ outside the layout gets an ERROR, and the
	 * source gives up the session saying why (no resume asked). */
	src.cfg = sc;
	t_src_thread(&src);
	LM_OK(lm_net_conn_accept(g_dest_tls, lm_net_accept(lfd), 2000, &ctl,
				 hwhy, sizeof(hwhy)));
	LM_OK(lm_net_recv_frame(ctl, b, sizeof(b), NULL, &m,
				lm_net_deadline_ms(2000), why, sizeof(why)));
	send_raw(ctl, b, lm_net_enc_welcome(b, 1, false, 0));
	LM_OK(lm_net_conn_accept(g_dest_tls, lm_net_accept(lfd), 2000, &urg,
				 hwhy, sizeof(hwhy)));
	LM_OK(lm_net_recv_frame(urg, b, sizeof(b), NULL, &m,
				lm_net_deadline_ms(2000), why, sizeof(why)));
	LM_ASSERT(m.h.type == LM_NET_HELLO && m.u.hello.role == 1, "no urgent");
	lm_net_enc_req(b, 1, 0, 4096);
	lm_put64(b + LM_NET_HDR_SIZE, 4ull * SIZE);
	send_raw(urg, b, LM_NET_HDR_SIZE + 16);
	expect_refusal(urg, "outside the");
	pthread_join(src.thread, NULL);
	LM_ASSERT(src.rc == -EPIPE && strstr(src.msg, "outside the"),
		  "serve returned %d", src.rc);
	lm_net_server_destroy(src.s);
	lm_net_conn_close(ctl);
	close(lfd);
	munmap(mem, SIZE);
}

/* The same cases again, every connection authenticated with X.509. */
static int tls_up(void **state)
{
	(void)state;
	if (!t_tls_make(&g_dir))
		return 0;	/* the cases skip, saying why */
	g_dest_tls = t_tls_x509(&g_dir, "dest", "ca", NULL);
	g_src_tls = t_tls_x509(&g_dir, "src", "ca", NULL);
	return 0;
}

static int tls_down(void **state)
{
	(void)state;
	lm_net_tls_destroy(g_dest_tls);
	lm_net_tls_destroy(g_src_tls);
	g_dest_tls = g_src_tls = NULL;
	t_tls_clean(&g_dir);
	return 0;
}

static int tls_case(void **state)
{
	(void)state;
	if (!g_src_tls) {
		print_message("SKIP: TLS: %s\n", g_dir.reason);
		skip();
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest plain[] = {
		cmocka_unit_test(t_before_handshake),
		cmocka_unit_test(t_after_handshake),
		cmocka_unit_test(t_hostile_destination),
	};
	const struct CMUnitTest tls[] = {
		cmocka_unit_test_setup(t_before_handshake, tls_case),
		cmocka_unit_test_setup(t_after_handshake, tls_case),
		cmocka_unit_test_setup(t_hostile_destination, tls_case),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests_name("plain", plain, NULL, NULL);
	rc |= cmocka_run_group_tests_name("tls", tls, tls_up, tls_down);
	return rc;
}
