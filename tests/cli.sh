#!/usr/bin/env bash
# cli.sh - the lazymem command: help, clear errors for wrong values, and a
# small `bench fault` whose JSON has the documented shape and whose every
# run verified its data.
set -u
LAZYMEM=$1
. "$(dirname "$0")/cli_lib.sh"

check "--help exits 0 and lists bench fault" \
  bash -c "'$LAZYMEM' --help | grep -q 'bench fault'"
check "bench fault --help" bash -c "'$LAZYMEM' bench fault --help | grep -q -- '--threads'"
check "unknown command named" expect_error 2 "unknown command 'frobnicate'" frobnicate
check "bad --size named" expect_error 2 "--size '12Q'" bench fault --size 12Q
check "bad --threads named" expect_error 2 "--threads '0'" bench fault --threads 0
check "bad --backing named" expect_error 2 "--backing 'disk'" bench fault --backing disk
check "continue on anon refused" expect_error 2 "--install continue needs" \
  bench fault --install continue
check "unaligned size refused" expect_error 2 "not a multiple of the anon page size" \
  bench fault --size 5000
check "live-snapshot: bad --backing named" expect_error 2 "--backing 'disk'" \
  bench live-snapshot --backing disk
check "live-snapshot: hugetlb --mem not in 2M refused" expect_error 2 \
  "hugetlb needs a multiple of 2M" bench live-snapshot --backing hugetlb --mem 3M
check "live-snapshot: hugetlb buffer below a huge page refused" expect_error 2 \
  "give at least 2M" bench live-snapshot --backing anon,hugetlb --max-buffer 1M

json=$("$LAZYMEM" bench fault --size 8M --repeat 1 --threads 1,2 --json)
check "bench fault --json shape and verification" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["benchmark"] == "fault", d
assert d["config"]["page_size"] == 4096
res = d["results"]
assert {r["delivery"] for r in res} == {"handler", "self", "limit"}
assert {r["placement"] for r in res if r["delivery"] == "handler"} == {"same-cpu", "other-cpu"}
for r in res:
    assert r["verified"] is True, r
    assert r["pages"] == 2048 and r["pages_per_sec"] > 0 and r["seconds"] > 0, r
    assert r["threads"] in (1, 2)
    assert r["workload"] in ("sequential", "random"), r
    assert r["fault_around"] == (16 if r["delivery"] == "self" and
                                 r["fault_around"] else 0), r
assert {r["workload"] for r in res} == {"sequential", "random"}
assert {r["fault_around"] for r in res if r["delivery"] == "self"} == {0, 16}
' "$json"
check "bad --workload named" expect_error 2 "--workload 'zigzag'" \
  bench fault --workload zigzag

check "fc-handler --help" bash -c "'$LAZYMEM' fc-handler --help | grep -q -- '--kill-peer-on-error'"
check "fc-handler needs --socket and --mem-file" expect_error 2 \
  "--socket and --mem-file are required" fc-handler --socket /tmp/x
check "fc-handler names a missing memory file" expect_error 1 \
  "memory file: file source /nonexistent/mem" fc-handler --socket /tmp/lm-cli.sock \
  --mem-file /nonexistent/mem
check "bench fc-handler --help says the guest is a stand-in" \
  bash -c "'$LAZYMEM' bench fc-handler --help | grep -q 'thread-based stand-in'"
check "bench fc-handler bad --ws named" expect_error 2 "--ws '200%'" \
  bench fc-handler --ws 200%

json=$("$LAZYMEM" bench fc-handler --mem 128M --page-sizes 4k --json)
check "bench fc-handler --json shape and verification" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["benchmark"] == "fc-handler", d
assert "stand-in" in d["config"]["guest"]
res = d["results"]
assert {r["mode"] for r in res} == {"copy-per-fault", "on-demand", "prefetch", "limit"}, res
for r in res:
    assert r["verified"] is True, r
    assert r["page_size"] == 4096 and r["seconds"] > 0 and r["fault_128m_seconds"] > 0, r
    assert r["mode"] == "limit" or r["faults"] > 0, r
' "$json"


# bench reclaim: the target is refused by name over 100% or negative; a
# small run's JSON has the issue's shape and every row verified.
check "reclaim target over 100% refused" expect_error 2 \
  "--reclaim-target '150%': over 100%" bench reclaim --reclaim-target 150%
