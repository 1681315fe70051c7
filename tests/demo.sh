#!/usr/bin/env bash
# demo.sh - the main job (`lazymem demo`) passes end to end on a small VM,
# and the snapshot it keeps is whole: `snapshot verify` passes on it,
# `snapshot inspect --json` describes it, and a flipped byte or a cut file
# is refused by name.
LAZYMEM=$1
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "SKIP: /dev/kvm is not usable here"; exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$LAZYMEM" demo --mem 32M --vcpus 2 --keep --dir "$dir/snap") || { echo "$out"; fail demo; }
echo "$out"
grep -q "^demo passed$" <<<"$out" || fail "demo did not pass"
grep -q "refused, as it must be: .*offset 0x3e8000" <<<"$out" || fail "corrupt page not named"

"$LAZYMEM" snapshot verify "$dir/snap" | grep -q "all 8192 pages match" || fail "verify of a good snapshot"
"$LAZYMEM" snapshot inspect --json "$dir/snap" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["version"] == 1 and d["page_size"] == 4096 and d["mem_size"] == 32 << 20, d
assert d["regions"] == [{"gpa": 1 << 32, "size": 32 << 20, "offset": 0}], d["regions"]
assert d["workload"]["gen"] == 7, d
' || fail "inspect --json"

python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(77 * 4096 + 9); b = f.read(1); f.seek(77 * 4096 + 9); f.write(bytes([b[0] ^ 0x55]))
' "$dir/snap/memory.img"
msg=$("$LAZYMEM" snapshot verify "$dir/snap" 2>&1) && fail "a corrupt snapshot verified"
grep -q "1 pages do not match their hash, the first at offset 0x4d000" <<<"$msg" || fail "verify message: $msg"

truncate -s 1M "$dir/snap/memory.img"
msg=$("$LAZYMEM" snapshot inspect "$dir/snap" 2>&1) && fail "a truncated snapshot opened"
grep -q "truncated" <<<"$msg" || fail "inspect message: $msg"
echo "ok"
