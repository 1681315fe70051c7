#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan+UBSan, warnings as errors)
# and fuzz each for SECONDS (default 60), starting from fuzz/corpus/. A
# crash fails the run and leaves its reproducer in build-fuzz/: copy it into
# the corpus once fixed, so replay keeps it fixed. A failing build step
# prints its log's path and last 30 lines (build-logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
./scripts/deps.sh build test
. scripts/steps.sh
targets=(snapshot_meta fc_protocol net_decode store_manifest)
CC=clang setup build-fuzz -Dwerror=true -Dfuzz=enabled -Dbuildtype=debug \
  -Db_sanitize=address,undefined -Db_lundef=false
# only the fuzz targets: scripts/test.sh compiles the whole tree with clang
# (release and plain) itself
step ninja-build-fuzz ninja -C build-fuzz "${targets[@]/#/fuzz/fuzz_}"
fail=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp fuzz/corpus/$t/* "$work/"
  log=$(realpath "$lm_logdir")/fuzz-$t.log
  echo "fuzzing $t for ${secs}s"
  if (cd build-fuzz && ./fuzz/fuzz_$t -max_total_time="$secs" -max_len=8192 \
        -print_final_stats=1 "$work" >"$log" 2>&1); then
    grep -E "stat::number_of_executed_units" "$log" || true
  else
    echo "FAILED: fuzz_$t; last 30 lines of $log:"
    tail -n 30 "$log"
    fail=1
  fi
  rm -rf "$work"
done
exit $fail
