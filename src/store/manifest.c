/*
 * manifest.c - the manifest's validating parser and its writer (the
 * format is in manifest.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <lazymem/error.h>

#include "store/manifest.h"
#include "util/error.h"

#define FORMAT "lazymem-chunks"
#define VERSION 1

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return util_error(-EINVAL, "manifest: %s", msg);
}

static int get_u64(json_object *o, const char *key, uint64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) ||
	    !json_object_is_type(x, json_type_int)) {
		bad("'%s' missing or not an integer", key);
		return -EINVAL;
	}
	errno = 0;
	*v = json_object_get_uint64(x);
	if (errno || json_object_get_int64(x) < 0) {
		bad("'%s' out of range", key);
		return -EINVAL;
	}
	return 0;
}

static int get_str(json_object *o, const char *key, const char **v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) ||
	    !json_object_is_type(x, json_type_string)) {
		bad("'%s' missing or not a string", key);
		return -EINVAL;
	}
	*v = json_object_get_string(x);
	return 0;
}

static int parse_chunk(struct store_manifest *m, uint64_t i, json_object *c)
{
	struct store_chunk *k = &m->chunks[i];
	uint64_t len = store_chunk_len(m, i);
	json_object *h, *l, *z;
	const char *comp;
	int64_t sl;

	if (json_object_is_type(c, json_type_string) &&
	    !strcmp(json_object_get_string(c), "zero")) {
		k->zero = true;
		return 0;
	}
	if (!json_object_is_type(c, json_type_array) ||
	    json_object_array_length(c) != 3)
		return bad("chunk %llu: expected \"zero\" or [hash, stored "
			   "length, compression]", (unsigned long long)i);
	h = json_object_array_get_idx(c, 0);
	l = json_object_array_get_idx(c, 1);
	z = json_object_array_get_idx(c, 2);
	if (!json_object_is_type(h, json_type_string) ||
	    store_unhex(json_object_get_string(h), k->hash))
		return bad("chunk %llu: hash is not 64 lowercase hex digits",
			   (unsigned long long)i);
	if (!json_object_is_type(z, json_type_string))
		return bad("chunk %llu: compression is not a string",
			   (unsigned long long)i);
	comp = json_object_get_string(z);
	if (!strcmp(comp, "raw"))
		k->comp = STORE_COMP_RAW;
	else if (!strcmp(comp, "zstd"))
		k->comp = STORE_COMP_ZSTD;
	else
		return bad("chunk %llu: compression '%.20s' (raw or zstd "
			   "expected)", (unsigned long long)i, comp);
	sl = json_object_is_type(l, json_type_int) ? json_object_get_int64(l)
						   : -1;
	/* zstd is kept only when it is smaller, raw is the chunk itself */
	if (sl < 1 || (k->comp == STORE_COMP_RAW && (uint64_t)sl != len) ||
	    (k->comp == STORE_COMP_ZSTD && (uint64_t)sl >= len))
		return bad("chunk %llu: stored length %lld does not fit a "
			   "%s chunk of %llu bytes", (unsigned long long)i,
			   (long long)sl, comp, (unsigned long long)len);
	k->stored_len = (uint32_t)sl;
	return 0;
}

static int parse_ws(struct store_manifest *m, json_object *root)
{
	json_object *ws;
	const char *name;
	int err;

	if (!json_object_object_get_ex(root, "working_set", &ws))
		return 0;
	if (!json_object_is_type(ws, json_type_object))
		return bad("'working_set' is not an object");
	if ((err = get_str(ws, "name", &name)) ||
	    (err = get_u64(ws, "size", &m->ws_size)))
		return err;
	/* an object name beside the manifest, nothing that walks away */
	if (!name[0] || strlen(name) >= sizeof(m->ws_name) ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") !=
		    strlen(name) || name[0] == '.')
		return bad("working_set: name '%.40s' (1..31 of a-z 0-9 _ - ., "
			   "not starting with '.')", name);
	if (m->ws_size < 32 || m->ws_size > 32 + m->mem_size / m->page_size * 8)
		return bad("working_set: size %llu is not that of a working "
			   "set of this memory", (unsigned long long)m->ws_size);
	snprintf(m->ws_name, sizeof(m->ws_name), "%s", name);
	return 0;
}

