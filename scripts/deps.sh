#!/usr/bin/env bash
# Install the Debian packages lazymem needs to build, test and plot, if any
# are missing. Safe to run again: it does nothing when all are present.
set -euo pipefail

pkgs=(
  gcc                # the compiler (gnu11), with its ASan/UBSan/TSan runtimes
  clang libclang-rt-14-dev  # libFuzzer for the fuzz targets; a second compiler's warnings
  binutils           # objcopy, for the guest images
  meson ninja-build pkg-config
  libjson-c-dev      # JSON output of every benchmark and command
  libcmocka-dev      # the unit and integration tests
  libxxhash-dev      # per-page integrity hashes of snapshots
  liblz4-dev         # compression of pages on the migration wire
  gnuplot-nox        # the plots in docs/
  python3            # meson itself; the test summary
  iproute2           # network namespaces for the two-host tests
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "lazymem: installing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
