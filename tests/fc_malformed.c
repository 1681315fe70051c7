/*
 * fc_malformed.c - every way the one message can be wrong is refused,
 * with a line back to the peer and in the log that names what is wrong,
 * and the handler goes on serving a good VM afterwards.
 */
#include <sys/syscall.h>

#include "fc_test.h"

#define SIZE (4ull << 20)

struct bad_case {
	const char *name;
	const char *json;	/* BASE: a valid base address */
	int nfds;		/* 0, 1 (the uffd), 2 (uffd twice), -1 (a pipe) */
	const char *expect;	/* words of the refusal */
};

#define R(base, size, off, ps) \
	"{\"base_host_virt_addr\":" base ",\"size\":" size ",\"offset\":" off \
	",\"page_size\":" ps ",\"page_size_kib\":" ps "}"

static const struct bad_case cases[] = {
	{ "not JSON", "this is not json", 1, "malformed JSON" },
	{ "truncated then closed", "[{\"size\": 4096", 1, NULL },
	{ "object, not array", "{\"size\":4096}", 1, "expected an array" },
	{ "empty array", "[]", 1, "0 regions" },
	{ "element not object", "[42]", 1, "region 0 is a JSON int" },
	{ "missing base", "[{\"size\":4096,\"offset\":0,\"page_size\":4096}]",
	  1, "region 0: missing \"base_host_virt_addr\"" },
	{ "string size", "[" R("BASE", "\"4096\"", "0", "4096") "]", 1,
	  "\"size\" is string" },
	{ "negative offset", "[" R("BASE", "4096", "-4096", "4096") "]", 1,
	  "\"offset\" is negative" },
	{ "wrong page size", "[" R("BASE", "8192", "0", "8192") "]", 1,
	  "page size 8192" },
	{ "no page size", "[{\"base_host_virt_addr\":BASE,\"size\":4096,"
	  "\"offset\":0}]", 1, "missing \"page_size\"" },
	{ "page sizes disagree", "[{\"base_host_virt_addr\":BASE,\"size\":"
	  "4096,\"offset\":0,\"page_size\":4096,\"page_size_kib\":2097152}]", 1,
	  "disagree" },
	{ "region beyond file", "[" R("BASE", "4194304", "4096", "4096") "]",
	  1, "does not fit the memory file" },
	{ "unaligned base", "[" R("4097", "4096", "0", "4096") "]", 1,
	  "must be positive multiples" },
	{ "overlap in memory", "[" R("BASE", "8192", "0", "4096") ","
	  R("BASE", "4096", "8192", "4096") "]", 1,
	  "regions 0 and 1 overlap in guest memory" },
	{ "overlap in file", "[" R("BASE", "8192", "0", "4096") ","
	  R("4096", "4096", "4096", "4096") "]", 1,
	  "overlap in the memory file" },
	{ "trailing data", "[" R("BASE", "4096", "0", "4096") "] extra", 1,
	  "bytes after the JSON message" },
	{ "no fd", "[" R("BASE", "4096", "0", "4096") "]", 0,
	  "no file descriptor attached" },
	{ "two fds", "[" R("BASE", "4096", "0", "4096") "]", 2,
	  "2 file descriptors attached" },
	{ "not a userfaultfd", "[" R("BASE", "4096", "0", "4096") "]", -1,
	  "not a userfaultfd" },
};

