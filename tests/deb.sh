#!/usr/bin/env bash
# deb.sh - the Debian packages work as a user would use them: built with
# scripts/deb.sh (dpkg-buildpackage in a scratch copy of the tree) into a
# temporary directory, unpacked with `dpkg -x` into a scratch root (never
# installed on this machine), then:
#   - the three packages are there and the build printed no warning;
#   - liblazymem0's library has SONAME liblazymem.so.0 and exports exactly
#     liblazymem.map's calls, each at version LAZYMEM_0.1;
#   - liblazymem-dev's example builds with `pkg-config --cflags --libs
#     lazymem` against the root (shared, and static from the .a) and runs;
#   - lazymem's command runs (--help, --version), its man page is there,
#     and the fc-handler unit's ExecStart, run by systemd's own launcher
#     (systemd-socket-activate) with a configuration file, answers on the
#     socket it was passed.
# Skips with a reason when dpkg-buildpackage, debhelper or a Build-Depends
# of debian/control is missing. With a second argument, the packages (and
# build log) already in that directory are checked instead of building.
set -u
src=$1 prebuilt=${2:-}
. "$(dirname "$0")/cli_lib.sh"

for tool in dpkg-buildpackage dh dpkg-checkbuilddeps; do
  command -v "$tool" >/dev/null ||
    { echo "skip: $tool not installed (Debian packages dpkg-dev, debhelper)"; exit 77; }
done
if ! unmet=$(cd "$src" && dpkg-checkbuilddeps 2>&1); then
  echo "skip: ${unmet#dpkg-checkbuilddeps: error: }"
  exit 77
fi

