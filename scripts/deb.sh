#!/usr/bin/env bash
# deb.sh OUTDIR [dpkg-buildpackage options...] - build lazymem's Debian
# packages (liblazymem0, liblazymem-dev, lazymem, and their -dbgsym) from
# this tree, as it is now (uncommitted changes included, ignored files
# such as build directories left out), and put the .debs and the build log
# into OUTDIR.
#
# dpkg-buildpackage writes its results into the parent of the tree it
# builds, so it runs in a scratch copy under $TMPDIR: nothing is written
# into the tree or next to it. Needs dpkg-dev, debhelper and the
# Build-Depends of debian/control (dpkg-buildpackage names any missing).
# DEB_BUILD_OPTIONS is passed through (default: parallel=<CPUs>).
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  echo "usage: scripts/deb.sh OUTDIR [dpkg-buildpackage options...]" >&2
  exit 2
fi
out=$(realpath -m "$1"); shift
src=$(cd "$(dirname "$0")/.." && pwd)

for tool in dpkg-buildpackage dh; do
  command -v "$tool" >/dev/null || {
    echo "deb.sh: $tool not found (scripts/deps.sh package installs it)" >&2
    exit 1
  }
done

# The changelog's version is the package's; meson's is the library's.
deb_ver=$(cd "$src" && dpkg-parsechangelog -SVersion)
meson_ver=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -1)
if [ "${deb_ver%%-*}" != "$meson_ver" ]; then
  echo "deb.sh: debian/changelog is at $deb_ver but meson.build at" \
    "$meson_ver: add a changelog entry (dch -v $meson_ver)" >&2
  exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/lazymem-deb.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tree=$scratch/lazymem-$meson_ver
mkdir "$tree"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked and untracked files, not ignored ones (build*/); a tracked
  # file deleted in the work tree is left out.
  (cd "$src" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
     tar --null -T - -cf -) | tar -C "$tree" -xf -
else
  tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$tree" -xf -
fi

export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=$(nproc)}
mkdir -p "$out"
log=$out/lazymem_${deb_ver}_build.log
echo "deb.sh: building $deb_ver in $tree (log: $log)"
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b "$@") >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "deb.sh: dpkg-buildpackage failed; the whole log is $log" >&2
  exit 1
fi
debs=("$scratch"/*.deb)
[ -e "${debs[0]}" ] || { echo "deb.sh: no .deb was built" >&2; exit 1; }
cp "${debs[@]}" "$out"/
for d in "${debs[@]}"; do echo "$out/$(basename "$d")"; done
