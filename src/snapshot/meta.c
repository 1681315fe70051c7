/*
 * meta.c - meta.json: parsing with full validation, and writing.
 *
 * The parser is the snapshot's front door (a snapshot may come from
 * anywhere), so it trusts nothing: every number is range-checked, every
 * region checked against the others, names and blob sizes bounded. It is
 * fuzzed by fuzz/snapshot_meta.c.
 */
#include <errno.h>
#include <json-c/json.h>
#include <xxhash.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/snapshot.h>
#include "core/error.h"
#include "snapshot/snapshot_internal.h"

#define MAX_MEM (1ull << 40)

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return lm_error(-EINVAL, "meta.json: %s", msg);
}

/* A required non-negative integer member. 0 and *v set, or -EINVAL (a
 * literal, not bad()'s value, so that the compiler sees *v set on 0). */
static int get_u64(json_object *o, const char *key, uint64_t *v,
		   const char *where)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x)) {
		bad("%s: missing '%s'", where, key);
		return -EINVAL;
	}
	if (!json_object_is_type(x, json_type_int)) {
		bad("%s: '%s' is not an integer", where, key);
		return -EINVAL;
	}
	errno = 0;
	*v = json_object_get_uint64(x);
	if (errno || json_object_get_int64(x) < 0) {
		bad("%s: '%s' is out of range", where, key);
		return -EINVAL;
	}
	return 0;
}

/* A required string member: 0 and *v set, or -EINVAL (as get_u64). */
static int get_str(json_object *o, const char *key, const char **v,
		   const char *where)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x)) {
		bad("%s: missing '%s'", where, key);
		return -EINVAL;
	}
	if (!json_object_is_type(x, json_type_string)) {
		bad("%s: '%s' is not a string", where, key);
		return -EINVAL;
	}
	*v = json_object_get_string(x);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_blob(struct lm_snap_vcpu *v, const char *name,
		      json_object *x, unsigned id)
{
	const char *hex;
	size_t n;
	uint8_t *buf;
	int err;

	if (!json_object_is_type(x, json_type_string))
		return bad("vcpu %u: state '%s' is not a hex string", id, name);
	hex = json_object_get_string(x);
	n = strlen(hex);
	if (n % 2 || n / 2 > LM_SNAP_MAX_BLOB)
		return bad("vcpu %u: state '%s' has %zu hex digits (even, at "
			   "most %d bytes expected)", id, name, n,
			   LM_SNAP_MAX_BLOB);
	buf = malloc(n / 2 + 1);
	if (!buf)
		return lm_error(-ENOMEM, "meta.json: out of memory");
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(buf);
			return bad("vcpu %u: state '%s' is not lowercase hex",
				   id, name);
		}
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	err = lm_snap_vcpu_add_blob(v, name, buf, n / 2);
	free(buf);
	return err;
}

/* "state_xxh3": { name: 16 lowercase hex digits } for the blobs above. */
static int parse_blob_hashes(struct lm_snap_vcpu *v, json_object *o)
{
	if (!json_object_is_type(o, json_type_object))
		return bad("vcpu %u: 'state_xxh3' is not an object", v->id);
	json_object_object_foreach(o, key, val) {
		struct lm_snap_blob *b =
			(struct lm_snap_blob *)lm_snap_vcpu_blob(v, key);
		const char *hex = json_object_is_type(val, json_type_string)
					  ? json_object_get_string(val) : "";
		uint64_t h = 0;

		if (!b)
			return bad("vcpu %u: state_xxh3 names '%.40s', which "
				   "is not a state entry", v->id, key);
		if (strlen(hex) != 16)
			return bad("vcpu %u: state_xxh3 '%s' is not 16 hex "
				   "digits", v->id, key);
		for (int i = 0; i < 16; i++) {
			int d = hexval(hex[i]);

			if (d < 0)
				return bad("vcpu %u: state_xxh3 '%s' is not "
					   "lowercase hex", v->id, key);
			h = h << 4 | (uint64_t)d;
		}
		b->xxh3 = h;
		b->has_xxh3 = 1;
	}
	return 0;
}

