#!/usr/bin/env bash
# cli.sh - the lazymem command: help, clear errors for wrong values, and a
# small `bench fault` whose JSON has the documented shape and whose every
# run verified its data.
set -u
LAZYMEM=$1
fails=0
check() {  # description, command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails+1)); fi
}
expect_error() {  # exit code, words, args...
  local code=$1 words=$2; shift 2
  local out rc
  out=$("$LAZYMEM" "$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq "$code" ] && grep -qF -- "$words" <<<"$out" \
    || { echo "  got exit $rc: $out"; return 1; }
}

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
' "$json"

[ $fails -eq 0 ]
