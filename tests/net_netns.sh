#!/usr/bin/env bash
# net_netns.sh - post-copy between two "hosts": network namespaces joined by
# a veth pair. The destination (page-fetch) listens in one, the source
# (page-server) dials from the other. Every connection is TLS 1.3 but in
# case 1b: the credentials (a test CA, certificates naming the
# destination's address, a PSK) are made here by tls_mkcerts.sh.
#
#   1. a 64 MiB image filled by demand + push over TLS (X.509, both
#      sides checked, the destination's name = the address dialed), every
#      page verified;
#  1b. the same in plain TCP with --insecure on both sides (without it
#      both refuse an address that is not loopback);
#   2. recovery over a real cut: the veth link goes down for 1.5 s in the
#      middle of a demand-only fill (1 ms RTT added by our proxy so the
#      fill takes long enough); faulting threads are held (--hold), the
#      source dials again (--resume, a new TLS handshake with the PSK),
#      and every page is still verified;
#   3. a running VM migrated across them (`migrate recv` / `migrate send`,
#      hybrid), its memory checked word by word by the guest on the
#      destination (needs /dev/kvm; said and skipped without it).
#
# Skips (exit 77) with a one-line reason without root or `ip netns`.
set -u
L=$1
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
command -v ss >/dev/null || { echo "SKIP: no ss(8)"; exit 77; }

id=$$
a=lmsrc$id; b=lmdst$id; va=lmva$id; vb=lmvb$id
net=10.$((id % 200 + 20)).$((id / 200 % 250)).
tmp=$(mktemp -d)
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null
  ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$a" 2>"$tmp/err" || { echo "SKIP: ip netns add failed: $(cat "$tmp/err")"; exit 77; }
ip netns add "$b"
ip link add "$va" type veth peer name "$vb" || { echo "SKIP: no veth: cannot create a pair"; exit 77; }
ip link set "$va" netns "$a"; ip link set "$vb" netns "$b"
ip -n "$a" addr add "${net}1/24" dev "$va"; ip -n "$a" link set "$va" up; ip -n "$a" link set lo up
ip -n "$b" addr add "${net}2/24" dev "$vb"; ip -n "$b" link set "$vb" up; ip -n "$b" link set lo up

"$(dirname "$0")/tls_mkcerts.sh" "$tmp/c" "${net}2" >"$tmp/mk.out" 2>&1 ||
  { echo "SKIP: $(cat "$tmp/mk.out")"; exit 77; }
c=$tmp/c
x509_dest=(--tls-cert "$c/dest.pem" --tls-key "$c/dest.key" --tls-ca "$c/ca.pem" --tls-peer-name src.test)
x509_src=(--tls-cert "$c/src.pem" --tls-key "$c/src.key" --tls-ca "$c/ca.pem")
psk=(--psk-file "$c/psk.txt")

fails=0
wait_listen() {  # netns, port
  for _ in $(seq 100); do
    ip netns exec "$1" ss -ltn | grep -q ":$2 " && return 0
    sleep 0.05
  done
  echo "  nothing listens on :$2 in $1"; return 1
}

# 1. demand + push across the veth, over TLS (X.509).
ip netns exec "$b" "$L" page-fetch --listen "${net}2:7070" --size 64M \
  --threads 2 --verify --json "${x509_dest[@]}" >"$tmp/fetch1.json" 2>"$tmp/fetch1.err" &
fetch=$!
wait_listen "$b" 7070 &&
  ip netns exec "$a" "$L" page-server --to "${net}2:7070" --pattern 64M \
    "${x509_src[@]}" >"$tmp/server1.out" 2>&1
wait $fetch; rc=$?
if [ $rc -eq 0 ] && grep -q '"verified":true' "$tmp/fetch1.json" &&
   grep -q '"tls":true' "$tmp/fetch1.json"; then
  echo "ok: 64 MiB across namespaces over TLS (X.509), demand + push, verified"
else
  echo "FAIL: fill across namespaces over TLS (exit $rc)"; cat "$tmp"/fetch1.* "$tmp/server1.out"
  fails=$((fails + 1))
fi

# 1b. plain TCP across the veth: refused without --insecure, fine with it.
out=$(ip netns exec "$b" "$L" page-fetch --listen "${net}2:7074" --size 4M 2>&1)
if [ $? -eq 1 ] && grep -q -- "--insecure" <<<"$out"; then
  echo "ok: plain TCP on ${net}2 refused without --insecure"
