/*
 * net_tls.c - TLS on the migration connections: who is let in, and the
 * one-line reason on both sides when someone is not.
 *
 *   fill_x509, fill_psk   a region filled over TLS (demand on the urgent
 *                         connections, push on the control one), every
 *                         byte checked against the source;
 *   refusals              a certificate of another CA (either side), an
 *                         expired one, a wrong peer name (checked by the
 *                         dialer, and by the listener when told), a wrong
 *                         PSK, plain TCP to a TLS listener and TLS to a
 *                         plain one: the source's connect fails naming
 *                         the reason, the destination logs the peer and
 *                         its reason, and nothing was read before;
 *   resume_wrong_*        post-copy is cut and the source resumes with a
 *                         wrong certificate / a wrong PSK: every re-dial
 *                         is refused at the handshake, as a first contact
 *                         would be, and the source gives up saying why.
 *
 * The credentials are made at test time by tls_mkcerts.sh (certtool,
 * psktool); without them every case skips, saying so.
 */
#include "util/clock.h"
#include "net_util.h"
#include "net_tls.h"
#include "util/error.h"

#define SIZE (4u << 20)

static struct t_tls_dir g_dir;
static bool g_ok;

static int group_up(void **state)
{
	(void)state;
	g_ok = t_tls_make(&g_dir);
	return 0;
}

static int group_down(void **state)
{
	(void)state;
	t_tls_clean(&g_dir);
	return 0;
}

static int need_tls(void **state)
{
	(void)state;
	if (!g_ok) {
		print_message("SKIP: TLS: %s\n", g_dir.reason);
		skip();
	}
	return 0;
}

struct dest_fx {
	struct lm_net_layout l;
	struct lm_net_dest *d;
	struct lm_region *r;
	uint8_t *mem;
};

static void dest_up(struct dest_fx *f, struct lm_net_tls *tls, bool hold)
{
	struct lm_net_dest_config dc = { .listen = "127.0.0.1:0",
					 .layout = &f->l, .nr_urgent = 2,
					 .req_timeout_ms = 2000, .tls = tls,
					 .hold = hold,
					 .hold_timeout_ms = 20000 };
	struct lm_region_config rc = { .name = "tls", .size = SIZE,
				       .delivery = LM_DELIVERY_SELF };

	t_layout(&f->l, SIZE);
	f->mem = t_map(SIZE);
	t_fill(f->mem, SIZE, 5);
	LM_OK(lm_net_dest_create(&dc, &f->d));
	rc.source = lm_net_dest_source(f->d);
	LM_OK(lm_region_create(&rc, &f->r));
	LM_OK(lm_net_dest_attach(f->d, f->r));
}

static void dest_down(struct dest_fx *f)
{
	lm_net_dest_destroy(f->d);
	lm_region_destroy(f->r);
	munmap(f->mem, SIZE);
}

static void fill(struct lm_net_tls *dtls, struct lm_net_tls *stls)
{
	struct dest_fx f;
	struct t_src src = { 0 };

	dest_up(&f, dtls, false);
	src.cfg = (struct lm_net_server_config){
		.mem = f.mem, .layout = &f.l, .to = lm_net_dest_address(f.d),
		.push = true, .compress = true, .tls = stls };
	t_src_thread(&src);
	t_touch(lm_region_addr(f.r), SIZE / 4096, 4096, 2);
	LM_OK(lm_region_wait_complete(f.r, 20000));
	LM_OK(lm_net_dest_finish(f.d));
	LM_OK(t_src_join(&src));
	LM_ASSERT(!memcmp(lm_region_addr(f.r), f.mem, SIZE), "content differs");
	struct lm_net_dest_stats st;

	lm_net_dest_stats(f.d, &st);
	print_message("  %s: demand %llu pages, pushed %llu\n",
		      lm_net_tls_mode(stls),
		      (unsigned long long)st.demand_pages,
		      (unsigned long long)st.push_pages);
	dest_down(&f);
}