tmp=$(mktemp -d /tmp/lazymem-debtest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$prebuilt" ]; then
  ln -s "$(realpath "$prebuilt")" "$tmp/debs"
else
  "$src/scripts/deb.sh" "$tmp/debs" || { echo "FAIL: scripts/deb.sh"; exit 1; }
fi
log=$(ls "$tmp"/debs/*_build.log)
ver=$(cd "$src" && dpkg-parsechangelog -SVersion)
for p in liblazymem0 liblazymem-dev lazymem; do
  check "package $p built" test -f "$tmp/debs/${p}_${ver}_amd64.deb"
done
check "the package build printed no warning" \
  bash -c "! grep -i 'warning:' '$log'"
# dpkg-buildpackage in the tree itself would leave debian/tmp,
# debian/files, obj-<triplet>/ and ../lazymem_* behind.
left=$(cd "$src" && ls -d debian/tmp debian/files debian/.debhelper obj-* \
  ../lazymem_"$ver"* ../liblazymem*_"$ver"* 2>/dev/null)
check "the tree was left clean" bash -c "[ -z '$left' ] || { echo '  left: $left'; exit 1; }"

root=$tmp/root
for p in liblazymem0 liblazymem-dev lazymem; do
  dpkg -x "$tmp/debs/${p}_${ver}_amd64.deb" "$root"
done
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=$root/usr/lib/$ma
check "installed nothing on this machine" \
  bash -c "! dpkg-query -W -f '\${Status}' liblazymem0 2>/dev/null | grep -q installed || echo '  (liblazymem0 was installed before this test)'"

# The library: SONAME from meson's version, the symbol map applied.
so=$(ls "$libdir"/liblazymem.so.*.*.*)
check "SONAME is liblazymem.so.0" \
  bash -c "objdump -p '$so' | grep -qE 'SONAME +liblazymem.so.0\$'"
check "liblazymem.so.0 -> $(basename "$so")" test "$(readlink "$libdir/liblazymem.so.0")" = "$(basename "$so")"
exported=$(objdump -T "$so" | awk '$2 == "g" && $4 == ".text" {print $7 "@" $6}' | sort)
want=$(sed -n 's/^[[:space:]]*\(lm_[a-z0-9_]*\);$/\1@LAZYMEM_0.1/p' "$src/liblazymem.map" | sort)
check "exports exactly liblazymem.map's $(wc -l <<<"$want") calls at LAZYMEM_0.1" \
  bash -c "diff <(echo '$exported') <(echo '$want')"

# The development package: pkg-config against the root, shared and static.
export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
ex=$root/usr/share/doc/liblazymem-dev/examples/lazy_copy.c
check "the example is in liblazymem-dev" test -f "$ex"
check "pkg-config finds lazymem $ver" test "$(pkg-config --modversion lazymem)" = "$ver"
cflags=$(pkg-config --cflags lazymem) libs=$(pkg-config --libs lazymem)
check "pkg-config points into the root" bash -c "[[ '$cflags $libs' == *'$root'* ]]"
check "the example builds: cc \$(pkg-config --cflags --libs lazymem)" \
  cc -std=gnu11 -Wall -Wextra -Werror "$ex" $cflags $libs -o "$tmp/lazy_copy"
check "it links the packaged library" bash -c \
  "LD_LIBRARY_PATH='$libdir' ldd '$tmp/lazy_copy' | grep -q 'liblazymem.so.0 => $libdir/'"
check "the example builds against liblazymem.a (pkg-config --static)" \
  cc -std=gnu11 -Wall -Werror "$ex" $cflags "$libdir/liblazymem.a" \
  $(pkg-config --static --libs lazymem | sed 's/-llazymem//') -o "$tmp/lazy_copy_static"
head -c 1048576 /dev/zero | tr '\0' '\001' > "$tmp/img"   # 1 MiB of 1s,
truncate -s 8M "$tmp/img"                                  # then a hole
out=$(LD_LIBRARY_PATH=$libdir "$tmp/lazy_copy" "$tmp/img" 2>&1)
check "the example runs on the packaged library" \
  grep -q "^checksum 16; 128 of 2048 pages fetched" <<<"$out"
out=$("$tmp/lazy_copy_static" "$tmp/img" 2>&1)
check "the static example runs" grep -q "^checksum 16; 128 of 2048" <<<"$out"
check "liblazymem(3) is in liblazymem-dev" test -f "$root/usr/share/man/man3/liblazymem.3.gz"

# The command package.
lm=$root/usr/bin/lazymem
check "lazymem --help runs and lists fc-handler" bash -c "'$lm' --help | grep -q '^  fc-handler '"
check "lazymem --version is $ver" bash -c "'$lm' --version | grep -qx 'lazymem $ver'"
check "lazymem(1) is in lazymem" bash -c "zcat '$root/usr/share/man/man1/lazymem.1.gz' | grep -q '^\.SH \"\?FC-HANDLER UNDER SYSTEMD'"
unit=$root/lib/systemd/system/lazymem-fc-handler@.service
check "the fc-handler units are in lazymem" \
  test -f "$unit" -a -f "$root/lib/systemd/system/lazymem-fc-handler@.socket"
check "the service runs /usr/bin/lazymem --socket-activated" \
  grep -q '^ExecStart=/usr/bin/lazymem fc-handler --socket-activated ' "$unit"
check "the example configuration is in lazymem" \
  test -f "$root/usr/share/doc/lazymem/examples/fc-handler.conf.example"

if command -v systemd-analyze >/dev/null; then
  # verify needs ExecStart's binary: point it into the root.
  mkdir "$tmp/units"
  sed "s#/usr/bin/lazymem#$lm#" "$unit" > "$tmp/units/lazymem-fc-handler@.service"
  cp "$root/lib/systemd/system/lazymem-fc-handler@.socket" "$tmp/units/"
  ln -s lazymem-fc-handler@.service "$tmp/units/lazymem-fc-handler@t.service"
  ln -s lazymem-fc-handler@.socket "$tmp/units/lazymem-fc-handler@t.socket"
  check "systemd-analyze verify accepts the units" bash -c "cd '$tmp/units' &&
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
      lazymem-fc-handler@t.socket lazymem-fc-handler@t.service"
fi

if command -v systemd-socket-activate >/dev/null; then
  # The unit's ExecStart with a configuration file's variables, under
  # systemd's launcher: it binds the socket and passes it as fd 3.
  head -c 1M /dev/zero > "$tmp/mem"
  # The shipped example, filled in; its variables expanded as systemd
  # does (${MEM_FILE} one word, $FC_HANDLER_OPTS split at spaces).
  sed -e "s#^MEM_FILE=.*#MEM_FILE=$tmp/mem#" \
      -e "s#^FC_HANDLER_OPTS=.*#FC_HANDLER_OPTS=--json --prefetch none#" \
      "$root/usr/share/doc/lazymem/examples/fc-handler.conf.example" > "$tmp/conf"
  mem_file=$(sed -n 's/^MEM_FILE=//p' "$tmp/conf")
  opts=$(sed -n 's/^FC_HANDLER_OPTS=//p' "$tmp/conf")
  cmd=$(sed -n 's/^ExecStart=//p' "$unit")
  cmd=${cmd//'${MEM_FILE}'/$mem_file}
  cmd=${cmd//'$FC_HANDLER_OPTS'/$opts}
  cmd=${cmd/\/usr\/bin\/lazymem/$lm}
  echo "running: $cmd"
  systemd-socket-activate -l "$tmp/fc.sock" $cmd >"$tmp/fc.out" 2>"$tmp/fc.err" &
  act=$!
  for _ in $(seq 100); do [ -S "$tmp/fc.sock" ] && break; sleep 0.05; done
  reply=$(python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"[]")
s.settimeout(10)
print(s.recv(200).decode())' "$tmp/fc.sock" 2>&1)
  check "the unit's command, socket-activated, answers on the socket" \
    grep -q "lazymem fc-handler: refused: 0 regions" <<<"$reply"
  check "it says the socket came from systemd" \
    grep -q "listening on $tmp/fc.sock (socket from systemd)" "$tmp/fc.err"
  kill "$act" 2>/dev/null; wait "$act"
  check "it stops on SIGTERM with status 0" test $? -eq 0
fi
[ $fails -eq 0 ] || { echo "--- fc-handler log:"; cat "$tmp/fc.err" 2>/dev/null; }
exit $((fails > 0))
