/*
 * snapshot.c - snapshots on disk: a save reads back as saved, verifies,
 * and restores lazily with every page checked; every kind of bad snapshot
 * (truncated, corrupt, wrong version, malformed, hostile layout, a save
 * that never finished) is refused with a message naming what is wrong, and
 * a corrupt page is failed visibly instead of reaching memory.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "lm_test.h"

#define MEM (4ull << 20)
#define PS 4096ull

static char dir[64];
static uint8_t *mem;

static void make_meta(struct lm_snap_meta *m, struct lm_snap_vcpu *v)
{
	static const uint8_t regs[] = { 1, 2, 3, 0xfe };

	memset(m, 0, sizeof(*m));
	memset(v, 0, sizeof(*v));
	m->page_size = PS;
	m->mem_size = MEM;
	m->nr_regions = 2;
	m->regions[0] = (struct lm_snap_region){ 0, MEM / 2, 0 };
	m->regions[1] = (struct lm_snap_region){ 1ull << 32, MEM / 2, MEM / 2 };
	m->nr_vcpus = 1;
	m->vcpus = v;
	LM_OK(lm_snap_vcpu_add_blob(v, "regs", regs, sizeof(regs)));
	m->workload = (char *)"{\"kind\":\"verify\",\"gen\":3}";
}

/* A fresh snapshot in dir: pattern pages, every 4th page zero. */
static int setup(void **state)
{
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/lazymem-snap-XXXXXX");
	LM_ASSERT(mkdtemp(dir), "mkdtemp");
	mem = malloc(MEM);
	t_fill(mem, MEM, 21);
	for (uint64_t off = 0; off < MEM; off += 4 * PS)
		memset(mem + off, 0, PS);
	make_meta(&m, &v);
	LM_OK(lm_snap_save(dir, &m, mem, NULL, NULL));
	LM_ASSERT(m.nonzero_pages == MEM / PS * 3 / 4, "nonzero %llu",
		  (unsigned long long)m.nonzero_pages);
	free(v.blobs[0].data);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	LM_ASSERT(system(cmd) == 0, "rm");
	free(mem);
	return 0;
}

static void path_of(char *buf, const char *name)
{
	snprintf(buf, 128, "%s/%s", dir, name);
}

static void expect_open_refused(int err, const char *words)
{
	struct lm_snap_meta m;
	int rc = lm_snap_open(dir, &m);

	LM_ASSERT(rc == err, "expected %d, got %d (%s)", err, rc,
		  lm_last_error());
	LM_ASSERT(strstr(lm_last_error(), words), "message '%s' lacks '%s'",
		  lm_last_error(), words);
}

static void test_roundtrip(void **s)
{
	struct lm_snap_meta m;
	uint64_t bad, first;
	const struct lm_snap_blob *b;
	struct stat st;
	char p[128];

	(void)s;
	LM_OK(lm_snap_open(dir, &m));
	LM_ASSERT(m.version == 1 && m.page_size == PS && m.mem_size == MEM,
		  "header");
	LM_ASSERT(m.nr_regions == 2 && m.regions[1].gpa == 1ull << 32 &&
		  m.regions[1].offset == MEM / 2, "regions");
	b = lm_snap_vcpu_blob(&m.vcpus[0], "regs");
	LM_ASSERT(b && b->len == 4 && b->data[3] == 0xfe, "vcpu blob");
	LM_ASSERT(m.workload && strstr(m.workload, "\"gen\":3"), "workload %s",
		  m.workload ? m.workload : "(none)");
	LM_OK(lm_snap_verify(dir, &m, &bad, &first, NULL, NULL));
	LM_ASSERT(bad == 0, "no bad pages");
	path_of(p, "memory.img");
	LM_ASSERT(stat(p, &st) == 0 && (uint64_t)st.st_blocks * 512 < MEM,
		  "zero pages are holes (%lld blocks)", (long long)st.st_blocks);
	lm_snap_meta_free(&m);
}

static sigjmp_buf jump;
static uint64_t failed_off;
static int failed_err;

static void on_fail(struct lm_region *r, uint64_t off, int err, void *arg)
{
	(void)r; (void)arg;
	failed_off = off;
	failed_err = err;
	siglongjmp(jump, 1);
}

