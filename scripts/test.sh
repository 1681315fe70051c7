#!/usr/bin/env bash
# Build lazymem and pass its whole test suite, three times over:
#   build/        optimized, warnings as errors
#   build-asan/   AddressSanitizer + UndefinedBehaviorSanitizer
#   build-tsan/   ThreadSanitizer, for the threaded core, the fc-handler
#                 daemon, the transport and live migration (suites "core",
#                 "fc", "net" and the kvm_migrate test)
#   build-fuzz/   clang + libFuzzer, a short campaign per parser
# Tests needing /dev/kvm, hugetlb pages or root skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

setup() {  # dir, meson options...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
}

status=0
runs=0
run() {  # dir, suite args...
  local dir=$1; shift
  echo "== tests in $dir $*"
  meson test -C "$dir" --no-rebuild --print-errorlogs "$@" \
    | grep -E '^ *[0-9]+/[0-9]+ ' || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  # each run rewrites testlog.json: keep every run's for the summary
  runs=$((runs + 1))
  cp "$dir/meson-logs/testlog.json" "$dir/meson-logs/testlog-run$runs.json"
}

rm -f build*/meson-logs/testlog-run*.json
setup build
run build
setup build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run build-asan
setup build-tsan -Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false
TSAN_OPTIONS=halt_on_error=1 run build-tsan --suite core --suite fc
TSAN_OPTIONS=halt_on_error=1 run build-tsan --suite net
# live migration: the source's VM thread, the destination's thread and the
# transport's, in one process
TSAN_OPTIONS=halt_on_error=1 run build-tsan kvm_migrate

# A short libFuzzer campaign on the parsers (clang, ASan+UBSan): it also
# builds the whole tree with a second compiler's warnings as errors.
echo "== fuzzing (20 s per target)"
./scripts/fuzz.sh 20 || status=1

python3 scripts/test_summary.py build build-asan build-tsan || status=1
exit $status
