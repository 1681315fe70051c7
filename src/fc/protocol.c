/*
 * protocol.c - the one message a Firecracker-style VMM sends: a JSON array
 * of guest memory regions, {"base_host_virt_addr", "size", "offset",
 * "page_size", "page_size_kib"} each (page_size_kib is deprecated and in
 * practice holds bytes; either key is accepted), with the userfaultfd
 * attached (vm.c checks the descriptor). Everything a bad message can be
 * wrong in is refused here with a message naming the region and field.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fc/fc.h"

#define HUGE_2M (2ull << 20)

static int field(json_object *o, unsigned i, const char *key, bool required,
		 uint64_t *v, char *why, size_t wl)
{
	json_object *x;

	if (!json_object_object_get_ex(o, key, &x) || !x) {
		if (required)
			snprintf(why, wl, "region %u: missing \"%s\"", i, key);
		return required ? -1 : 0;
	}
	if (!json_object_is_type(x, json_type_int)) {
		snprintf(why, wl, "region %u: \"%s\" is %s, expected an "
			 "unsigned integer", i, key,
			 json_type_to_name(json_object_get_type(x)));
		return -1;
	}
	if (json_object_get_int64(x) < 0 &&
	    json_object_get_uint64(x) <= (uint64_t)INT64_MAX) {
		snprintf(why, wl, "region %u: \"%s\" is negative (%lld)", i,
			 key, (long long)json_object_get_int64(x));
		return -1;
	}
	*v = json_object_get_uint64(x);
	return 1;
}

static int page_size_of(json_object *o, unsigned i, uint64_t *ps, char *why,
			size_t wl)
{
	uint64_t bytes = 0, kib = 0;
	int a = field(o, i, "page_size", false, &bytes, why, wl);
	int b = a < 0 ? -1 : field(o, i, "page_size_kib", false, &kib, why, wl);

	if (a < 0 || b < 0)
		return -1;
	/* page_size_kib: bytes in practice; a true KiB value is accepted. */
	if (b > 0 && (kib == 4 || kib == 2048))
		kib <<= 10;
	if (!a && !b) {
		snprintf(why, wl, "region %u: missing \"page_size\" (or the "
			 "deprecated \"page_size_kib\")", i);
		return -1;
	}
	if (a && b && bytes != kib) {
		snprintf(why, wl, "region %u: \"page_size\" %llu and "
			 "\"page_size_kib\" %llu disagree", i,
			 (unsigned long long)bytes, (unsigned long long)kib);
		return -1;
	}
	*ps = a ? bytes : kib;
	if (*ps != 4096 && *ps != HUGE_2M) {
		snprintf(why, wl, "region %u: page size %llu; expected 4096 "
			 "or 2097152 (2 MiB hugetlbfs)", i,
			 (unsigned long long)*ps);
		return -1;
	}
	return 0;
}

static int check_region(const struct fc_region *r, unsigned i,
			uint64_t file_size, char *why, size_t wl)
{
	if (!r->size || r->size % r->page_size || r->base % r->page_size) {
		snprintf(why, wl, "region %u: base_host_virt_addr 0x%llx and "
			 "size %llu must be positive multiples of its page "
			 "size %llu", i, (unsigned long long)r->base,
			 (unsigned long long)r->size,
			 (unsigned long long)r->page_size);
		return -1;
	}
	if (r->base + r->size < r->base) {
		snprintf(why, wl, "region %u: base 0x%llx + size %llu "
			 "overflows", i, (unsigned long long)r->base,
			 (unsigned long long)r->size);
		return -1;
	}
	if (r->offset % 4096) {
		snprintf(why, wl, "region %u: offset %llu is not 4 KiB "
			 "aligned", i, (unsigned long long)r->offset);
		return -1;
	}
	if (r->offset > file_size || r->size > file_size - r->offset) {
		snprintf(why, wl, "region %u: [offset %llu, size %llu] does "
			 "not fit the memory file of %llu bytes", i,
			 (unsigned long long)r->offset,
			 (unsigned long long)r->size,
			 (unsigned long long)file_size);
		return -1;
	}
	return 0;
}