/* Send one case; return the handler's reply line (malloc'd, "" if none). */
static char *send_case(struct t_daemon *d, const struct bad_case *c,
		       const struct fc_guest *g)
{
	char json[2048], *reply = calloc(1, 1024);
	int fds[2] = { g->uffd, g->uffd }, pipefd[2], s, nfds = c->nfds;
	struct pollfd p;
	size_t got = 0;

	/* BASE stands for the guest's address. */
	json[0] = '\0';
	for (const char *q = c->json; *q;) {
		size_t n = strlen(json);

		if (!strncmp(q, "BASE", 4)) {
			snprintf(json + n, sizeof(json) - n, "%llu",
				 (unsigned long long)(uintptr_t)g->mem);
			q += 4;
		} else {
			json[n] = *q++;
			json[n + 1] = '\0';
		}
	}
	if (nfds < 0) {
		LM_ASSERT(pipe(pipefd) == 0, "pipe");
		fds[0] = pipefd[0];
		nfds = 1;
	}
	LM_OK(fc_client_send(d->sock, json, strlen(json), fds, nfds, &s));
	if (c->nfds < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	if (!c->expect)		/* the peer gives up half-way */
		shutdown(s, SHUT_WR);
	p = (struct pollfd){ .fd = s, .events = POLLIN };
	while (got < 1023 && poll(&p, 1, 5000) == 1) {
		ssize_t n = read(s, reply + got, 1023 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(s);
	return reply;
}

static void test_malformed(void **state)
{
	struct t_daemon d = { 0 };
	struct fc_guest g;
	char *err;

	(void)state;
	LM_REQUIRE_UFFD();
	t_make_mem(&d, SIZE);
	t_daemon_start(&d, NULL);
	LM_OK(fc_guest_map(&g, SIZE, 4096, 1));
	LM_OK(fc_guest_register(&g));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		char *reply = send_case(&d, c, &g);

		if (c->expect) {
			LM_ASSERT(strstr(reply, "refused") &&
				  strstr(reply, c->expect),
				  "case '%s': reply '%s' lacks '%s'", c->name,
				  reply, c->expect);
			LM_ASSERT(t_wait_for(d.err, c->expect, 5000),
				  "case '%s': not in the log", c->name);
		}
		free(reply);
		LM_ASSERT(waitpid(d.pid, NULL, WNOHANG) == 0,
			  "case '%s' killed the handler", c->name);
	}
	LM_ASSERT(t_wait_for(d.err, "closed before sending its message", 5000),
		  "half-sent message not reported");
	{
		/* A userfaultfd its VMM never initialized (no UFFDIO_API). */
		int raw = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		char json[256], reply[512] = "";
		int s;
		ssize_t n;

		LM_ASSERT(raw >= 0, "userfaultfd");
		snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,"
			 "\"size\":4096,\"offset\":0,\"page_size\":4096}]",
			 (unsigned long long)(uintptr_t)g.mem);
		LM_OK(fc_client_send(d.sock, json, strlen(json), &raw, 1, &s));
		n = read(s, reply, sizeof(reply) - 1);
		reply[n > 0 ? n : 0] = '\0';
		LM_ASSERT(strstr(reply, "never initialized (no UFFDIO_API"),
			  "uninitialized uffd: reply '%s'", reply);
		close(s);
		close(raw);
	}
	{
		/* Longer than any VMM sends: refused, not buffered for ever. */
		size_t big = 80 << 10;
		char *json = malloc(big), reply[256] = "";
		int s;
		ssize_t n;

		memset(json, ' ', big);
		json[0] = '[';
		LM_OK(fc_client_send(d.sock, json, big, &g.uffd, 1, &s));
		n = read(s, reply, sizeof(reply) - 1);
		reply[n > 0 ? n : 0] = '\0';
		LM_ASSERT(strstr(reply, "message longer than 65536 bytes"),
			  "oversized message: reply '%s'", reply);
		close(s);
		free(json);
	}
	fc_guest_stop(&g);

	/* A good VM is still served, announced with page_size_kib only,
	 * its userfaultfd in blocking mode (the handler switches it, or its
	 * thread could not be stopped: t_cleanup wants a clean exit). */
	LM_OK(fc_guest_map(&g, SIZE, 4096, 1));
	LM_OK(fc_guest_register(&g));
	LM_ASSERT(fcntl(g.uffd, F_SETFL,
			fcntl(g.uffd, F_GETFL) & ~O_NONBLOCK) == 0, "fcntl");
	{
		char json[256];

		snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,"
			 "\"size\":%llu,\"offset\":0,\"page_size_kib\":4096}]",
			 (unsigned long long)(uintptr_t)g.mem,
			 (unsigned long long)SIZE);
		LM_OK(fc_client_send(d.sock, json, strlen(json), &g.uffd, 1,
				     &g.sock));
	}
	t_touch(&g, 0, SIZE, 2);
	LM_ASSERT(t_verify(&g, 0, SIZE, false) < 0, "good VM after bad ones");
	fc_guest_stop(&g);
	err = t_slurp(d.err);
	LM_ASSERT(strstr(err, "serving 1 region"), "log: %s", err);
	free(err);
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),
	};

	LM_ASSERT(argc > 1, "usage: fc_malformed PATH_TO_LAZYMEM");
	t_lazymem = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
