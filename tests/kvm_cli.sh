#!/usr/bin/env bash
# kvm_cli.sh - `lazymem vm run` and `lazymem bench paging` from the
# outside: help, one-line errors naming the bad option value, a guest run
# whose JSON says it verified, and the bench's JSON in the documented shape
# with every run verified. Skips (exit 77) without /dev/kvm.
set -u
LAZYMEM=$1
. "$(dirname "$0")/cli_lib.sh"

check "--help lists vm run and bench paging" \
  bash -c "'$LAZYMEM' --help | grep -q 'vm run' && '$LAZYMEM' --help | grep -q 'bench paging'"
check "vm run --help" bash -c "'$LAZYMEM' vm run --help | grep -q -- '--delivery'"
check "bench paging --help" bash -c "'$LAZYMEM' bench paging --help | grep -q -- '--mem-per-vcpu'"
check "bad --delivery named" expect_error 2 "--delivery 'carrier-pigeon'" vm run --delivery carrier-pigeon
check "bad --workload named" expect_error 2 "--workload 'dance'" vm run --workload dance
check "bad --mem named" expect_error 2 "--mem '12Q'" vm run --mem 12Q
check "bad --vcpus named" expect_error 2 "--vcpus '0'" vm run --vcpus 0
check "1 GiB guest pages refused" expect_error 2 "--guest-pages '1g'" vm run --guest-pages 1g
check "bad --backing named" expect_error 2 "--backing 'disk'" vm run --backing disk
check "counter needs 2 vCPUs" expect_error 2 "--workload counter needs" vm run --workload counter
check "placement only with handlers" expect_error 2 "--placement applies" \
  vm run --delivery exit --placement same-cpu
check "bench: bad --vcpus list named" expect_error 2 "--vcpus '1,,2'" bench paging --vcpus 1,,2
check "bench: bad --delivery named" expect_error 2 "--delivery 'fast'" bench paging --delivery fast

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
  echo "SKIP: /dev/kvm unusable here; the guest runs were not tried"
  [ $fails -eq 0 ] && exit 77 || exit 1
fi

check "minor on anon refused at run time, with the reason" expect_error 1 "needs shared memory" \
  vm run --mem 4M --delivery minor --backing anon
check "uneven split refused, with the reason" expect_error 1 "does not split evenly" \
  vm run --mem 4M --vcpus 3

json=$("$LAZYMEM" vm run --mem 8M --vcpus 2 --workload random --delivery hybrid --json)
check "vm run --json: ran, faults by path, verified" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["delivery"] == "hybrid" and d["backing"] == "memfd" and d["vcpus"] == 2, d
assert d["pages"] == 2048 and d["pages_per_sec"] > 0, d
assert d["faults"]["vcpu"] >= 2048, d
assert d["verified"] is True and d["mismatches"] == 0, d
' "$json"

json=$("$LAZYMEM" bench paging --vcpus 1,2 --mem-per-vcpu 4M --repeat 1 --json)
check "bench paging --json shape and verification" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["benchmark"] == "paging", d
assert d["config"]["vcpus"] == [1, 2] and d["config"]["mem_per_vcpu"] == 4 << 20
res = d["results"]
assert {r["delivery"] for r in res} == {"limit", "handler", "minor", "exit", "hybrid"}, res
assert {r["placement"] for r in res if r["delivery"] == "handler"} >= {"same-cpu"}
for r in res:
    assert set(r) == {"delivery", "placement", "vcpus", "pages", "seconds",
                      "pages_per_sec", "verified"}, r
    assert r["verified"] is True, r
    assert r["pages"] == 1024 * r["vcpus"] and r["pages_per_sec"] > 0, r
' "$json"

[ $fails -eq 0 ]
