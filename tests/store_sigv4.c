/*
 * store_sigv4.c - the store's AWS Signature V4 signing (curl's
 * CURLOPT_AWS_SIGV4, wired by src/store/http.c) against AWS's published
 * Signature V4 test suite: same credentials, date, host and request, the
 * Authorization header must be the suite's, byte for byte.
 *
 * No S3 server is packaged, so the request goes to a listener of this
 * test on loopback (CURLOPT_CONNECT_TO keeps the Host header the suite's
 * "example.amazonaws.com"), which records it and answers 200.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "lm_test.h"
#include "store/http.h"

#define SUITE_DATE "20150830T123600Z"
#define SUITE_CRED "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/" \
		   "us-east-1/service/aws4_request, "

struct listener {
	int fd, port;
	char request[8192];
	pthread_t thread;
};

static void *serve_one(void *arg)
{
	struct listener *l = arg;
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
				    "Connection: close\r\n\r\n";
	size_t n = 0;
	int c = accept(l->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	while (n < sizeof(l->request) - 1) {
		ssize_t k = read(c, l->request + n, sizeof(l->request) - 1 - n);

		if (k <= 0)
			break;
		n += (size_t)k;
		l->request[n] = '\0';
		if (strstr(l->request, "\r\n\r\n"))
			break;
	}
	if (write(c, reply, sizeof(reply) - 1) < 0)
		perror("write");
	close(c);
	return NULL;
}

static void listen_once(struct listener *l)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	memset(l->request, 0, sizeof(l->request));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l->fd >= 0);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l->fd, 1), 0);
	assert_int_equal(getsockname(l->fd, (struct sockaddr *)&a, &len), 0);
	l->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&l->thread, NULL, serve_one, l), 0);
}

static void ignore(struct store_req *r, void *arg)
{
	(void)r;
	(void)arg;
}

/* The Authorization header curl sent for one request, into auth. */
static void signed_request(const char *provider, enum store_method method,
			   const char *path, char *auth, size_t len,
			   char *request, size_t rlen)
{
	struct listener l;
	char connect_to[128], why[256];
	struct store_http_opts o = {
		.sigv4 = provider, .access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		.amz_date = SUITE_DATE, .no_retries = true,
	};
	struct store_req r = { .method = method, .max_len = 1024 }, *rp = &r;
	struct store_http *h;
	const char *a, *e;

	listen_once(&l);
	snprintf(connect_to, sizeof(connect_to),
		 "example.amazonaws.com:80:127.0.0.1:%d", l.port);
	o.connect_to = connect_to;
	LM_OK(store_http_create(&o, &h, why, sizeof(why)));
	snprintf(r.url, sizeof(r.url), "http://example.amazonaws.com%s", path);
	store_http_run(h, &rp, 1, ignore, NULL);
	store_http_destroy(h);
	pthread_join(l.thread, NULL);
	close(l.fd);
	free(r.data);
	LM_ASSERT(r.err == 0, "request failed: %s", r.why);
	snprintf(request, rlen, "%s", l.request);
	a = strstr(l.request, "\r\nAuthorization: ");
	LM_ASSERT(a, "no Authorization header in:\n%s", l.request);
	a += strlen("\r\nAuthorization: ");
	e = strstr(a, "\r\n");
	snprintf(auth, len, "%.*s", (int)(e - a), a);
}

static void check_vector(const char *name, const char *path,
			 const char *signature)
{
	char auth[1024], want[1024], req[8192];

	signed_request("aws:amz:us-east-1:service", STORE_GET, path, auth,
		       sizeof(auth), req, sizeof(req));
	snprintf(want, sizeof(want), SUITE_CRED "SignedHeaders=host;x-amz-date, "
		 "Signature=%s", signature);
	LM_ASSERT(!strcmp(auth, want), "vector %s: curl sent\n  %s\nAWS's "
		  "suite says\n  %s", name, auth, want);
}

/* get-vanilla: GET / */
static void get_vanilla(void **state)
{
	(void)state;
	check_vector("get-vanilla", "/",
		     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

/* get-vanilla-empty-query-key: GET /?Param1=value1 */
static void get_vanilla_empty_query_key(void **state)
{
	(void)state;
	check_vector("get-vanilla-empty-query-key", "/?Param1=value1",
		     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
}

/* get-vanilla-query-order-key-case: the query sorted before signing.
 * curl 7.88.1 (Debian 12) signs the query as sent, unsorted, and gets
 * 852baf9d...: this vector runs alone (argument "query") as a test meson
 * expects to fail, so a curl that learns to sort shows up as an
 * unexpected pass. The store never sends a query string (store URLs
 * refuse '?'), so it is not affected. */
static void get_vanilla_query_order_key_case(void **state)
{
	(void)state;
	check_vector("get-vanilla-query-order-key-case",
		     "/?Param2=value2&Param1=value1",
		     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

/* What the store sends S3: the payload hash header, signed. */
static void s3_payload_hash_signed(void **state)
{
	char auth[1024], req[8192];

	(void)state;
	signed_request("aws:amz:eu-west-1:s3", STORE_HEAD, "/bucket/chunks/ab/x",
		       auth, sizeof(auth), req, sizeof(req));
	LM_ASSERT(strstr(auth, "/eu-west-1/s3/aws4_request") &&
		  strstr(auth, "x-amz-content-sha256") &&
		  strstr(req, "\r\nx-amz-content-sha256: e3b0c44298fc1c149afbf4c8"
			 "996fb92427ae41e4649b934ca495991b7852b855\r\n"),
		  "request:\n%s", req);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_vanilla),
		cmocka_unit_test(get_vanilla_empty_query_key),
		cmocka_unit_test(s3_payload_hash_signed),
	};
	const struct CMUnitTest query[] = {
		cmocka_unit_test(get_vanilla_query_order_key_case),
	};

	if (argc > 1 && !strcmp(argv[1], "query"))
		return cmocka_run_group_tests(query, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
