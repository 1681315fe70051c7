# steps.sh - sourced by demo.sh, test.sh and fuzz.sh: `step` runs one build
# step with its output in a log, and when the step fails prints what failed,
# the log's path and its last 30 lines, so that no failure is silent.
# LAZYMEM_VERBOSE=1 sends the output to the terminal instead.
lm_logdir=${LAZYMEM_LOGDIR:-$PWD/build-logs}
mkdir -p "$lm_logdir"
step() {  # log name, command...
  local name=$1; shift
  local log=$lm_logdir/$name.log
  if [ "${LAZYMEM_VERBOSE:-0}" = 1 ]; then
    "$@" || { echo "FAILED: $*" >&2; return 1; }
    return 0
  fi
  if ! "$@" >"$log" 2>&1; then
    echo "FAILED: $*" >&2
    echo "--- last 30 lines of $log:" >&2
    tail -n 30 "$log" >&2
    echo "--- (whole log: $log)" >&2
    # meson's own log says why a check failed (a compiler that cannot
    # link, a missing dependency): its tail too
    local mlog
    mlog=$(sed -n 's/^A full log can be found at \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ -n "$mlog" ] && [ -f "$mlog" ]; then
      echo "--- last 30 lines of $mlog:" >&2
      tail -n 30 "$mlog" >&2
    fi
    return 1
  fi
}
# meson setup, or reconfigure with these options when the directory exists
setup() {  # dir, meson options...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    step "setup-$dir" meson setup --reconfigure "$dir" "$@"
  else
    step "setup-$dir" meson setup "$dir" "$@"
  fi
}
compile() {  # dir
  step "ninja-$1" ninja -C "$1"
}
