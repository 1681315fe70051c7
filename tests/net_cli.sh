#!/usr/bin/env bash
# net_cli.sh - the transport's commands: help, clear errors for wrong
# values, a page-server -> proxy -> page-fetch fill written to a file that
# matches the served file byte for byte, and a small `bench postcopy` whose
# JSON has its documented shape with every run verified.
set -u
L=$1
LAZYMEM=$L
tmp=$(mktemp -d)
trap 'jobs -p | xargs -r kill 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/cli_lib.sh"

check "--help lists the transport" bash -c "'$L' --help | grep -q page-fetch"
check "page-fetch --help" bash -c "'$L' page-fetch --help | grep -q -- '--hold'"
check "page-server --help" bash -c "'$L' page-server --help | grep -q -- '--resume'"
check "bench postcopy --help" bash -c "'$L' bench postcopy --help | grep -q -- '--rtt'"
check "bad --rtt named" expect_error 2 "--rtt: '2 fortnights'" proxy --listen 127.0.0.1:0 --connect 127.0.0.1:1 --rtt "2 fortnights"
check "page-fetch needs --size" expect_error 2 "--size SIZE" page-fetch --listen 127.0.0.1:0
check "unaligned --size named" expect_error 2 "--size: '5000'" page-fetch --listen 127.0.0.1:0 --size 5000
check "file or pattern" expect_error 2 "one FILE or --pattern" page-server --to 127.0.0.1:1
check "bad address named" expect_error 1 "address 'nowhere'" page-server --to nowhere --pattern 1M
check "unreachable destination named" expect_error 1 "cannot connect to 127.0.0.1:1" page-server --to 127.0.0.1:1 --pattern 1M

# A file through the proxy (1 ms RTT), written out and compared.
head -c $((8 << 20)) /dev/urandom >"$tmp/img"
head -c $((4 << 20)) /dev/zero >>"$tmp/img"
port=$((20000 + $$ % 20000))
"$L" page-fetch --listen 127.0.0.1:$port --size 12M --out "$tmp/out" >"$tmp/fetch.out" 2>&1 &
fetch=$!
"$L" proxy --listen 127.0.0.1:$((port + 1)) --connect 127.0.0.1:$port --rtt 1ms 2>/dev/null &
sleep 0.3
"$L" page-server --to 127.0.0.1:$((port + 1)) "$tmp/img" >"$tmp/server.out" 2>&1
wait $fetch
check "file through the proxy arrives intact" cmp -s "$tmp/img" "$tmp/out"

# IPv6 loopback, when there is one.
if ip -6 addr show lo 2>/dev/null | grep -q '::1'; then
  "$L" page-fetch --listen "[::1]:$((port + 2))" --size 4M --verify >"$tmp/f6.out" 2>&1 &
  fetch=$!
  sleep 0.3
  "$L" page-server --to "[::1]:$((port + 2))" --pattern 4M >/dev/null 2>&1
  wait $fetch
  check "IPv6: filled and verified, address shown" \
    grep -q "listening on \[::1\]:$((port + 2))" "$tmp/f6.out"
  check "IPv6: verified" grep -q "verified: yes" "$tmp/f6.out"
else
  echo "SKIP: IPv6 loopback: no ::1 on lo"
fi

"$L" bench postcopy --mem 16M --demand-mem 1M --rtt 0,200us --json >"$tmp/b.json" 2>"$tmp/b.err"
check "bench postcopy runs and verifies" python3 - "$tmp/b.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["benchmark"] == "postcopy"
modes = {(r["mode"], r["rtt_us"]) for r in d["results"]}
assert ("local", 0) in modes and ("push", 200) in modes and ("demand", 200) in modes, modes
for r in d["results"]:
    assert r["verified"] is True, r
    for k in ("seconds", "fault_p50_us", "fault_p99_us", "fault_max_us", "pages_demand", "pages_background"):
        assert k in r, k
assert d["goals"], "no goals reported"
PY
exit $((fails > 0))
