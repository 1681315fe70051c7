/*
 * url.c - parsing a store URL and naming its objects (see url.h).
 *
 * Only characters that need no escaping are accepted in the bucket and
 * prefix (letters, digits, - _ . and / between prefix segments), so an
 * object's URL is the plain concatenation and its SigV4 canonical path is
 * the same string.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "store/url.h"

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static int fail(char *why, size_t len, const char *url, const char *what)
{
	snprintf(why, len, "store URL '%.200s': %s", url, what);
	return -EINVAL;
}

int store_url_parse(const char *s, struct store_url *u, char *why,
		    size_t why_len)
{
	const char *p, *host, *slash, *seg;
	size_t scheme;

	memset(u, 0, sizeof(*u));
	if (!strncmp(s, "http://", 7))
		scheme = 7;
	else if (!strncmp(s, "https://", 8))
		scheme = 8;
	else
		return fail(why, why_len, s, "expected http://HOST[:PORT]/"
			    "BUCKET/PREFIX or https://...");
	host = s + scheme;
	slash = strchr(host, '/');
	if (!slash || slash == host)
		return fail(why, why_len, s, "no host, or no /BUCKET/PREFIX "
			    "after it");
	if ((size_t)(slash - s) >= sizeof(u->base) ||
	    (size_t)(slash - host) >= sizeof(u->host))
		return fail(why, why_len, s, "host too long");
	for (p = host; p < slash; p++)
		if (!name_char(*p) && *p != ':' && *p != '[' && *p != ']')
			return fail(why, why_len, s, "bad character in host");
	memcpy(u->base, s, (size_t)(slash - s));
	memcpy(u->host, host, (size_t)(slash - host));
	seg = slash + 1;
	p = strchr(seg, '/');
	if (!p || p == seg)
		return fail(why, why_len, s, "expected /BUCKET/PREFIX after "
			    "the host");
	if ((size_t)(p - seg) >= sizeof(u->bucket))
		return fail(why, why_len, s, "bucket name too long");
	memcpy(u->bucket, seg, (size_t)(p - seg));
	seg = p + 1;
	if (!*seg)
		return fail(why, why_len, s, "empty prefix");
	if (strlen(seg) >= sizeof(u->prefix))
		return fail(why, why_len, s, "prefix too long");
	snprintf(u->prefix, sizeof(u->prefix), "%s", seg);
	/* strip one trailing slash: ".../snap1/" is ".../snap1" */
	if (u->prefix[strlen(u->prefix) - 1] == '/')
		u->prefix[strlen(u->prefix) - 1] = '\0';
	for (p = u->bucket; *p; p++)
		if (!name_char(*p))
			return fail(why, why_len, s, "bucket: letters, digits, "
				    "- _ . only");
	for (p = u->prefix; *p; p++) {
		if (*p == '/' && (p == u->prefix || p[1] == '/' || !p[1]))
			return fail(why, why_len, s, "empty prefix segment");
		if (!name_char(*p) && *p != '/')
			return fail(why, why_len, s, "prefix: letters, digits, "
				    "- _ . and / only");
	}
	if (!strcmp(u->prefix, "chunks") || !strncmp(u->prefix, "chunks/", 7))
		return fail(why, why_len, s, "prefix 'chunks' is where the "
			    "bucket's chunks live");
	for (p = u->prefix; *p; p = seg) {	/* no "." or ".." segments */
		size_t n = strcspn(p, "/");

		if ((n == 1 && p[0] == '.') || (n == 2 && !strncmp(p, "..", 2)))
			return fail(why, why_len, s, "'.' or '..' in prefix");
		seg = p + n + (p[n] == '/');
	}
	return 0;
}

int store_url_chunk(const struct store_url *u, const char *hex, char *buf,
		    size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%s/chunks/%.2s/%s", u->base,
			     u->bucket, hex, hex) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int store_url_object(const struct store_url *u, const char *name, char *buf,
		     size_t len)
{
	if ((size_t)snprintf(buf, len, "%s/%s/%s/%s", u->base, u->bucket,
			     u->prefix, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}
