#!/usr/bin/env bash
# migrate_cli.sh - `lazymem migrate recv` and `migrate send` as two
# processes, as on two hosts: help and one-line errors naming the bad
# value; a hybrid migration whose destination's guest verifies every word;
# a source of another size refused by name; one with another vCPU count
# refused at the switch-over, the source told why; a source killed in the middle
# of post-copy, after which the destination says plainly that the VM
# cannot complete (and never hangs); `demo migrate`. Skips (exit 77)
# without /dev/kvm.
set -u
LAZYMEM=$1
. "$(dirname "$0")/cli_lib.sh"
tmp=$(mktemp -d /tmp/lazymem-migrate-cli.XXXXXX)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null; rm -rf -- "$tmp"' EXIT

check "--help lists migrate send and recv" \
  bash -c "'$LAZYMEM' --help | grep -q 'migrate send' && '$LAZYMEM' --help | grep -q 'migrate recv'"
check "migrate send --help" bash -c "'$LAZYMEM' migrate send --help | grep -q -- '--mode'"
check "migrate recv --help" bash -c "'$LAZYMEM' migrate recv --help | grep -q -- '--hold'"
check "send: --to required" expect_error 2 "--to HOST:PORT is required" migrate send
check "send: bad --mode named" expect_error 2 "--mode: 'teleport'" migrate send --to x:1 --mode teleport
check "send: bad --hot named" expect_error 2 "--hot: 'most'" migrate send --to x:1 --hot most
check "send: hugetlb refused" expect_error 2 "--backing: 'hugetlb'" migrate send --to x:1 --backing hugetlb
check "recv: --listen required" expect_error 2 "--listen HOST:PORT is required" migrate recv
check "recv: bad --delivery named" expect_error 2 "--delivery: 'handler'" migrate recv --listen :0 --delivery handler
check "recv: bad --hold-timeout named" expect_error 2 "--hold-timeout: 'soon'" migrate recv --listen :0 --hold-timeout soon

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
  echo "SKIP: /dev/kvm unusable here; no migration was tried"
  [ $fails -eq 0 ] && exit 77 || exit 1
fi

# Start `migrate recv ARGS` in the background; sets rpid and raddr.
start_recv() {  # log, args...
  local log=$1; shift
  "$LAZYMEM" migrate recv --listen 127.0.0.1:0 "$@" >"$log.out" 2>"$log.err" &
  rpid=$!; pids+=("$rpid")
  for _ in $(seq 100); do
    raddr=$(sed -n 's/^migrate recv: listening on //p' "$log.err")
    [ -n "$raddr" ] && return 0
    sleep 0.1
  done
  echo "  recv did not listen: $(cat "$log.err")"; return 1
}

# A hybrid migration between two processes, both reporting JSON.
start_recv "$tmp/a" --mem 32M --json
send_json=$("$LAZYMEM" migrate send --to "$raddr" --mem 32M --mode hybrid --json 2>"$tmp/a.send.err")
src=$?
wait "$rpid"; dst=$?
check "hybrid: both ends succeed" bash -c "[ $src -eq 0 ] && [ $dst -eq 0 ] || { cat '$tmp/a.send.err' '$tmp/a.err'; false; }"
check "hybrid: source JSON" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["command"] == "migrate send" and d["mode"] == "hybrid", d
assert len(d["round_pages"]) >= 1 and d["pages_precopy"] >= 8192, d
assert d["paused_to_switchover_ms"] > 0 and d["guest_passes"] > 0, d
' "$send_json"
check "hybrid: destination verified every word" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["command"] == "migrate recv" and d["verified"] is True, d
assert d["words_checked"] == (32 << 20) // 8 and d["mismatches"] == 0, d
assert d["pages_precopy_used"] > 0 and d["guest_passes"] > 0, d
' "$tmp/a.out"
check "switch-over announced without a terminal" grep -q "switch-over: 2 vCPUs restored" "$tmp/a.err"

# A source with another memory size: refused at the handshake, by name.
start_recv "$tmp/b" --mem 64M --timeout 3000
check "size mismatch refused, naming the region" \
  expect_error 1 "region 1: peer's size is 33554432 bytes, ours is 67108864" \
  migrate send --to "$raddr" --mem 32M
wait "$rpid"; dst=$?
check "the destination gives up, saying why" bash -c "[ $dst -eq 1 ] && grep -q 'no switch-over' '$tmp/b.err' || { cat '$tmp/b.err'; false; }"

# Same layout, other vCPU count: the destination refuses what it received
# at the switch-over, and the source is told why, not just "closed".
start_recv "$tmp/v" --mem 32M --vcpus 2
check "vCPU mismatch: the source is told the destination's reason" \
  expect_error 1 "the destination reports: vcpu 0's mailbox" \
  migrate send --to "$raddr" --mem 32M --vcpus 4
wait "$rpid"; dst=$?
check "vCPU mismatch: the destination refuses it, naming it" \
  bash -c "[ $dst -eq 1 ] && grep -q 'is not that of a migrating 2-vCPU' '$tmp/v.err' || { cat '$tmp/v.err'; false; }"

# The source dies in post-copy: held vCPUs give up after --hold-timeout
# and the destination says the VM cannot complete.
start_recv "$tmp/c" --mem 512M --hold --hold-timeout 1500 --run 5000
"$LAZYMEM" proxy --listen 127.0.0.1:0 --connect "$raddr" --rtt 2ms >"$tmp/p.out" 2>"$tmp/p.err" &
ppid=$!; pids+=("$ppid")
for _ in $(seq 50); do
  paddr=$(sed -n 's/^proxy: \([^ ]*\) -> .*/\1/p' "$tmp/p.err")
  [ -n "$paddr" ] && break; sleep 0.1
done
"$LAZYMEM" migrate send --to "$paddr" --mem 512M --mode postcopy >/dev/null 2>"$tmp/c.send.err" &
spid=$!; pids+=("$spid")
for _ in $(seq 300); do grep -q "switch-over" "$tmp/c.err" && break; sleep 0.05; done
kill -9 "$spid"
t0=$(date +%s%N)
wait "$rpid"; dst=$?
t1=$(date +%s%N)
check "source killed: destination fails" bash -c "[ $dst -eq 1 ] || { echo exit $dst; cat '$tmp/c.err'; false; }"
check "source killed: it says the VM cannot complete" bash -c "grep -q 'the migration cannot complete' '$tmp/c.err' || { cat '$tmp/c.err'; false; }"
check "source killed: within the hold timeout, not a hang ($(( (t1 - t0) / 1000000 )) ms)" \
  test $(( (t1 - t0) / 1000000 )) -lt 15000
kill "$ppid" 2>/dev/null

check "demo migrate" bash -c "'$LAZYMEM' demo migrate --mem 32M >'$tmp/demo' 2>&1 && grep -q 'both migrations verified' '$tmp/demo' || { cat '$tmp/demo'; false; }"

[ $fails -eq 0 ]