check "negative reclaim target refused" expect_error 2 \
  "--reclaim-target '-5%': negative" bench reclaim --reclaim-target -5%
check "bench reclaim bad --sample-every named" expect_error 2 \
  "--sample-every '0'" bench reclaim --sample-every 0
check "bench reclaim bad --backing named" expect_error 2 \
  "--backing 'hugetlb'" bench reclaim --backing hugetlb
check "bench reclaim bad --codec refused" expect_error 2 \
  "--codec 'gzip': expected lz4, zstd or zstd:LEVEL" bench reclaim --codec gzip
check "bench reclaim bad zstd level refused" expect_error 2 \
  "--codec 'zstd:99': zstd level expected 1.." bench reclaim --codec zstd:99
# the tiered rows: the incompressible half of the pages spilled to the
# file tier, the rest in memory; the config names the codec; the codec
# lines verified
json=$("$LAZYMEM" bench reclaim --mem 8M --seconds 1 --codec zstd --json)
check "bench reclaim --json shape and verification" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["benchmark"] == "reclaim", d
assert d["config"]["codec"] == "zstd" and d["config"]["codec_level"] == 1, d["config"]
res = d["results"]
assert {(r["store"], r["backing"]) for r in res} == {
    (s, b) for s in ("none", "memory", "file", "tiered", "swap")
    for b in ("anon", "memfd")}
for r in res:
    if r["store"] == "swap":
        assert r["skipped"], r
        continue
    assert r["verified"] is True, r
    for k in ("rss_mean_bytes", "rss_end_bytes", "work_ratio",
              "refaults_per_sec", "refault_p50_us", "refault_p99_us",
              "guest_refault_p50_us", "store_bytes", "ramp_s",
              "ramp_work_ratio", "steady_from_s", "tracked_writes_per_sec",
              "store_mem_bytes", "store_disk_bytes", "spilled_pages",
              "take_p50_us_3x", "take_p50_us_incompressible"):
        assert k in r, (k, r)
    assert r["store"] == "none" or r["evicted"] > 0, r
    assert r["store_bytes"] == r["store_mem_bytes"] + r["store_disk_bytes"], r
    if r["store"] == "tiered":
        assert r["spilled_pages"] > 0 and r["store_disk_bytes"] > 0, r
        assert r["store_mem_bytes"] > 0, r
        # both tiers served refaults
        assert r["take_p50_us_3x"] > 0 and r["take_p50_us_incompressible"] > 0, r
    elif r["store"] != "file":
        assert r["spilled_pages"] == 0 and r["store_disk_bytes"] == 0, r
codecs = {(c["codec"], c["pages"]): c for c in d["codecs"]}
assert set(codecs) == {(c, p) for c in ("lz4", "zstd:1", "zstd:3")
                       for p in ("3x", "incompressible")}, codecs
for c in codecs.values():
    assert c["verified"] is True and c["put_ns_per_page"] > 0, c
    assert c["take_ns_per_page"] > 0, c
    assert c["data_bytes_per_page"] < (3000 if c["pages"] == "3x" else 4097), c
' "$json"

# vm run --reclaim (no VM runs here: the options are refused before one
# would be made)
check "vm run bad --reclaim named" expect_error 2 \
  "--reclaim 'disk': expected memory, file or tiered" vm run --reclaim disk
check "vm run bad --reclaim-codec named" expect_error 2 \
  "--reclaim-codec 'brotli': expected lz4, zstd or zstd:LEVEL" \
  vm run --reclaim tiered --reclaim-codec brotli
check "vm run bad zstd level named" expect_error 2 \
  "--reclaim-codec 'zstd:0': zstd level expected 1.." \
  vm run --reclaim memory --reclaim-codec zstd:0
check "vm run --reclaim-codec with the file store refused" expect_error 2 \
  "--reclaim-codec 'zstd': needs --reclaim memory or tiered" \
  vm run --reclaim file --reclaim-codec zstd
check "vm run --reclaim-codec without --reclaim refused" expect_error 2 \
  "--reclaim-codec 'lz4': needs --reclaim memory or tiered" \
  vm run --reclaim-codec lz4

# bench restore without KVM (--no-kvm; the default where /dev/kvm cannot be
# opened): a small run, warm cache only (it never drops the machine's page
# cache), whose JSON carries the five modes, "mode":"mmap" among them,
# every one verified word by word, and says the guest was plain threads.
check "bench restore bad --threads named" expect_error 2 "--threads '0'" \
  bench restore --no-kvm --threads 0
