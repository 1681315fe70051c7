#!/usr/bin/env bash
# Build lazymem and pass its whole test suite, three times over:
#   build/        optimized, warnings as errors
#   build-asan/   AddressSanitizer + UndefinedBehaviorSanitizer
#   build-tsan/   ThreadSanitizer, for the threaded core, the fc-handler
#                 daemon, the transport, the store and live migration (suites "core",
#                 "fc", "net", "store" and the kvm_migrate test)
#   build-fuzz/   clang + libFuzzer, a short campaign per parser
# and first compile (no test run) the release and plain build types with
# gcc and with clang (build-{release,plain}-{gcc,clang}/): every build of
# this script passes -Dwerror=true, so each must be warning-free.
# Tests needing /dev/kvm, hugetlb pages or root skip with a reason.
#
# A failing build step prints its log's path and last 30 lines
# (build-logs/); the run goes on with what does not depend on it and fails
# at the end. The last line is always the summary:
#   tests: N passed, N failed, N skipped
#
# With CI=true (as .ci/run is run) the whole run happens inside a minimal
# Debian 12 root built from the mirror (scripts/fresh-root.sh): the README's
# two commands on a fresh machine, with nothing installed beforehand. That
# run sets LAZYMEM_IN_FRESH_ROOT=1, where this script runs as on a host.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = true ] && [ "${LAZYMEM_IN_FRESH_ROOT:-0}" != 1 ]; then
  exec ./scripts/fresh-root.sh
fi

./scripts/deps.sh build test package fresh-root
. scripts/steps.sh

status=0
failed_steps=()
make_build() {  # dir, meson options...: set up and compile; 1 when either fails
  local dir=$1 t=$SECONDS
  if setup "$@" && compile "$dir"; then
    echo "   $dir built in $((SECONDS - t)) s"
    return 0
  fi
  failed_steps+=("$dir"); status=1; return 1
}

runs=0
ran=()
run() {  # dir, suite args...
  local dir=$1; shift
  local log=$lm_logdir/test-$dir-$((runs + 1)).log
  echo "== tests in $dir $*"
  local t=$SECONDS
  if ! meson test -C "$dir" --no-rebuild --print-errorlogs "$@" >"$log" 2>&1; then
    status=1
    grep -E '^ *[0-9]+/[0-9]+ ' "$log" || true
    python3 scripts/test_summary.py --failed "$dir/meson-logs/testlog.json" \
      || tail -n 30 "$log"
    echo "--- (whole log: $log; each test's: $dir/meson-logs/testlog.txt)"
  else
    grep -E '^ *[0-9]+/[0-9]+ ' "$log" || true
  fi
  echo "   ran in $((SECONDS - t)) s"
  # each run rewrites testlog.json: keep every run's for the summary
  runs=$((runs + 1))
  [[ " ${ran[*]} " == *" $dir "* ]] || ran+=("$dir")
  cp "$dir/meson-logs/testlog.json" "$dir/meson-logs/testlog-run$runs.json" 2>/dev/null || true
}

rm -f build*/meson-logs/testlog-run*.json

# Compile only: both compilers, the release and plain build types, as a
# user's `meson setup --buildtype=...` would (about 20-60 s each).
for cc in gcc clang; do
  for bt in release plain; do
    echo "== compile build-$bt-$cc (CC=$cc, --buildtype=$bt, -Dwerror=true)"
    CC=$cc make_build "build-$bt-$cc" --buildtype="$bt" -Dwerror=true || true
  done
done

if make_build build -Dwerror=true; then
  run build
fi
if make_build build-asan -Dwerror=true -Dbuildtype=debug \
     -Db_sanitize=address,undefined -Db_lundef=false; then
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 run build-asan
fi
if make_build build-tsan -Dwerror=true -Dbuildtype=debug -Db_sanitize=thread \
     -Db_lundef=false; then
  TSAN_OPTIONS=halt_on_error=1 run build-tsan --suite core --suite fc
  TSAN_OPTIONS=halt_on_error=1 run build-tsan --suite net
  # the store: the fetcher thread, faulting threads, the cache
  TSAN_OPTIONS=halt_on_error=1 run build-tsan --suite store
  # live migration: the source's VM thread, the destination's thread and
  # the transport's, in one process
  TSAN_OPTIONS=halt_on_error=1 run build-tsan kvm_migrate
fi

# A short libFuzzer campaign on the parsers (clang, ASan+UBSan; it builds
# only the fuzz targets: the clang builds above compiled the whole tree).
echo "== fuzzing (20 s per target)"
t=$SECONDS
./scripts/fuzz.sh 20 || { status=1; failed_steps+=("fuzz"); }
echo "   built and fuzzed in $((SECONDS - t)) s; test.sh so far $SECONDS s"

if [ ${#failed_steps[@]} -gt 0 ]; then
  echo "failed steps (logs above): ${failed_steps[*]}"
fi
python3 scripts/test_summary.py "${ran[@]}" || status=1
exit $status