int lm__snap_blobs_check(const char *dir, const struct lm_snap_meta *m)
{
	for (unsigned i = 0; i < m->nr_vcpus; i++)
		for (unsigned k = 0; k < m->vcpus[i].nr_blobs; k++) {
			const struct lm_snap_blob *b = &m->vcpus[i].blobs[k];

			if (!b->has_xxh3)
				return lm_error(-EBADMSG, "snapshot %s: vCPU "
						"%u state '%s' has no integrity "
						"hash in meta.json (saved by an "
						"older lazymem?)", dir,
						m->vcpus[i].id, b->name);
			if (XXH3_64bits(b->data, b->len) != b->xxh3)
				return lm_error(-EBADMSG, "snapshot %s: vCPU "
						"%u state '%s' fails its "
						"integrity hash: corrupt", dir,
						m->vcpus[i].id, b->name);
		}
	return 0;
}

static int parse_vcpus(json_object *root, struct lm_snap_meta *m)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(root, "vcpus", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return bad("missing 'vcpus' array");
	n = json_object_array_length(arr);
	if (n < 1 || n > LM_SNAP_MAX_VCPUS)
		return bad("%zu vCPUs, expected 1..%d", n, LM_SNAP_MAX_VCPUS);
	m->vcpus = calloc(n, sizeof(*m->vcpus));
	if (!m->vcpus)
		return lm_error(-ENOMEM, "meta.json: out of memory");
	m->nr_vcpus = (unsigned)n;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i), *st;
		struct lm_snap_vcpu *v = &m->vcpus[i];
		uint64_t id;
		int err;

		if (!json_object_is_type(o, json_type_object))
			return bad("vcpus[%zu] is not an object", i);
		err = get_u64(o, "id", &id, "vcpu");
		if (err)
			return err;
		if (id != i)
			return bad("vcpus[%zu] has id %llu; ids must be 0..%zu "
				   "in order", i, (unsigned long long)id, n - 1);
		v->id = (unsigned)id;
		if (!json_object_object_get_ex(o, "state", &st) ||
		    !json_object_is_type(st, json_type_object))
			return bad("vcpu %zu: missing 'state' object", i);
		json_object_object_foreach(st, key, val) {
			err = parse_blob(v, key, val, v->id);
			if (err)
				return err;
		}
		if (json_object_object_get_ex(o, "state_xxh3", &st) &&
		    (err = parse_blob_hashes(v, st)))
			return err;
	}
	return 0;
}

static int check_region(const struct lm_snap_meta *m, unsigned i)
{
	const struct lm_snap_region *r = &m->regions[i];

	if (!r->size || r->gpa % m->page_size || r->size % m->page_size ||
	    r->offset % m->page_size)
		return bad("region %u: gpa, size and offset must be multiples "
			   "of the page size %llu, size non-zero", i,
			   (unsigned long long)m->page_size);
	if (r->offset > m->mem_size || r->size > m->mem_size - r->offset)
		return bad("region %u: [0x%llx, +0x%llx) lies outside the "
			   "0x%llx bytes of memory.img", i,
			   (unsigned long long)r->offset,
			   (unsigned long long)r->size,
			   (unsigned long long)m->mem_size);
	if (r->gpa + r->size < r->gpa)
		return bad("region %u: gpa range wraps around", i);
	for (unsigned j = 0; j < i; j++) {
		const struct lm_snap_region *o = &m->regions[j];

		if (r->gpa < o->gpa + o->size && o->gpa < r->gpa + r->size)
			return bad("regions %u and %u overlap in guest-"
				   "physical memory", j, i);
		if (r->offset < o->offset + o->size &&
		    o->offset < r->offset + r->size)
			return bad("regions %u and %u overlap in memory.img",
				   j, i);
	}
	return 0;
}