static void restore_and_check(uint64_t corrupt_off)
{
	struct lm_snap_meta m;
	struct lm_source *src;
	struct lm_region *r;

	LM_OK(lm_snap_open(dir, &m));
	LM_OK(lm_snap_source_open(dir, &m, &src));
	struct lm_region_config c = {
		.name = "restore", .size = MEM, .backing = LM_BACKING_MEMFD,
		.install = LM_INSTALL_CONTINUE, .delivery = LM_DELIVERY_SELF,
		.source = src, .on_fail = on_fail,
	};
	LM_OK(lm_region_create(&c, &r));
	const uint8_t *p = lm_region_addr(r);
	for (uint64_t off = 0; off < MEM; off += PS) {
		if (off == corrupt_off) {
			if (sigsetjmp(jump, 1) == 0) {
				(void)*(volatile const uint8_t *)(p + off);
				fail_msg("corrupt page at 0x%llx was served",
					 (unsigned long long)off);
			}
			LM_ASSERT(failed_off == off && failed_err == -EBADMSG,
				  "failed 0x%llx err %d",
				  (unsigned long long)failed_off, failed_err);
			continue;
		}
		LM_ASSERT(!memcmp(p + off, mem + off, PS), "page 0x%llx",
			  (unsigned long long)off);
	}
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_snap_meta_free(&m);
}

static void test_lazy_restore(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	restore_and_check(UINT64_MAX);
}

static void corrupt_byte(uint64_t off)
{
	char p[128];
	int fd;
	uint8_t b = 0;

	path_of(p, "memory.img");
	fd = open(p, O_RDWR);
	LM_ASSERT(fd >= 0 && pread(fd, &b, 1, (off_t)off) == 1, "read");
	b ^= 0x40;
	LM_ASSERT(pwrite(fd, &b, 1, (off_t)off) == 1, "write");
	close(fd);
}

static void test_corrupt_page(void **s)
{
	struct lm_snap_meta m;
	uint64_t bad, first;

	(void)s;
	LM_REQUIRE_UFFD();
	corrupt_byte(5 * PS + 77);
	LM_OK(lm_snap_open(dir, &m));
	LM_ASSERT(lm_snap_verify(dir, &m, &bad, &first, NULL, NULL) == -EBADMSG,
		  "verify fails");
	LM_ASSERT(bad == 1 && first == 5 * PS, "bad %llu first 0x%llx",
		  (unsigned long long)bad, (unsigned long long)first);
	LM_ASSERT(strstr(lm_last_error(), "1 pages do not match") &&
		  strstr(lm_last_error(), "0x5000"), "%s", lm_last_error());
	lm_snap_meta_free(&m);
	restore_and_check(5 * PS);
}

static void test_punched_page(void **s)
{
	char p[128];
	int fd;

	(void)s;
	LM_REQUIRE_UFFD();
	path_of(p, "memory.img");
	fd = open(p, O_RDWR);
	LM_ASSERT(fd >= 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, 6 * PS, PS) == 0,
		  "punch");
	close(fd);
	restore_and_check(6 * PS);
}

static void test_truncated_memory(void **s)
{
	char p[128];

	(void)s;
	path_of(p, "memory.img");
	LM_ASSERT(truncate(p, MEM - PS) == 0, "truncate");
	expect_open_refused(-EINVAL, "truncated");
}

static void test_truncated_hashes(void **s)
{
	char p[128];

	(void)s;
	path_of(p, "pages.xxh");
	LM_ASSERT(truncate(p, 100) == 0, "truncate");
	expect_open_refused(-EINVAL, "pages.xxh");
}

/*
 * pages.xxh is read a block at a time when first needed (source.c): a file
 * that shrinks after open fails the pages whose hashes are gone with -EIO,
 * visibly (on_fail), and never serves them unchecked.
 */
static void test_hashes_shrink_after_open(void **s)
{
	struct lm_snap_meta m;
	struct lm_source *src;
	struct lm_region *r;
	char p[128];

	(void)s;
	LM_REQUIRE_UFFD();
	LM_OK(lm_snap_open(dir, &m));
	LM_OK(lm_snap_source_open(dir, &m, &src));
	path_of(p, "pages.xxh");
	LM_ASSERT(truncate(p, 32) == 0, "truncate");	/* the header only */
	struct lm_region_config c = {
		.name = "restore", .size = MEM, .backing = LM_BACKING_MEMFD,
		.install = LM_INSTALL_CONTINUE, .delivery = LM_DELIVERY_SELF,
		.source = src, .on_fail = on_fail,
	};
	LM_OK(lm_region_create(&c, &r));
	const uint8_t *a = lm_region_addr(r);

	failed_err = 0;
	if (sigsetjmp(jump, 1) == 0) {
		(void)*(volatile const uint8_t *)(a + 3 * PS);
		fail_msg("a page whose hash is gone was served");
	}
	LM_ASSERT(failed_off == 3 * PS && failed_err == -EIO,
		  "failed 0x%llx err %d", (unsigned long long)failed_off,
		  failed_err);
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_snap_meta_free(&m);
}