static void t_fill_x509(void **state)
{
	struct lm_net_tls *d, *s;

	(void)state;
	LM_REQUIRE_UFFD();
	d = t_tls_x509(&g_dir, "dest", "ca", "src.test");
	s = t_tls_x509(&g_dir, "src", "ca", NULL);	/* checks 127.0.0.1 */
	fill(d, s);
	lm_net_tls_destroy(d);
	lm_net_tls_destroy(s);
}

static void t_fill_psk(void **state)
{
	struct lm_net_tls *d, *s;

	(void)state;
	LM_REQUIRE_UFFD();
	d = t_tls_psk(&g_dir, "psk.txt");
	s = t_tls_psk(&g_dir, "psk.txt");
	fill(d, s);
	lm_net_tls_destroy(d);
	lm_net_tls_destroy(s);
}

/* The source is refused: its error has want_src, the destination's log
 * want_dest, and the destination took no session. */
static void refusal(const char *what, struct lm_net_tls *dtls,
		    struct lm_net_tls *stls, const char *want_dest,
		    const char *want_src)
{
	struct dest_fx f;
	struct lm_net_server_config sc;
	struct lm_net_server *s;
	struct lm_net_dest_stats st;
	uint64_t t0;
	int rc;

	dest_up(&f, dtls, false);
	sc = (struct lm_net_server_config){ .mem = f.mem, .layout = &f.l,
		.to = lm_net_dest_address(f.d), .tls = stls,
		.io_timeout_ms = 3000 };
	LM_OK(lm_net_server_create(&sc, &s));
	rc = lm_net_server_connect(s);
	print_message("  %s\n    source: %s\n", what, util_last_error());
	LM_ASSERT(rc < 0, "%s: the source was let in", what);
	LM_ASSERT(strstr(util_last_error(), want_src) &&
		  !strchr(util_last_error(), '\n'),
		  "%s: source error '%s' lacks '%s'", what, util_last_error(),
		  want_src);
	t0 = lm_now_ns();
	do {
		lm_net_dest_stats(f.d, &st);
		if (st.refused)
			break;
		usleep(5000);
	} while (lm_now_ns() - t0 < 3000000000ull);
	print_message("    destination: %s\n", lm_net_dest_last_error(f.d));
	LM_ASSERT(st.refused >= 1 && st.sessions == 0, "%s: refused %llu, "
		  "sessions %llu", what, (unsigned long long)st.refused,
		  (unsigned long long)st.sessions);
	LM_ASSERT(strstr(lm_net_dest_last_error(f.d), want_dest) &&
		  strstr(lm_net_dest_last_error(f.d), "refused 127.0.0.1:"),
		  "%s: destination log '%s' lacks '%s'", what,
		  lm_net_dest_last_error(f.d), want_dest);
	lm_net_server_destroy(s);
	dest_down(&f);
}

static void t_refusals(void **state)
{
	struct lm_net_tls *dest, *src, *rogue, *expired, *wrongname,
		*dest_strict, *psk, *psk_wrong;

	(void)state;
	LM_REQUIRE_UFFD();
	dest = t_tls_x509(&g_dir, "dest", "ca", NULL);
	src = t_tls_x509(&g_dir, "src", "ca", NULL);
	rogue = t_tls_x509(&g_dir, "rogue", "ca", NULL);
	expired = t_tls_x509(&g_dir, "expired", "ca", NULL);
	wrongname = t_tls_x509(&g_dir, "src", "ca", "elsewhere.test");
	dest_strict = t_tls_x509(&g_dir, "dest", "ca", "someone-else.test");
	psk = t_tls_psk(&g_dir, "psk.txt");
	psk_wrong = t_tls_psk(&g_dir, "psk-wrong.txt");

	refusal("source with a certificate of another CA", dest, rogue,
		"signed by a CA we trust", "refused us");
	refusal("destination with a certificate of another CA", rogue, src,
		"refused us", "certificate was rejected");
	refusal("source with an expired certificate", dest, expired,
		"expired", "refused us");
	refusal("destination not the name the source dialed", dest,
		wrongname, "refused us", "does not match");
	refusal("source not the name the destination wants", dest_strict,
		src, "does not match", "refused us");
	refusal("wrong PSK", psk, psk_wrong, "TLS", "PSK");
	refusal("plain TCP source to a TLS destination", dest, NULL,
		"plain TCP to a TLS listener", "requires TLS");
	refusal("TLS source to a plain destination", NULL, src,
		"TLS to a plain listener", "plain lazymem protocol");

	lm_net_tls_destroy(dest);
	lm_net_tls_destroy(src);
	lm_net_tls_destroy(rogue);
	lm_net_tls_destroy(expired);
	lm_net_tls_destroy(wrongname);
	lm_net_tls_destroy(dest_strict);
	lm_net_tls_destroy(psk);
	lm_net_tls_destroy(psk_wrong);
}