static int parse_memory(json_object *root, struct lm_snap_meta *m)
{
	json_object *mem, *arr;
	const char *s;
	int err;

	if (!json_object_object_get_ex(root, "memory", &mem) ||
	    !json_object_is_type(mem, json_type_object))
		return bad("missing 'memory' object");
	if ((err = get_u64(mem, "size", &m->mem_size, "memory")) ||
	    (err = get_u64(mem, "nonzero_pages", &m->nonzero_pages, "memory")))
		return err;
	if (!m->mem_size || m->mem_size % m->page_size || m->mem_size > MAX_MEM)
		return bad("memory: size %llu is not a positive multiple of "
			   "the page size, at most 1 TiB",
			   (unsigned long long)m->mem_size);
	if (m->nonzero_pages > m->mem_size / m->page_size)
		return bad("memory: nonzero_pages %llu exceeds the %llu pages",
			   (unsigned long long)m->nonzero_pages,
			   (unsigned long long)(m->mem_size / m->page_size));
	if ((err = get_str(mem, "hash", &s, "memory")))
		return err;
	if (strcmp(s, "xxh3-64"))
		return bad("memory: hash '%s', this lazymem knows xxh3-64", s);
	if ((err = get_str(mem, "file", &s, "memory")))
		return err;
	if (strcmp(s, LM_SNAP_MEM_FILE))
		return bad("memory: file '%s', expected '%s'", s,
			   LM_SNAP_MEM_FILE);
	if ((err = get_str(mem, "hash_file", &s, "memory")))
		return err;
	if (strcmp(s, LM_SNAP_HASH_FILE))
		return bad("memory: hash_file '%s', expected '%s'", s,
			   LM_SNAP_HASH_FILE);
	if (!json_object_object_get_ex(mem, "regions", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return bad("memory: missing 'regions' array");
	if (json_object_array_length(arr) < 1 ||
	    json_object_array_length(arr) > LM_SNAP_MAX_REGIONS)
		return bad("memory: %zu regions, expected 1..%d",
			   json_object_array_length(arr), LM_SNAP_MAX_REGIONS);
	m->nr_regions = (unsigned)json_object_array_length(arr);
	for (unsigned i = 0; i < m->nr_regions; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		struct lm_snap_region *r = &m->regions[i];

		if (!json_object_is_type(o, json_type_object))
			return bad("memory: regions[%u] is not an object", i);
		if ((err = get_u64(o, "gpa", &r->gpa, "region")) ||
		    (err = get_u64(o, "size", &r->size, "region")) ||
		    (err = get_u64(o, "offset", &r->offset, "region")) ||
		    (err = check_region(m, i)))
			return err;
	}
	return 0;
}

static int parse_root(json_object *root, struct lm_snap_meta *m)
{
	json_object *w;
	const char *fmt;
	uint64_t v;
	int err;

	if (!json_object_is_type(root, json_type_object))
		return bad("the top level is not an object");
	if ((err = get_str(root, "format", &fmt, "top level")))
		return err;
	if (strcmp(fmt, "lazymem-snapshot"))
		return lm_error(-EPROTO, "meta.json: not a lazymem snapshot "
				"(format '%s')", fmt);
	if ((err = get_u64(root, "version", &v, "top level")))
		return err;
	if (v != LM_SNAP_VERSION)
		return lm_error(-EPROTO, "meta.json: snapshot format version "
				"%llu; this lazymem reads version %d",
				(unsigned long long)v, LM_SNAP_VERSION);
	m->version = (uint32_t)v;
	if ((err = get_u64(root, "created", &m->created, "top level")) ||
	    (err = get_u64(root, "page_size", &m->page_size, "top level")))
		return err;
	if (m->page_size != 4096 && m->page_size != (2u << 20))
		return bad("page_size %llu, expected 4096 or 2097152",
			   (unsigned long long)m->page_size);
	if ((err = parse_memory(root, m)) || (err = parse_vcpus(root, m)))
		return err;
	if (json_object_object_get_ex(root, "workload", &w)) {
		if (!json_object_is_type(w, json_type_object))
			return bad("'workload' is not an object");
		m->workload = strdup(json_object_to_json_string_ext(
			w, JSON_C_TO_STRING_PLAIN));
		if (!m->workload)
			return lm_error(-ENOMEM, "meta.json: out of memory");
	}
	return 0;
}

int lm_snap_meta_parse(const char *text, size_t len, struct lm_snap_meta *m)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *root;
	int err;

	memset(m, 0, sizeof(*m));
	if (!tok)
		return lm_error(-ENOMEM, "meta.json: out of memory");
	if (len > (1u << 26)) {
		json_tokener_free(tok);
		return bad("%zu bytes is too large for snapshot metadata", len);
	}
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
		lm_snap_meta_free(m);
	return err;
}

void lm_snap_meta_free(struct lm_snap_meta *m)
{
	for (unsigned i = 0; m->vcpus && i < m->nr_vcpus; i++)
		for (unsigned b = 0; b < m->vcpus[i].nr_blobs; b++)
			free(m->vcpus[i].blobs[b].data);
	free(m->vcpus);
	free(m->workload);
	m->vcpus = NULL;
	m->workload = NULL;
	m->nr_vcpus = 0;
}

int lm_snap_vcpu_add_blob(struct lm_snap_vcpu *v, const char *name,
			  const void *data, size_t len)
{
	struct lm_snap_blob *b;

	if (!name[0] || strlen(name) >= sizeof(b->name) ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		    strlen(name))
		return bad("vcpu %u: state name '%.40s' (expected 1..31 of "
			   "a-z 0-9 _)", v->id, name);
	if (len > LM_SNAP_MAX_BLOB)
		return bad("vcpu %u: state '%s' of %zu bytes, at most %d",
			   v->id, name, len, LM_SNAP_MAX_BLOB);
	if (lm_snap_vcpu_blob(v, name))
		return bad("vcpu %u: state '%s' appears twice", v->id, name);
	if (v->nr_blobs == LM_SNAP_MAX_BLOBS)
		return bad("vcpu %u: more than %d state entries", v->id,
			   LM_SNAP_MAX_BLOBS);
	b = &v->blobs[v->nr_blobs];
	b->data = malloc(len ? len : 1);
	if (!b->data)
		return lm_error(-ENOMEM, "snapshot: out of memory");
	memcpy(b->data, data, len);
	b->len = len;
	snprintf(b->name, sizeof(b->name), "%s", name);
	v->nr_blobs++;
	return 0;
}

const struct lm_snap_blob *lm_snap_vcpu_blob(const struct lm_snap_vcpu *v,
					     const char *name)
{
	for (unsigned i = 0; i < v->nr_blobs; i++)
		if (!strcmp(v->blobs[i].name, name))
			return &v->blobs[i];
	return NULL;
}

static json_object *blob_hex(const struct lm_snap_blob *b)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(b->len * 2 + 1);
	json_object *o;

	if (!s)
		return NULL;
	for (size_t i = 0; i < b->len; i++) {
		s[2 * i] = digits[b->data[i] >> 4];
		s[2 * i + 1] = digits[b->data[i] & 15];
	}
	s[b->len * 2] = '\0';
	o = json_object_new_string(s);
	free(s);
	return o;
}