static void test_unfinished_save(void **s)
{
	char p[128];

	(void)s;
	path_of(p, "meta.json");
	LM_ASSERT(unlink(p) == 0, "unlink");
	expect_open_refused(-ENOENT, "save did not finish");
}

/* Rewrite meta.json with one substitution. */
static void edit_meta(const char *from, const char *to)
{
	char p[128], buf[65536], out[65536];
	FILE *f;
	size_t n;
	char *at;

	path_of(p, "meta.json");
	f = fopen(p, "r");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	at = strstr(buf, from);
	LM_ASSERT(at, "'%s' in meta.json", from);
	snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, to,
		 at + strlen(from));
	f = fopen(p, "w");
	fputs(out, f);
	fclose(f);
}

static void test_wrong_version(void **s)
{
	(void)s;
	edit_meta("\"version\":1", "\"version\":2");
	expect_open_refused(-EPROTO, "format version 2; this lazymem reads "
			    "version 1");
}

static void test_malformed(void **s)
{
	(void)s;
	edit_meta("\"vcpus\"", "\"vcpus\" oops");
	expect_open_refused(-EINVAL, "not valid JSON");
}

static void test_hostile_layout(void **s)
{
	(void)s;
	edit_meta("\"offset\":2097152", "\"offset\":4194304");
	expect_open_refused(-EINVAL, "lies outside");
	edit_meta("\"offset\":4194304", "\"offset\":0");
	expect_open_refused(-EINVAL, "overlap in memory.img");
	edit_meta("\"gpa\":4294967296", "\"gpa\":4096");
	expect_open_refused(-EINVAL, "overlap in guest-physical memory");
}

static void test_bad_fields(void **s)
{
	(void)s;
	edit_meta("\"page_size\":4096", "\"page_size\":1234");
	expect_open_refused(-EINVAL, "page_size 1234");
	edit_meta("\"page_size\":1234", "\"page_size\":4096");
	edit_meta("\"regs\":\"010203fe\"", "\"regs\":\"01zz\"");
	expect_open_refused(-EINVAL, "not lowercase hex");
	edit_meta("\"regs\":\"01zz\"", "\"../regs\":\"00\"");
	expect_open_refused(-EINVAL, "state name '../regs'");
	edit_meta("\"../regs\":\"00\"", "\"regs\":\"00\"");
	edit_meta("\"file\":\"memory.img\"", "\"file\":\"/etc/passwd\"");
	expect_open_refused(-EINVAL, "file '/etc/passwd'");
	edit_meta("\"file\":\"/etc/passwd\"", "\"file\":\"memory.img\"");
	edit_meta("\"lazymem-snapshot\"", "\"qemu\"");
	expect_open_refused(-EPROTO, "not a lazymem snapshot");
}

/* vCPU state blobs carry an integrity hash: a flipped byte, or a blob
 * without its hash, is refused naming the vCPU and the blob. */
static void test_corrupt_blob(void **s)
{
	(void)s;
	edit_meta("\"regs\":\"010203fe\"", "\"regs\":\"010203ff\"");
	expect_open_refused(-EBADMSG, "vCPU 0 state 'regs' fails its "
			    "integrity hash");
	edit_meta("\"regs\":\"010203ff\"", "\"regs\":\"010203fe\"");
	edit_meta("\"state_xxh3\":{\n        \"regs\"",
		  "\"state_xxh3\":{\n        \"other\"");
	expect_open_refused(-EINVAL, "state_xxh3 names 'other'");
}

static void test_blob_without_hash(void **s)
{
	(void)s;
	edit_meta("\"state_xxh3\"", "\"state_xxh3_gone\"");
	expect_open_refused(-EBADMSG, "vCPU 0 state 'regs' has no integrity "
			    "hash");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_roundtrip),        T(test_lazy_restore),
		T(test_corrupt_page),     T(test_punched_page),
		T(test_truncated_memory), T(test_truncated_hashes),
		T(test_hashes_shrink_after_open),
		T(test_unfinished_save),  T(test_wrong_version),
		T(test_malformed),        T(test_hostile_layout),
		T(test_bad_fields),       T(test_corrupt_blob),
		T(test_blob_without_hash),
	};

	return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
