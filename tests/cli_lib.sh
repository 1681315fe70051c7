# cli_lib.sh - sourced by the command-line tests: `check` runs a named
# assertion and counts failures, `expect_error` runs lazymem ($LAZYMEM)
# and wants that exit code and those words on stderr.
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
