#!/usr/bin/env bash
# net_tls_cli.sh - TLS on the command line: each misuse of the options is
# a one-line error naming the option (on every command that takes them);
# plain TCP beyond loopback is refused without --insecure; page-fetch and
# page-server fill and verify a region over TLS with X.509 and with a PSK;
# a wrong PSK is refused with one line on both sides; `bench postcopy
# --tls` puts plain and TLS runs side by side in its JSON.
# Credentials are made here by tls_mkcerts.sh (certtool, psktool).
set -u
L=$1
LAZYMEM=$L
tmp=$(mktemp -d)
trap 'jobs -p | xargs -r kill 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/cli_lib.sh"
"$(dirname "$0")/tls_mkcerts.sh" "$tmp/c" >"$tmp/mk.out" 2>&1
case $? in
  0) ;;
  77) cat "$tmp/mk.out"; exit 77 ;;
  *) echo "FAIL: tls_mkcerts.sh: $(cat "$tmp/mk.out")"; exit 1 ;;
esac
c=$tmp/c
x509_dest=(--tls-cert "$c/dest.pem" --tls-key "$c/dest.key" --tls-ca "$c/ca.pem")
x509_src=(--tls-cert "$c/src.pem" --tls-key "$c/src.key" --tls-ca "$c/ca.pem")

for cmd in "page-server --to 127.0.0.1:1 --pattern 1M" "page-fetch --listen 127.0.0.1:0 --size 1M" \
           "migrate send --to 127.0.0.1:1" "migrate recv --listen 127.0.0.1:0" "bench postcopy" "bench migrate"; do
  # shellcheck disable=SC2086
  check "$cmd: cert without key" expect_error 2 "--tls-cert: needs --tls-key" $cmd --tls-cert "$c/src.pem"
  # shellcheck disable=SC2086
  check "$cmd: PSK and cert" expect_error 2 "--psk-file: give either" $cmd --psk-file "$c/psk.txt" "${x509_src[@]}"
  # shellcheck disable=SC2086
  check "$cmd: unreadable file" expect_error 2 "--tls-ca $c/nope.pem: No such file" $cmd --tls-cert "$c/src.pem" --tls-key "$c/src.key" --tls-ca "$c/nope.pem"
  # shellcheck disable=SC2086
  check "$cmd: bad PSK file" expect_error 2 "--psk-file $c/ca.pem: expected IDENTITY:HEXKEY" $cmd --psk-file "$c/ca.pem"
done
check "key not matching its certificate" expect_error 2 "--tls-cert $c/src.pem / --tls-key $c/dest.key" \
  page-server --to 127.0.0.1:1 --pattern 1M --tls-cert "$c/src.pem" --tls-key "$c/dest.key" --tls-ca "$c/ca.pem"
check "plain listen beyond loopback refused" expect_error 1 "give --tls-cert/--tls-key/--tls-ca or --psk-file, or --insecure" \
  page-fetch --listen 0.0.0.0:0 --size 1M
check "plain dial beyond loopback refused" expect_error 1 "refusing plain TCP to 192.0.2.1:7 (not loopback)" \
  page-server --to 192.0.2.1:7 --pattern 1M

port=$((21000 + $$ % 20000))
fill() {  # name, fetch options, server options
  local name=$1 p=$((port++))
  read -ra fo <<<"$2"; read -ra so <<<"$3"
  "$L" page-fetch --listen 127.0.0.1:$p --size 16M --verify --json --wait 10000 "${fo[@]}" \
    >"$tmp/$name.json" 2>"$tmp/$name.ferr" &
  local f=$!
  sleep 0.3
  "$L" page-server --to 127.0.0.1:$p --pattern 16M "${so[@]}" >"$tmp/$name.sout" 2>&1
  echo $? >"$tmp/$name.src"
  wait $f
  echo $? >"$tmp/$name.rc"
}
fill x509 "${x509_dest[*]} --tls-peer-name src.test" "${x509_src[*]}"
check "X.509: filled over TLS and verified" bash -c "[ \$(cat '$tmp/x509.rc') = 0 ] && grep -q '\"verified\":true' '$tmp/x509.json' && grep -q '\"tls\":true' '$tmp/x509.json'"
fill psk "--psk-file $c/psk.txt" "--psk-file $c/psk.txt"
check "PSK: filled over TLS and verified" bash -c "[ \$(cat '$tmp/psk.rc') = 0 ] && grep -q '\"verified\":true' '$tmp/psk.json'"

p=$((port++))
"$L" page-fetch --listen 127.0.0.1:$p --size 4M --wait 2500 --psk-file "$c/psk.txt" >/dev/null 2>"$tmp/wrong.ferr" &
f=$!
sleep 0.3
"$L" page-server --to 127.0.0.1:$p --pattern 4M --psk-file "$c/psk-wrong.txt" >/dev/null 2>"$tmp/wrong.serr"
src=$?
wait $f
check "wrong PSK: the source fails with one line" bash -c "[ $src = 1 ] && [ \$(grep -c . '$tmp/wrong.serr') = 1 ] && grep -q 'TLS: the peer refused us' '$tmp/wrong.serr'"
check "wrong PSK: the destination logs who and why" grep -q "refused 127.0.0.1:[0-9]*: TLS handshake" "$tmp/wrong.ferr"

"$L" bench postcopy --tls --mem 16M --demand-mem 1M --rtt 0,200us --json >"$tmp/b.json" 2>"$tmp/b.err"
check "bench postcopy --tls: plain and TLS side by side, verified" python3 - "$tmp/b.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["config"]["tls"] == "psk", d["config"]
net = [r for r in d["results"] if r["mode"] != "local"]
assert {r["tls"] for r in net} == {True, False}, net
for r in net:
    assert r["verified"] is True, r
    twin = [t for t in net if t["mode"] == r["mode"] and t["rtt_us"] == r["rtt_us"]
            and t["via"] == r["via"] and t["tls"] != r["tls"]]
    assert len(twin) == 1, r
assert any(g["goal"].startswith("TLS demand at 200 us") for g in d["goals"]), d["goals"]
assert any(g["goal"].startswith("TLS push-only at 0 us") for g in d["goals"]), d["goals"]
PY
exit $((fails > 0))