json=$("$LAZYMEM" bench restore --no-kvm --mem 16M --cache warm --json)
rc=$?
check "bench restore --no-kvm exits 0" test "$rc" -eq 0
check "bench restore --no-kvm --json shape, mmap contender, verification" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["benchmark"] == "restore", d
c = d["config"]
assert c["guest"] == "threads" and c["why_not_kvm"] == "--no-kvm", c
assert c["mem"] == 16 << 20 and c["threads"] == 2 and c["page_size"] == 4096, c
assert c["cold_cache"] is False and "--cache warm" in c["cold_cache_why"], c
res = d["results"]
assert [r["mode"] for r in res] == ["eager", "lazy", "prefetch", "limit", "mmap"], res
touched = {r["pages_touched"] for r in res}
assert touched == {4096 // 10 // 2 * 2}, touched
for r in res:
    assert r["verified"] is True and "error" not in r, r
    assert r["cache"] == "warm" and r["resident_before"]["memory.img"] > 0.99, r
    assert r["words_checked"] == r["pages_touched"] * 512, r
    assert r["seconds"] > 0 and r["first_instruction_ms"] >= 0, r
    assert set(r["restore_steps_ms"]) == {"meta", "hashes", "memory",
                                          "prefetch_thread"}, r
m = [r for r in res if r["mode"] == "mmap"][0]
assert m["pages_faulted"] == 0 and m["pages_prefetched"] == 0, m
# the lazy modes loaded lazily (who wins a page, a thread, the prefetcher
# or the background fill, depends on the load of the machine)
for r in res:
    if r["mode"] in ("lazy", "prefetch"):
        assert r["pages_faulted"] + r["pages_background"] > 0, r
' "$json"

# bench tracking (plain threads): bad values refused by name; a small run's
# JSON has the issue's shape, every mechanism on every thread count and
# workload ran and verified (collected set = written set, every page's
# content), and the KVM and soft-dirty rows are skipped with a reason.
check "bench tracking bad --rounds named" expect_error 2 "--rounds '0'" \
  bench tracking --rounds 0
check "bench tracking bad --vcpus named" expect_error 2 "--vcpus '1,x'" \
  bench tracking --vcpus 1,x
check "bench tracking bad --mem named" expect_error 2 "--mem '5000'" \
  bench tracking --mem 5000
json=$("$LAZYMEM" bench tracking --mem 16M --rounds 2 --threads 1,2 --json)
rc=$?
check "bench tracking exits 0" test "$rc" -eq 0
check "bench tracking --json shape and verification" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["benchmark"] == "tracking", d
c = d["config"]
assert c["guest"] == "threads" and c["threads"] == [1, 2], c
assert c["mem"] == 16 << 20 and c["page_size"] == 4096 and c["rounds"] == 2, c
assert c["cpus"] >= 1 and set(c["workloads"]) == {"full", "sparse"}, c
ran = [r for r in d["results"] if "skipped" not in r]
skipped = {r["mechanism"]: r["skipped"] for r in d["results"] if "skipped" in r}
assert set(skipped) == {"kvm-dirty-log", "kvm-dirty-ring", "soft-dirty"}, skipped
assert all(len(why) > 20 for why in skipped.values()), skipped
mechs = ("none", "uffd-wp-async", "uffd-wp-sync", "mprotect")
assert sorted((r["mechanism"], r["threads"], r["workload"]) for r in ran) == sorted(
    (m, t, w) for m in mechs for t in (1, 2) for w in ("full", "sparse")), ran
pages = 16 << 20 >> 12
for r in ran:
    assert r["verified"] is True and "error" not in r and r["rounds"] == 2, r
    for k in ("write_ns_per_page", "collect_ns_per_page", "collect_ms",
              "write_x_none", "pages_collected", "pages_written_per_round"):
        assert k in r, (k, r)
    assert r["write_ns_per_page"] > 0, r
    if r["workload"] == "full":
        assert r["pages_written_per_round"] == pages, r
    else:
        assert 0 < r["pages_written_per_round"] < pages / 5, r
    if r["mechanism"] == "none":
        assert r["pages_collected"] == 0 and r["write_x_none"] == 1, r
    else:
        assert r["pages_collected"] == 2 * r["pages_written_per_round"], r
        assert r["collect_ns_per_page"] > 0, r
' "$json"

[ $fails -eq 0 ]