static int check_overlaps(const struct fc_layout *l, char *why, size_t wl)
{
	for (unsigned i = 0; i < l->n; i++)
		for (unsigned j = 0; j < i; j++) {
			const struct fc_region *a = &l->r[i], *b = &l->r[j];

			if (a->base < b->base + b->size &&
			    b->base < a->base + a->size) {
				snprintf(why, wl, "regions %u and %u overlap in "
					 "guest memory (0x%llx+%llu, "
					 "0x%llx+%llu)", j, i,
					 (unsigned long long)b->base,
					 (unsigned long long)b->size,
					 (unsigned long long)a->base,
					 (unsigned long long)a->size);
				return -1;
			}
			if (a->offset < b->offset + b->size &&
			    b->offset < a->offset + a->size) {
				snprintf(why, wl, "regions %u and %u overlap in "
					 "the memory file (offsets %llu+%llu, "
					 "%llu+%llu)", j, i,
					 (unsigned long long)b->offset,
					 (unsigned long long)b->size,
					 (unsigned long long)a->offset,
					 (unsigned long long)a->size);
				return -1;
			}
		}
	return 0;
}

static int parse_array(json_object *arr, uint64_t file_size,
		       struct fc_layout *out, char *why, size_t wl)
{
	size_t n;

	if (!json_object_is_type(arr, json_type_array)) {
		snprintf(why, wl, "the message is a JSON %s, expected an array "
			 "of regions", json_type_to_name(json_object_get_type(arr)));
		return -1;
	}
	n = json_object_array_length(arr);
	if (n == 0 || n > FC_MAX_REGIONS) {
		snprintf(why, wl, "%zu regions; expected 1..%d", n,
			 FC_MAX_REGIONS);
		return -1;
	}
	out->n = 0;
	for (unsigned i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		struct fc_region *r = &out->r[i];

		if (!o || !json_object_is_type(o, json_type_object)) {
			snprintf(why, wl, "region %u is a JSON %s, expected an "
				 "object", i, o ? json_type_to_name(
					 json_object_get_type(o)) : "null");
			return -1;
		}
		if (field(o, i, "base_host_virt_addr", true, &r->base, why,
			  wl) < 0 ||
		    field(o, i, "size", true, &r->size, why, wl) < 0 ||
		    field(o, i, "offset", true, &r->offset, why, wl) < 0 ||
		    page_size_of(o, i, &r->page_size, why, wl) < 0 ||
		    check_region(r, i, file_size, why, wl) < 0)
			return -1;
		out->n++;
	}
	return check_overlaps(out, why, wl);
}

enum fc_parse fc_protocol_parse(const char *buf, size_t len,
				uint64_t file_size, struct fc_layout *out,
				char *why, size_t wl)
{
	json_tokener *tok = json_tokener_new();
	json_object *root;
	enum json_tokener_error e;
	enum fc_parse rc = FC_PARSE_BAD;
	size_t end;

	if (!tok) {
		snprintf(why, wl, "out of memory");
		return FC_PARSE_BAD;
	}
	root = json_tokener_parse_ex(tok, buf, (int)len);
	e = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!root && e == json_tokener_continue) {
		rc = FC_PARSE_MORE;
	} else if (!root) {
		snprintf(why, wl, "malformed JSON at byte %zu: %s", end,
			 json_tokener_error_desc(e));
	} else {
		while (end < len && strchr(" \t\r\n", buf[end]))
			end++;
		if (end < len)
			snprintf(why, wl, "%zu bytes after the JSON message; "
				 "the VMM sends nothing else", len - end);
		else if (parse_array(root, file_size, out, why, wl) == 0)
			rc = FC_PARSE_OK;
	}
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}
