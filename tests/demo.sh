#!/usr/bin/env bash
# demo.sh - the main job (`lazymem demo`) passes end to end on a small VM.
LAZYMEM=$1
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "SKIP: /dev/kvm is not usable here"; exit 77
fi
out=$("$LAZYMEM" demo --mem 32M --vcpus 2) || { echo "$out"; exit 1; }
echo "$out"
grep -q "^demo passed$" <<<"$out" && grep -q "refused, as it must be: .*offset 0x3e8000" <<<"$out"