else
  echo "FAIL: plain listen beyond loopback was not refused: $out"; fails=$((fails + 1))
fi
ip netns exec "$b" "$L" page-fetch --listen "${net}2:7075" --size 16M \
  --threads 2 --verify --json --insecure >"$tmp/fetch1b.json" 2>"$tmp/fetch1b.err" &
fetch=$!
wait_listen "$b" 7075 &&
  ip netns exec "$a" "$L" page-server --to "${net}2:7075" --pattern 16M \
    --insecure >"$tmp/server1b.out" 2>&1
wait $fetch; rc=$?
if [ $rc -eq 0 ] && grep -q '"verified":true' "$tmp/fetch1b.json" &&
   grep -q '"tls":false' "$tmp/fetch1b.json"; then
  echo "ok: 16 MiB across namespaces in plain TCP with --insecure, verified"
else
  echo "FAIL: --insecure fill across namespaces (exit $rc)"; cat "$tmp"/fetch1b.* "$tmp/server1b.out"
  fails=$((fails + 1))
fi

# 2. the link goes down mid-fill; held, resumed, verified.
ip netns exec "$b" "$L" page-fetch --listen "${net}2:7071" --size 16M \
  --threads 2 --verify --json --hold --timeout 300 "${psk[@]}" \
  >"$tmp/fetch2.json" 2>"$tmp/fetch2.err" &
fetch=$!
wait_listen "$b" 7071
ip netns exec "$a" "$L" proxy --listen 127.0.0.1:7072 \
  --connect "${net}2:7071" --rtt 1ms 2>"$tmp/proxy.err" &
wait_listen "$a" 7072
ip netns exec "$a" "$L" page-server --to 127.0.0.1:7072 --pattern 16M \
  --no-push --resume --resume-timeout 20000 "${psk[@]}" >"$tmp/server2.out" 2>&1 &
server=$!
# Cut only once the session is up (control + 2 urgent connections in):
# a slow start (a sanitizer build) would otherwise put the first
# handshake inside the cut, which is not what this case tests.
for _ in $(seq 200); do
  [ "$(ip netns exec "$b" ss -Htn state established '( sport = :7071 )' | wc -l)" -ge 3 ] && break
  sleep 0.05
done
sleep 0.3
ip -n "$a" link set "$va" down
sleep 1.5
ip -n "$a" link set "$va" up
wait $fetch; rc=$?
wait $server; src=$?
if [ $rc -eq 0 ] && [ $src -eq 0 ] && grep -q '"verified":true' "$tmp/fetch2.json" &&
   grep -q '"link_downs":[1-9]' "$tmp/fetch2.json" &&
   ! grep -q 'resumes 0' "$tmp/server2.out"; then
  echo "ok: link down 1.5 s mid-fill over TLS (PSK): held, resumed with a new handshake, verified ($(grep -o '"sessions":[0-9]*' "$tmp/fetch2.json"))"
else
  echo "FAIL: cut and resume across namespaces (fetch $rc, source $src)"
  cat "$tmp"/fetch2.* "$tmp/server2.out"
  fails=$((fails + 1))
fi
# 3. a running VM, hybrid, from one namespace to the other.
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  ip netns exec "$b" "$L" migrate recv --listen "${net}2:7073" --mem 32M \
    --json "${x509_dest[@]}" >"$tmp/recv3.json" 2>"$tmp/recv3.err" &
  recv=$!
  wait_listen "$b" 7073 &&
    ip netns exec "$a" "$L" migrate send --to "${net}2:7073" --mem 32M \
      --mode hybrid "${x509_src[@]}" >"$tmp/send3.out" 2>&1
  src=$?
  wait $recv; rc=$?
  if [ $rc -eq 0 ] && [ $src -eq 0 ] && grep -Eq '"verified": ?true' "$tmp/recv3.json"; then
    echo "ok: a running VM migrated across namespaces (hybrid), verified by its guest"
  else
    echo "FAIL: VM migration across namespaces (recv $rc, send $src)"
    cat "$tmp"/recv3.* "$tmp/send3.out"
    fails=$((fails + 1))
  fi
else
  echo "SKIP: /dev/kvm unusable here: the VM migration across namespaces was not tried"
fi
exit $((fails > 0))