#define ADD(o, k, v) json_object_object_add(o, k, v)

static json_object *blob_hashes(const struct lm_snap_vcpu *v)
{
	json_object *o = json_object_new_object();

	for (unsigned b = 0; b < v->nr_blobs; b++) {
		char hex[17];

		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)
			 XXH3_64bits(v->blobs[b].data, v->blobs[b].len));
		ADD(o, v->blobs[b].name, json_object_new_string(hex));
	}
	return o;
}

char *lm__snap_meta_format(const struct lm_snap_meta *m)
{
	json_object *root = json_object_new_object();
	json_object *mem = json_object_new_object();
	json_object *regs = json_object_new_array();
	json_object *vcpus = json_object_new_array();
	char *text;

	ADD(root, "format", json_object_new_string("lazymem-snapshot"));
	ADD(root, "version", json_object_new_int(LM_SNAP_VERSION));
	ADD(root, "created", json_object_new_int64((int64_t)m->created));
	ADD(root, "page_size", json_object_new_int64((int64_t)m->page_size));
	ADD(mem, "file", json_object_new_string(LM_SNAP_MEM_FILE));
	ADD(mem, "hash", json_object_new_string("xxh3-64"));
	ADD(mem, "hash_file", json_object_new_string(LM_SNAP_HASH_FILE));
	ADD(mem, "size", json_object_new_int64((int64_t)m->mem_size));
	ADD(mem, "nonzero_pages",
	    json_object_new_int64((int64_t)m->nonzero_pages));
	for (unsigned i = 0; i < m->nr_regions; i++) {
		json_object *r = json_object_new_object();

		ADD(r, "gpa", json_object_new_int64((int64_t)m->regions[i].gpa));
		ADD(r, "size", json_object_new_int64((int64_t)m->regions[i].size));
		ADD(r, "offset",
		    json_object_new_int64((int64_t)m->regions[i].offset));
		json_object_array_add(regs, r);
	}
	ADD(mem, "regions", regs);
	ADD(root, "memory", mem);
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		json_object *v = json_object_new_object();
		json_object *st = json_object_new_object();

		ADD(v, "id", json_object_new_int((int)m->vcpus[i].id));
		for (unsigned b = 0; b < m->vcpus[i].nr_blobs; b++)
			ADD(st, m->vcpus[i].blobs[b].name,
			    blob_hex(&m->vcpus[i].blobs[b]));
		ADD(v, "state", st);
		ADD(v, "state_xxh3", blob_hashes(&m->vcpus[i]));
		json_object_array_add(vcpus, v);
	}
	ADD(root, "vcpus", vcpus);
	if (m->workload) {
		json_object *w = json_tokener_parse(m->workload);

		if (w)
			ADD(root, "workload", w);
	}
	text = strdup(json_object_to_json_string_ext(root,
		JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return text;
}