/* Post-copy under way, cut; the source resumes with wrong credentials. */
static void resume_wrong(struct lm_net_tls *dtls, struct lm_net_tls *good,
			 struct lm_net_tls *wrong, const char *want_dest)
{
	struct dest_fx f;
	struct t_src src = { 0 };
	struct lm_net_dest_stats st;

	dest_up(&f, dtls, true);
	src.cfg = (struct lm_net_server_config){
		.mem = f.mem, .layout = &f.l, .to = lm_net_dest_address(f.d),
		.push = false, .resume = true, .resume_timeout_ms = 1500,
		.tls = good };
	t_src_thread(&src);
	LM_OK(lm_net_dest_wait_up(f.d, 5000));
	/* A few pages by demand, so the session is in post-copy. */
	t_touch(lm_region_addr(f.r), 8, 4096, 1);	/* not on cmocka's thread */
	while (!atomic_load(&src.connected))
		usleep(1000);
	lm_net_server_set_tls(src.s, wrong);
	lm_net_server_cut(src.s);
	LM_ASSERT(t_src_join(&src) < 0, "the source resumed with wrong "
		  "credentials");
	print_message("    source: %s\n    destination: %s\n", src.msg,
		      lm_net_dest_last_error(f.d));
	LM_ASSERT(strstr(src.msg, "TLS"), "source error '%s' names no TLS "
		  "reason", src.msg);
	lm_net_dest_stats(f.d, &st);
	LM_ASSERT(st.sessions == 1 && st.refused >= 1, "sessions %llu, "
		  "refused %llu", (unsigned long long)st.sessions,
		  (unsigned long long)st.refused);
	LM_ASSERT(strstr(lm_net_dest_last_error(f.d), want_dest),
		  "destination log '%s' lacks '%s'",
		  lm_net_dest_last_error(f.d), want_dest);
	LM_ASSERT(!memcmp(lm_region_addr(f.r), f.mem, 8 * 4096),
		  "pages fetched before the cut differ");
	dest_down(&f);
}

static void t_resume_wrong_cert(void **state)
{
	struct lm_net_tls *d, *s, *rogue;

	(void)state;
	LM_REQUIRE_UFFD();
	d = t_tls_x509(&g_dir, "dest", "ca", NULL);
	s = t_tls_x509(&g_dir, "src", "ca", NULL);
	rogue = t_tls_x509(&g_dir, "rogue", "ca", NULL);
	resume_wrong(d, s, rogue, "signed by a CA we trust");
	lm_net_tls_destroy(d);
	lm_net_tls_destroy(s);
	lm_net_tls_destroy(rogue);
}

static void t_resume_wrong_psk(void **state)
{
	struct lm_net_tls *d, *s, *wrong;

	(void)state;
	LM_REQUIRE_UFFD();
	d = t_tls_psk(&g_dir, "psk.txt");
	s = t_tls_psk(&g_dir, "psk.txt");
	wrong = t_tls_psk(&g_dir, "psk-wrong.txt");
	resume_wrong(d, s, wrong, "TLS");
	lm_net_tls_destroy(d);
	lm_net_tls_destroy(s);
	lm_net_tls_destroy(wrong);
}

