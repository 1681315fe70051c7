#!/usr/bin/env bash
# Build the libFuzzer targets with clang (ASan+UBSan) and fuzz each for
# SECONDS (default 60), starting from fuzz/corpus/. A crash fails the run
# and leaves its reproducer in build-fuzz/: copy it into the corpus once
# fixed, so replay keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
./scripts/deps.sh
command -v clang >/dev/null || { apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; }
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=enabled -Dbuildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz >/dev/null
for t in snapshot_meta fc_protocol net_decode; do
  work=$(mktemp -d)
  cp fuzz/corpus/$t/* "$work/"
  echo "fuzzing $t for ${secs}s"
  (cd build-fuzz && ./fuzz/fuzz_$t -max_total_time="$secs" -max_len=8192 \
      -print_final_stats=1 "$work" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true)
  [ "${PIPESTATUS[0]:-0}" -eq 0 ]
  rm -rf "$work"
done
