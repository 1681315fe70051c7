#!/usr/bin/env bash
# scale.sh - the scaling tables (issue 12) in one run, for a machine bigger
# than the 2-CPU ones this project is developed on: each benchmark's JSON
# into a results directory, a plot of each, and the machine it ran on.
#
#   bench fault    --threads 1,2,4,8,16 --size 512M, both workloads
#   bench paging   --vcpus 1,2,4,8,16 --mem-per-vcpu 64M --delivery all (KVM)
#   bench restore  --mem 1G: the VM (KVM) and the plain-thread mode with
#                  the mmap contender (--no-kvm), page cache cold and warm
#
# What cannot run here (no /dev/kvm, no gnuplot) is skipped with the reason,
# and listed again at the end. --quick runs the same steps small (about a
# minute on 2 CPUs; warm cache only, so it never drops the page cache).
# docs/benchmarks.md, "Scaling tables on a bigger machine".
set -uo pipefail

usage() {
  cat <<EOF
usage: bench/scale.sh [--quick] [--out DIR] [--lazymem PATH]
  --quick         small sizes and thread counts (proves the script works)
  --out DIR       results directory (default scale-results-<date>)
  --lazymem PATH  the lazymem command (default build/src/cli/lazymem)
Cold-cache restores drop the page cache: run as root for them.
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
lazymem=$root/build/src/cli/lazymem
out=scale-results-$(date -u +%Y%m%dT%H%M%SZ)
quick=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --lazymem) lazymem=${2:?--lazymem needs a path}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "scale.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$lazymem" ] || { echo "scale.sh: $lazymem: not an executable (build first, or --lazymem PATH)" >&2; exit 2; }
mkdir -p "$out" || exit 2

ran=() skipped=() failed=()
skip() { echo "SKIPPED: $1"; skipped+=("$1"); }

# The configuration, full or --quick.
if [ $quick = 1 ]; then
  fault_args=(--threads 1,2 --size 32M --repeat 1)
  paging_args=(--vcpus 1,2 --mem-per-vcpu 16M --delivery all --repeat 1)
  restore_args=(--mem 64M --cache warm)
else
  fault_args=(--threads 1,2,4,8,16 --size 512M)
  paging_args=(--vcpus 1,2,4,8,16 --mem-per-vcpu 64M --delivery all)
  restore_args=(--mem 1G)
fi

kvm_why=""
# A character device, opened in a subshell (a failed redirection must not
# end this script; and <> on a missing path would create a plain file).
if [ ! -c /dev/kvm ]; then
  kvm_why="no /dev/kvm"
elif ! ( exec 3<>/dev/kvm ) 2>/dev/null; then
  kvm_why="/dev/kvm cannot be opened"
fi
have_plot=1
command -v gnuplot >/dev/null || { have_plot=0; skip "plots: gnuplot not found (scripts/deps.sh plot)"; }

{
  echo "date: $(date -u +%FT%TZ)"
  echo "lazymem: $("$lazymem" --version 2>/dev/null || echo unknown) ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc)"
  echo "memory: $(grep MemTotal /proc/meminfo)"
  echo "kvm: ${kvm_why:-yes}"
  echo "quick: $quick"
} > "$out/machine.txt"
cat "$out/machine.txt"

# step NAME JSON PLOT-COMMAND... -- LAZYMEM-ARGS...: one benchmark, its
# table on the terminal, its JSON and plot in $out.
step() {
  local name=$1 json=$2; shift 2
  local plot=()
  while [ "$1" != -- ]; do plot+=("$1"); shift; done
  shift
  echo "== $name: lazymem $*"
  if "$lazymem" "$@" --json-out "$out/$json"; then
    ran+=("$name")
  else
    failed+=("$name"); return
  fi
  if [ $have_plot = 1 ]; then
    "${plot[@]}" || failed+=("$name plot")
  fi
}

# bench fault has --json only (no --json-out): its table is the JSON.
echo "== bench fault: lazymem bench fault ${fault_args[*]} --workload both --json"
if "$lazymem" bench fault "${fault_args[@]}" --workload both --json > "$out/fault.json"; then
  ran+=("bench fault")
  [ $have_plot = 1 ] && { "$root/bench/plot_fault.sh" "$out/fault.json" "$out/fault.svg" || failed+=("bench fault plot"); }
else
  failed+=("bench fault")
fi

if [ -n "$kvm_why" ]; then
  skip "bench paging: needs KVM ($kvm_why)"
  skip "bench restore (VM): needs KVM ($kvm_why)"
else
  step "bench paging" paging.json python3 "$root/bench/plot_paging.py" "$out/paging.json" "$out/paging.svg" -- \
    bench paging "${paging_args[@]}"
  step "bench restore (VM)" restore-vm.json python3 "$root/bench/plot_restore.py" "$out/restore-vm.json" "$out/restore-vm.svg" -- \
    bench restore "${restore_args[@]}"
fi
step "bench restore (plain threads, mmap contender)" restore-threads.json \
  python3 "$root/bench/plot_restore.py" "$out/restore-threads.json" "$out/restore-threads.svg" -- \
  bench restore --no-kvm "${restore_args[@]}"

echo
echo "results in $out: $(cd "$out" && ls | tr '\n' ' ')"
echo "ran: ${ran[*]:-nothing}"
for s in "${skipped[@]}"; do echo "skipped: $s"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