/* Misuse of the options: one line, naming the option. */
static void t_options(void **state)
{
	struct lm_net_tls *t;
	char cert[128], key[128], ca[128], bad[128];
	const struct {
		struct lm_net_tls_opts o;
		const char *want;
	} cases[] = {
		{ { .cert = cert }, "--tls-cert: needs --tls-key" },
		{ { .key = key }, "--tls-key: needs --tls-cert" },
		{ { .cert = cert, .key = key }, "--tls-ca: required" },
		{ { .ca = ca }, "--tls-ca: needs --tls-cert" },
		{ { .cert = cert, .key = key, .ca = ca, .psk_file = bad },
		  "--psk-file: give either" },
		{ { .psk_file = "/nonexistent/psk" }, "--psk-file /nonexistent/psk: No such file" },
		{ { .psk_file = ca }, "--psk-file" },
		{ { .cert = "/nonexistent.pem", .key = key, .ca = ca },
		  "--tls-cert /nonexistent.pem: No such file" },
		{ { .cert = cert, .key = key, .ca = key }, "--tls-ca" },
		{ { .insecure = true, .psk_file = bad }, "--insecure" },
		{ { .peer_name = "x", .psk_file = bad }, "--tls-peer-name" },
	};

	(void)state;
	snprintf(cert, sizeof(cert), "%s/src.pem", g_dir.dir);
	snprintf(key, sizeof(key), "%s/src.key", g_dir.dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", g_dir.dir);
	snprintf(bad, sizeof(bad), "%s/psk.txt", g_dir.dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = lm_net_tls_create(&cases[i].o, &t);

		print_message("  %s\n", util_last_error());
		LM_ASSERT(rc < 0 && !t, "case %zu accepted", i);
		LM_ASSERT(strstr(util_last_error(), cases[i].want),
			  "case %zu: '%s' lacks '%s'", i, util_last_error(),
			  cases[i].want);
	}
	LM_OK(lm_net_tls_create(&(struct lm_net_tls_opts){ 0 }, &t));
	LM_ASSERT(t == NULL, "no options must mean plain TCP");
}

/* Plain TCP beyond loopback is refused without insecure, on both ends. */
static void t_plain_not_loopback(void **state)
{
	struct lm_net_layout l;
	struct lm_net_dest_config dc = { .listen = "0.0.0.0:0", .layout = &l };
	struct lm_net_server_config sc = { .layout = &l, .to = "192.0.2.1:7000" };
	struct lm_net_dest *d;
	struct lm_net_server *s;

	(void)state;
	t_layout(&l, SIZE);
	LM_ASSERT(lm_net_dest_create(&dc, &d) == -EPERM &&
		  strstr(util_last_error(), "--insecure"), "dest: %s",
		  util_last_error());
	print_message("  %s\n", util_last_error());
	sc.mem = t_map(SIZE);
	LM_ASSERT(lm_net_server_create(&sc, &s) == -EPERM &&
		  strstr(util_last_error(), "--insecure"), "server: %s",
		  util_last_error());
	print_message("  %s\n", util_last_error());
	dc.insecure = sc.insecure = true;
	LM_OK(lm_net_dest_create(&dc, &d));
	lm_net_dest_destroy(d);
	LM_OK(lm_net_server_create(&sc, &s));
	lm_net_server_destroy(s);
	munmap((void *)sc.mem, SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(t_options, need_tls),
		cmocka_unit_test(t_plain_not_loopback),
		cmocka_unit_test_setup(t_fill_x509, need_tls),
		cmocka_unit_test_setup(t_fill_psk, need_tls),
		cmocka_unit_test_setup(t_refusals, need_tls),
		cmocka_unit_test_setup(t_resume_wrong_cert, need_tls),
		cmocka_unit_test_setup(t_resume_wrong_psk, need_tls),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_up, group_down);
}
