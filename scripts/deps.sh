#!/usr/bin/env bash
# Install the Debian packages lazymem needs, by group, if any are missing.
# Safe to run again: it does nothing when all are present.
#
#   scripts/deps.sh                      the build group (what demo.sh needs)
#   scripts/deps.sh build test package   several groups
#   scripts/deps.sh --bench              what the benchmarks and their plots use
#   scripts/deps.sh --list [GROUP...]    print the packages, one a line; install nothing
#
# Groups (docs/dependencies.md says why each package is here):
#   build       compile lazymem and its guest images
#   test        the test suite: cmocka, the programs the tests call, clang
#               for the second-compiler builds and the fuzz campaign
#   package     Debian packaging and man pages (.deb, scdoc)
#   plot        the plots in docs/ (bench/plot_*)
#   fresh-root  scripts/fresh-root.sh: a minimal Debian root built from the mirror
#   --bench     plot, plus the profiler the benchmark docs quote
# tests/deps_listed.sh fails when a meson dependency() or a program the
# scripts and tests call comes from a package not listed here.
set -euo pipefail

declare -A group
group[build]="
  gcc                # the compiler (gnu11)
  libc6-dev          # the C library's headers (gcc only recommends it)
  linux-libc-dev     # the kernel's uapi headers: userfaultfd.h, kvm.h
  binutils           # objcopy, for the guest images; nm
  meson ninja-build pkg-config
  python3            # meson itself; guest image embedding
  libjson-c-dev      # JSON output of every benchmark and command
  libxxhash-dev      # per-page integrity hashes of snapshots
  liblz4-dev         # compression of pages on the migration wire and in reclaim's page store
  libcurl4-openssl-dev  # snapshots in HTTP / S3 object storage (src/store)
  libzstd-dev        # compression of snapshot chunks in object storage
  libssl-dev         # SHA-256 (libcrypto) naming snapshot chunks by content
  libgnutls28-dev    # TLS 1.3 on migration connections (X.509 or PSK)
"
group[test]="
  libcmocka-dev      # the unit and integration tests
  clang libclang-rt-14-dev  # libFuzzer for the fuzz campaign; a second compiler's warnings
  iproute2           # ip and ss: network namespaces for the two-host tests
  mawk               # awk in tests/pkgconfig.sh (not Essential)
  procps             # kill(1), run by xargs in the net tests' clean-up traps
  python3            # JSON checks in the script tests; the test summary
  nginx-core         # the object store (WebDAV PUT/GET) of the store tests
  gnutls-bin         # certtool and psktool: the TLS tests' CA, keys and PSK files
"
group[package]="
  debhelper dpkg-dev fakeroot  # building the .deb (debian/)
  scdoc              # the man pages
  systemd            # tests/deb.sh: systemd-analyze verify and systemd-socket-activate
                     # check the packaged units (installed, not started)
"
group[plot]="
  gnuplot-nox        # every plot in docs/ (bench/plot_*.sh, bench/plot_*.py)
  python3            # the plot scripts read the benchmarks' JSON
"
group[fresh-root]="
  mmdebstrap         # builds the minimal Debian root
  git                # the clean clone copied into it
  mount              # mount and umount of /dev, /proc, /sys, /run in it (not Essential)
  mawk               # awk, to find what is mounted under the root
"
group[bench]="
  linux-perf         # perf record / perf stat, the profiles in docs/benchmarks.md and docs/kvm.md
"

list_only=0
want=()
for a in "$@"; do
  case $a in
    --bench) want+=(plot bench) ;;
    --list) list_only=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) [ -n "${group[$a]+x}" ] || { echo "deps.sh: unknown group '$a' (groups: ${!group[*]}, --bench)" >&2; exit 2; }
       want+=("$a") ;;
  esac
done
[ ${#want[@]} -gt 0 ] || { [ $list_only -eq 1 ] && want=("${!group[@]}") || want=(build); }

pkgs=()
for g in "${want[@]}"; do
  for p in $(sed 's/#.*//' <<<"${group[$g]}"); do
    [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p")
  done
done
if [ $list_only -eq 1 ]; then printf '%s\n' "${pkgs[@]}"; exit 0; fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "lazymem: installing Debian packages (${want[*]}): ${missing[*]}" >&2
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/lazymem-deps.XXXXXX.log)
step() {  # what, command...: quiet when it works, its log's tail when not
  local what=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "deps.sh: $what failed: $*" >&2
    echo "--- last 30 lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
step "apt-get update" "${SUDO[@]}" apt-get update
step "apt-get install" "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
rm -f "$log"
