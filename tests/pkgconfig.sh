#!/usr/bin/env bash
# pkgconfig.sh - the installed library is usable as a user would use it:
# install into a scratch root, build examples/lazy_copy.c with nothing but
# `pkg-config --cflags --libs lazymem`, and run it on an image with a hole.
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$tmp" >/dev/null
pc=$(dirname "$(find "$tmp" -name lazymem.pc | head -1)")
export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$tmp
cc -std=gnu11 -Wall -Wextra -Werror "$src/examples/lazy_copy.c" \
  $(pkg-config --cflags --libs lazymem) -o "$tmp/lazy_copy"
libdir=$(dirname "$(find "$tmp" -name 'liblazymem.so.*' | head -1)")
# 8 MiB image: 1 MiB of 0x01 bytes, then a hole.
head -c 1048576 /dev/zero | tr '\0' '\001' > "$tmp/img"
truncate -s 8M "$tmp/img"
out=$(LD_LIBRARY_PATH=$libdir "$tmp/lazy_copy" "$tmp/img")
echo "$out"
# 1 MiB of 0x01 read at every 16th page: 16 pages of the first 256 hold 1.
grep -q "^checksum 16; 128 of 2048 pages fetched" <<<"$out"
# The exported symbols are exactly the map's.
nm -D --defined-only "$libdir"/liblazymem.so.* | awk '$2 == "T" {print $3}' \
  | grep -v '^lm_' && { echo "unexpected exported symbol"; exit 1; }
exit 0
