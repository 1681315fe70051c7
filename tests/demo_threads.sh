#!/usr/bin/env bash
# demo_threads.sh - the main job without KVM (`lazymem demo --no-kvm`, what
# `lazymem demo` runs where /dev/kvm cannot be opened): plain threads fill,
# save, restore lazily, restore with the working set prefetched, and see a
# corrupt page refused. Checked line by line, not only by exit status: each
# step's figures in the table, the refused page's offset, and the snapshot
# it keeps (whole again, in the VM demo's format).
set -u
LAZYMEM=$1
. "$(dirname "$0")/cli_lib.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

check "demo --help documents --no-kvm" \
  bash -c "'$LAZYMEM' demo --help | grep -q -- '--no-kvm'"

out=$("$LAZYMEM" demo --no-kvm --mem 64M --keep --dir "$dir/snap" 2>&1); rc=$?
echo "$out"
check "demo --no-kvm exits 0" test "$rc" -eq 0
has() { grep -qE -- "$1" <<<"$out" || { echo "  no line matching: $1"; return 1; }; }
check "says why it runs on threads" \
  has "^no /dev/kvm here \(--no-kvm\): running the same job on plain threads instead of vCPUs$"
check "step 1 saved 64 MiB, every page stored" has "^  saved to $dir/snap in .*: 64 MiB, 16384 pages stored"
check "step 2 recorded the working set" has "^  recorded its working set: 1638 pages"
check "step 3 prefetched it" has "^  prefetched 1638 pages in "
check "step 4 refused the corrupt page by offset" \
  has "^  refused, as it must be: snapshot .*: page at offset 0x3e8000 does not match its hash \(Bad message\); thread 0 was stopped there"
check "demo passed" has "^demo passed$"

# The table: step, time, first access, faults on threads, pages
# prefetched, pages/s, verified.
check "table: every step's figures" python3 -c '
import re, sys
rows = {}
for line in sys.argv[1].splitlines():
    m = re.match(r"^([1-4]) [a-z +]+?\s+([0-9.]+) s\s+(\S+(?: ms)?)\s+(\S+)\s+(\S+)\s+(\S+)\s+(.*)$", line)
    if m:
        rows[int(m.group(1))] = m.groups()[1:]
assert sorted(rows) == [1, 2, 3, 4], rows
_, first, faults, pf, rate, ver = rows[2]
assert int(faults) == 1638 and int(pf) == 0 and int(rate) > 0, rows[2]
assert ver.startswith("yes"), rows[2]
_, first, faults3, pf3, rate, ver = rows[3]
assert int(pf3) == 1638, rows[3]
assert int(faults3) * 10 <= int(faults), ("prefetch did not help", rows[3])
assert ver.startswith("yes"), rows[3]
assert rows[4][-1] == "refused 0x3e8000", rows[4]
' "$out"

check "the kept snapshot is whole again" \
  bash -c "'$LAZYMEM' snapshot verify '$dir/snap' | grep -qE 'all 16384 pages match'"
json=$("$LAZYMEM" snapshot inspect --json "$dir/snap")
check "the kept snapshot: one region, one entry per thread, the workload" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["regions"] == [{"gpa": 0, "size": 64 << 20, "offset": 0}], d
assert d["version"] == 1 and d["page_size"] == 4096 and d["mem_size"] == 64 << 20, d
assert len(d["vcpu_state_bytes"]) == 2, d
assert d["workload"]["kind"] == "threads" and d["workload"]["gen"] == 7, d
' "$json"
[ $fails -eq 0 ]