static int parse_root(json_object *root, struct store_manifest *m)
{
	json_object *arr;
	const char *s;
	uint64_t v;
	int err;

	if (!json_object_is_type(root, json_type_object))
		return bad("the top level is not an object");
	if ((err = get_str(root, "format", &s)))
		return err;
	if (strcmp(s, FORMAT))
		return util_error(-EPROTO, "manifest: format '%.40s', not a "
				  "lazymem chunked snapshot", s);
	if ((err = get_u64(root, "version", &v)))
		return err;
	if (v != VERSION)
		return util_error(-EPROTO, "manifest: version %llu, this "
				  "lazymem reads version %d",
				  (unsigned long long)v, VERSION);
	if ((err = get_str(root, "hash", &s)))
		return err;
	if (strcmp(s, "sha256"))
		return bad("hash '%.20s', sha256 expected", s);
	if ((err = get_u64(root, "chunk_size", &m->chunk_size)) ||
	    (err = get_u64(root, "page_size", &m->page_size)) ||
	    (err = get_u64(root, "mem_size", &m->mem_size)))
		return err;
	if (m->chunk_size < STORE_CHUNK_MIN || m->chunk_size > STORE_CHUNK_MAX ||
	    (m->chunk_size & (m->chunk_size - 1)))
		return bad("chunk_size %llu: a power of two from 64 KiB to 4 "
			   "MiB expected", (unsigned long long)m->chunk_size);
	if ((err = get_str(root, "meta_json", &s)))
		return err;
	if (lm_snap_meta_parse(s, strlen(s), &m->meta))
		return util_error(-EINVAL, "manifest: meta_json: %s",
				  lm_last_error());
	m->have_meta = true;
	if (!(m->meta_json = strdup(s)))
		return util_error(-ENOMEM, "manifest: out of memory");
	if (m->page_size != m->meta.page_size ||
	    m->mem_size != m->meta.mem_size)
		return bad("page_size %llu / mem_size %llu differ from "
			   "meta.json's %llu / %llu",
			   (unsigned long long)m->page_size,
			   (unsigned long long)m->mem_size,
			   (unsigned long long)m->meta.page_size,
			   (unsigned long long)m->meta.mem_size);
	if (m->chunk_size % m->page_size)
		return bad("chunk_size %llu is not a multiple of the page size",
			   (unsigned long long)m->chunk_size);
	m->nr_chunks = (m->mem_size + m->chunk_size - 1) / m->chunk_size;
	if (!json_object_object_get_ex(root, "chunks", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return bad("missing 'chunks' array");
	if (json_object_array_length(arr) != m->nr_chunks)
		return bad("%zu chunks listed, %llu bytes of memory in chunks "
			   "of %llu need %llu", json_object_array_length(arr),
			   (unsigned long long)m->mem_size,
			   (unsigned long long)m->chunk_size,
			   (unsigned long long)m->nr_chunks);
	m->chunks = calloc(m->nr_chunks, sizeof(*m->chunks));
	if (!m->chunks)
		return util_error(-ENOMEM, "manifest: out of memory");
	for (uint64_t i = 0; i < m->nr_chunks; i++)
		if ((err = parse_chunk(m, i, json_object_array_get_idx(arr, i))))
			return err;
	return parse_ws(m, root);
}

int store_manifest_parse(const char *text, size_t len,
			 struct store_manifest *m)
{
	struct json_tokener *tok;
	json_object *root;
	int err;

	memset(m, 0, sizeof(*m));
	if (len > STORE_MANIFEST_MAX)
		return bad("%zu bytes, at most %u expected", len,
			   STORE_MANIFEST_MAX);
	tok = json_tokener_new();
	if (!tok)
		return util_error(-ENOMEM, "manifest: out of memory");
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (!root || json_tokener_get_parse_end(tok) != len) {
		enum json_tokener_error je = json_tokener_get_error(tok);

		err = bad("not valid JSON (%s at byte %zu)",
			  je == json_tokener_success ? "trailing data"
						     : json_tokener_error_desc(je),
			  json_tokener_get_parse_end(tok));
		json_object_put(root);
		json_tokener_free(tok);
		return err;
	}
	json_tokener_free(tok);
	err = parse_root(root, m);
	json_object_put(root);
	if (err)
		store_manifest_free(m);
	return err;
}

void store_manifest_free(struct store_manifest *m)
{
	free(m->chunks);
	free(m->meta_json);
	if (m->have_meta)
		lm_snap_meta_free(&m->meta);
	memset(m, 0, sizeof(*m));
}

#define ADD(o, k, v) json_object_object_add(o, k, v)

char *store_manifest_format(const struct store_manifest *m)
{
	json_object *root = json_object_new_object();
	json_object *arr = json_object_new_array_ext((int)m->nr_chunks);
	char *text;

	ADD(root, "format", json_object_new_string(FORMAT));
	ADD(root, "version", json_object_new_int(VERSION));
	ADD(root, "hash", json_object_new_string("sha256"));
	ADD(root, "chunk_size", json_object_new_int64((int64_t)m->chunk_size));
	ADD(root, "page_size", json_object_new_int64((int64_t)m->page_size));
	ADD(root, "mem_size", json_object_new_int64((int64_t)m->mem_size));
	ADD(root, "meta_json", json_object_new_string(m->meta_json));
	if (m->ws_name[0]) {
		json_object *ws = json_object_new_object();

		ADD(ws, "name", json_object_new_string(m->ws_name));
		ADD(ws, "size", json_object_new_int64((int64_t)m->ws_size));
		ADD(root, "working_set", ws);
	}
	for (uint64_t i = 0; i < m->nr_chunks; i++) {
		const struct store_chunk *k = &m->chunks[i];
		json_object *c;
		char hex[STORE_HEX_LEN + 1];

		if (k->zero) {
			json_object_array_add(arr, json_object_new_string("zero"));
			continue;
		}
		store_hex(k->hash, hex);
		c = json_object_new_array_ext(3);
		json_object_array_add(c, json_object_new_string(hex));
		json_object_array_add(c, json_object_new_int64(k->stored_len));
		json_object_array_add(c, json_object_new_string(
			k->comp == STORE_COMP_ZSTD ? "zstd" : "raw"));
		json_object_array_add(arr, c);
	}
	ADD(root, "chunks", arr);
	text = strdup(json_object_to_json_string_ext(root,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return text;
}
