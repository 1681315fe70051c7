#!/usr/bin/env bash
# store_cli.sh - `lazymem snapshot push` and `snapshot pull` from the
# command line against nginx (WebDAV) on loopback: a snapshot made by
# `lazymem demo --no-kvm` (with its recorded working set) pushed, pushed
# again (nothing new), pulled back identical and verified; bad URLs and
# options refused by name; `vm restore URL` gets as far as the VM (no
# /dev/kvm here: it must fail saying so, after reading the manifest).
set -u
LAZYMEM=$1
. "$(dirname "$0")/cli_lib.sh"
[ -x /usr/sbin/nginx ] || { echo "SKIP: nginx not installed (scripts/deps.sh test)"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the nginx test store runs as root here"; exit 77; }
dir=$(mktemp -d)
# the store: `lazymem store serve`, the one bench fleet and the C tests
# start too (store/local.h); its URL is the first line it prints
"$LAZYMEM" store serve >"$dir/serve.out" 2>"$dir/serve.err" &
serve=$!
trap 'kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$dir/serve.out" ] && break; sleep 0.05; done
base=$(head -n1 "$dir/serve.out")
case $base in http://127.0.0.1:*) ;; *) echo "FAIL: store serve printed no URL: $(cat "$dir/serve.err")"; exit 1 ;; esac
sdir=$(sed -n 's/.*data in \(.*\)\/data;.*/\1/p' "$dir/serve.err")
url=$base/bucket/demo
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

"$LAZYMEM" demo --no-kvm --mem 16M --keep --dir "$dir/snap" >/dev/null 2>&1
check "demo --no-kvm made a snapshot with a working set" test -s "$dir/snap/ws.lmws"

json=$("$LAZYMEM" snapshot push "$dir/snap" "$url" --json); rc=$?
check "push exits 0" test "$rc" -eq 0
check "push: 64 chunks of 256 KiB" test "$(field chunks_total <<<"$json")" = 64
check "push: every distinct chunk uploaded" \
  test "$(field chunks_new <<<"$json")" = "$(field chunks_unique <<<"$json")"
check "push: the working set and the manifest are there" \
  test -s "$sdir/data/bucket/demo/ws.lmws" -a -s "$sdir/data/bucket/demo/manifest.json"
json=$("$LAZYMEM" snapshot push "$dir/snap" "$url" --json)
check "push again: nothing new" test "$(field chunks_new <<<"$json")" = 0
check "push again: all reused" test "$(field chunks_reused <<<"$json")" = "$(field chunks_unique <<<"$json")"
out=$("$LAZYMEM" snapshot push "$dir/snap" "$url")
check "push prints the dedup line" grep -q "already in the bucket" <<<"$out"

out=$("$LAZYMEM" snapshot pull "$url" "$dir/pulled"); rc=$?
echo "$out"
check "pull exits 0 and prints its throughput" \
  bash -c "[ $rc -eq 0 ] && grep -q 'MiB/s' <<<'$out'"
check "pulled snapshot verifies" "$LAZYMEM" snapshot verify "$dir/pulled"
for f in memory.img meta.json pages.xxh ws.lmws; do
  check "pulled $f is the original's" cmp -s "$dir/snap/$f" "$dir/pulled/$f"
done
json=$("$LAZYMEM" snapshot pull "$url" "$dir/pulled2" --json)
check "pull --json: bytes fetched" test "$(field bytes_fetched <<<"$json")" -gt 0

check "a URL that is not one is refused by name" \
  expect_error 1 "store URL 'ftp://h/b/p'" snapshot push "$dir/snap" ftp://h/b/p
check "--parallel 0 is a usage error" \
  expect_error 2 "--parallel '0'" snapshot pull "$url" "$dir/x" --parallel 0
check "--chunk-size 100k is refused" \
  expect_error 1 "chunk size 102400" snapshot push "$dir/snap" "$url-x" --chunk-size 100k
check "no snapshot at a URL: 404 named" \
  expect_error 1 "no snapshot pushed there" snapshot pull "$url-none" "$dir/y"
check "--s3-region without keys is a usage error" \
  bash -c "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; '$LAZYMEM' snapshot pull '$url' '$dir/z' --s3-region us-east-1 2>&1 >/dev/null | grep -q AWS_ACCESS_KEY_ID"
# vm restore URL: the manifest is read (its snapshot is not a VM's: the
# demo's threads workload), so it is refused by name before any VM.
check "vm restore URL reads the manifest and refuses a non-VM snapshot" \
  expect_error 1 "memory layout: expected 2 regions" vm restore "$url" --cache-dir "$dir/cache"

# bench fleet, small: its JSON has the issue's shape and every run verified
# no --url: the benchmark starts a store of its own
json=$("$LAZYMEM" bench fleet --mem 16M --vms 2 --rtt 0 --json); rc=$?
check "bench fleet exits 0" test "$rc" -eq 0
check "bench fleet: 4 modes, all verified, one cache fetches each chunk once" python3 -c '
import json, sys
j = json.loads(sys.argv[1])
r = {x["mode"]: x for x in j["results"]}
def say(ok, what):
    if not ok:
        sys.exit("bench fleet: " + what + "; results: " + json.dumps(j["results"]))
say(j["benchmark"] == "fleet" and set(r) == {"lazy", "pull", "shared-cache", "separate-cache"}, "modes")
say(all(x["verified"] for x in j["results"]), "a mode not verified")
# 16 MiB, a quarter zero, the rest incompressible: 48 chunks of 256 KiB.
# A VM stops when its working set is read, abandoning the prefetches
# still running; how far prefetch got depends on the load. What does not:
# through one cache no chunk is fetched twice. An abandoned or retried
# request costs bytes, never a second chunk.
n = j["base_chunks"]
say(n == 48, "base_chunks %d, expected 48" % n)
sc, sep = r["shared-cache"], r["separate-cache"]
say(1 <= sc["chunks_fetched"] <= n, "shared cache fetched %d chunks of %d" % (sc["chunks_fetched"], n))
say(sc["chunks_twice"] == 0, "shared cache: %d chunks fetched by both VMs" % sc["chunks_twice"])
say(1 <= sep["chunks_fetched"] <= 2 * n, "separate caches fetched %d chunks of 2 x %d" % (sep["chunks_fetched"], n))
extra = sc["requests"] - sc["chunks_fetched"] - 2 * 2   # manifest + ws.lmws per VM
say(sc["bytes_fetched"] < 1.05 * 12 * 2**20 + max(extra, 0) * 2**18,
    "shared cache moved %d bytes" % sc["bytes_fetched"])
say(j["dedup_ratio"] > 2, "dedup ratio %.2f" % j["dedup_ratio"])
' "$json"

check "store serve takes no arguments" expect_error 2 "takes no arguments" store serve x
check "store serve said where its data is" test -d "$sdir/data"
kill -TERM "$serve"; wait "$serve"; rc=$?
check "store serve exits 0 on SIGTERM" test "$rc" -eq 0
check "store serve removed its directory" test ! -e "$sdir"
check "nginx stopped with it" python3 -c "
import socket, sys
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1].rsplit(':', 1)[1])), 2)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit('still listening on ' + sys.argv[1])" "$base"
exit $((fails > 0))
