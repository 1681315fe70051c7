#!/usr/bin/env bash
# Build lazymem and run its main job: a test VM's memory saved to a
# snapshot and restored lazily into a new VM whose guest checks every word
# (`lazymem demo`; pass its options through, e.g. --mem 1G --vcpus 4).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
ninja -C build >/dev/null
exec ./build/src/cli/lazymem demo "$@"
