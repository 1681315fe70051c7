#!/usr/bin/env bash
# Prove the README's two commands on a fresh machine: build a minimal
# Debian 12 (bookworm) root with mmdebstrap from the mirror this machine's
# apt uses, copy a clean `git clone` of this tree (its committed HEAD) into
# it, and run inside it, with nothing installed beyond the minimal root:
#
#   ./scripts/demo.sh && ./scripts/test.sh     (LAZYMEM_IN_FRESH_ROOT=1)
#
# Their own scripts/deps.sh must install everything else. Exit status:
# test.sh's (or demo.sh's when it fails); its last line is test.sh's.
# scripts/test.sh runs this when CI=true; developers run it by hand
# (as root). `scripts/fresh-root.sh 'COMMAND'` runs COMMAND in the tree
# inside the root instead (e.g. 'scripts/deps.sh build test', to time the
# downloads alone).
#
# Environment:
#   LAZYMEM_FRESH_ROOT_DIR    where to build the root (default: a new
#                             directory under /var/tmp, removed at exit)
#   LAZYMEM_FRESH_ROOT_CACHE  .deb cache kept between runs (default
#                             /var/cache/lazymem/fresh-root; "none": no cache)
#   LAZYMEM_FRESH_ROOT_KEEP=1 keep the root after the run (it is unmounted)
#   LAZYMEM_FRESH_ROOT_MIRROR another Debian mirror URI (default: the
#                             machine's apt sources)
#
# The root is bind-mounted on itself (so that / is a mount point, as
# `ip netns exec` needs), /dev (recursively: /dev/kvm, /dev/shm, /dev/pts,
# /dev/hugepages), /proc and /sys are bind-mounted into it, /run is a fresh
# tmpfs (ip netns mounts there); every mount is undone at exit, failure or
# not (processes left inside are killed first).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
t0=$(date +%s)
say() { echo "fresh-root: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (chroot, mounts); run it with sudo"
./scripts/deps.sh fresh-root

# The mirror: the machine's own apt sources (deb822), else the one-line
# sources.list, else deb.debian.org.
sources=
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  if [ -s "$f" ] && grep -qE '^[^#]*(URIs:|deb )' "$f"; then sources=$f; break; fi
done
if [ -n "${LAZYMEM_FRESH_ROOT_MIRROR:-}" ]; then
  sources=$LAZYMEM_FRESH_ROOT_MIRROR   # a URI: mmdebstrap makes the line
elif [ -z "$sources" ]; then
  sources=http://deb.debian.org/debian
fi
if [ -f "$sources" ]; then
  mirror_desc=$(sed 's/#.*//' "$sources" | grep -m1 -oE '(https?|file)://[^ ]+' || echo "$sources")
else
  mirror_desc=$sources
fi

cache=${LAZYMEM_FRESH_ROOT_CACHE:-/var/cache/lazymem/fresh-root}
[ "$cache" = none ] && cache=
if [ -n "$cache" ]; then mkdir -p "$cache/archives/partial"; fi
cache_size() { [ -n "$cache" ] && du -sm "$cache/archives" | cut -f1 || echo 0; }
cache_mb0=$(cache_size)

root=${LAZYMEM_FRESH_ROOT_DIR:-}
made_root=0
if [ -z "$root" ]; then
  root=$(mktemp -d /var/tmp/lazymem-fresh-root.XXXXXX)
  made_root=1
fi
root=$(realpath "$root")
log=$(mktemp /var/tmp/lazymem-fresh-root.XXXXXX.log)

mounts=()   # mount points inside the root, in mount order
cleanup() {
  local rc=$? p pid i left
  trap - EXIT INT TERM
  # processes left running inside the root (a test's stray child) would
  # keep its mounts busy: they are ours, end them
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "$pid" 2>/dev/null
  done
  # whatever was mounted under the root (ours, and ip netns's under /run),
  # deepest first
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    mountpoint -q "${mounts[i]}" || continue
    umount -R "${mounts[i]}" 2>/dev/null || umount -R -l "${mounts[i]}" 2>/dev/null \
      || say "cannot unmount ${mounts[i]}"
  done
  left=$(awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts)
  if [ -n "$left" ]; then
    say "mounts left behind under $root: $left"; rc=1
  elif [ $made_root -eq 1 ] && [ "${LAZYMEM_FRESH_ROOT_KEEP:-0}" != 1 ]; then
    rm -rf --one-file-system -- "$root"
  fi
  [ $rc -ne 0 ] || rm -f "$log"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bind() {  # host path, path in the root, mount options...
  local from=$1 to=$root${2%/}; shift 2
  mkdir -p "$to"
  mount "$@" "$from" "$to"
  mounts+=("$to")
}

# 1. The minimal root: Essential packages and apt. .debs come from (and go
# back to) the cache.
say "building a minimal Debian 12 root in $root from $mirror_desc"
hooks=()
if [ -n "$cache" ]; then
  hooks=(--skip=essential/unlink
         --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\""
         --setup-hook="sync-in $cache/archives /var/cache/apt/archives"
         --customize-hook="sync-out /var/cache/apt/archives $cache/archives")
fi
t1=$(date +%s)
if ! mmdebstrap --mode=root --variant=apt --format=directory "${hooks[@]}" \
       bookworm "$root" "$sources" >"$log" 2>&1; then
  why=$(grep -m1 -E '^E: ' "$log" || grep -m1 -E 'Could not|Failed|rror' "$log" \
        || tail -n 1 "$log")
  echo "--- last 30 lines of $log:" >&2
  tail -n 30 "$log" >&2
  echo "---" >&2
  # the reason last, on one line: what CI shows
  say "cannot build the Debian 12 root from $mirror_desc: ${why}"
  exit 1
fi
t2=$(date +%s)
say "root built in $((t2 - t1)) s ($(du -sm --one-file-system "$root" | cut -f1) MiB)"

# 2. The tree: a clean clone of the committed HEAD, nothing else.
# A CI checkout may belong to another user than root: for this one clone
# of our own tree, git's ownership check is waived (GIT_CONFIG_GLOBAL).
gitcfg=$(mktemp)
printf '[safe]\n\tdirectory = *\n' >"$gitcfg"
GIT_CONFIG_GLOBAL=$gitcfg git clone -q --no-hardlinks "$src" "$root/src/lazymem" 2>>"$log" \
  || { rm -f "$gitcfg"; die "git clone of $src failed: $(tail -n 1 "$log")"; }
rm -f "$gitcfg"
say "tree: $(git -C "$root/src/lazymem" log -1 --format='%h %s' | cut -c1-70)"

# 3. What a booted machine has: / a mount point (`ip netns exec` makes /
# a slave mount: EINVAL on a plain directory), devices, proc, sys, a
# writable /run, name resolution for apt; the .deb cache where apt keeps
# its downloads.
bind "$root" / --bind
bind /dev /dev --rbind
mount --make-rslave "$root/dev"
bind proc /proc -t proc
bind /sys /sys --rbind
mount --make-rslave "$root/sys"
bind tmpfs /run -t tmpfs -o mode=0755,nosuid,nodev
if [ -n "$cache" ]; then bind "$cache/archives" /var/cache/apt/archives --bind; fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# 4. The README's two commands, as a new user runs them.
inside() {  # command line, run by bash in the tree inside the root
  chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 CI="${CI:-}" LAZYMEM_IN_FRESH_ROOT=1 \
    /bin/bash -c "cd /src/lazymem && $1"
}
t3=$(date +%s)
if [ $# -gt 0 ]; then
  say "inside the root: $*"
  set +e; inside "$*"; rc=$?; set -e
  say "exit $rc after $(( $(date +%s) - t3 )) s; total $(( $(date +%s) - t0 )) s;" \
      ".deb cache $cache_mb0 -> $(cache_size) MiB"
  exit $rc
fi
say "inside the root: ./scripts/demo.sh"
# without /dev/kvm the demo runs its job on plain threads and must pass
# all the same
if ! inside './scripts/demo.sh 2>&1' | tee "$log.demo"; then
  rm -f "$log.demo"; say "./scripts/demo.sh failed in the fresh root"; exit 1
fi
rm -f "$log.demo"
t4=$(date +%s)
say "demo.sh done in $((t4 - t3)) s; inside the root: ./scripts/test.sh"
cache_mb1=$(cache_size)
say "so far: $((t4 - t0)) s; .deb cache $cache_mb0 -> $cache_mb1 MiB${cache:+ ($cache)}"
# test.sh's summary must stay the last line: hold each line back by one,
# and print the times before the last
set +e
inside './scripts/test.sh 2>&1' | {
  have=0
  while IFS= read -r line; do
    [ $have -eq 1 ] && printf '%s\n' "$prev"
    prev=$line; have=1
  done
  say "test.sh done after $(( $(date +%s) - t4 )) s; total $(( $(date +%s) - t0 )) s;" \
      ".deb cache $cache_mb0 -> $(cache_size) MiB"
  [ $have -eq 1 ] && printf '%s\n' "$prev"
}
rc=${PIPESTATUS[0]}
set -e
exit $rc
