#!/usr/bin/env bash
# Build lazymem and run its main job: a test VM saved whole at its save
# point, restored lazily (then with its working set prefetched) into a new
# VM that resumes after the save point and checks what it touches
# (`lazymem demo`; pass its options through, e.g. --mem 1G --vcpus 4).
# Without /dev/kvm the same job runs on plain threads instead of vCPUs.
# A failing build step prints its log's path and last 30 lines
# (build-logs/); LAZYMEM_VERBOSE=1 shows the build as it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh build
. scripts/steps.sh
if [ ! -f build/build.ninja ]; then
  step setup-build meson setup build
fi
compile build
exec ./build/src/cli/lazymem demo "$@"
