#!/usr/bin/env bash
# tls_mkcerts.sh DIR [IP...] - the TLS tests' credentials, made at test
# time with certtool and psktool (gnutls-bin), never checked in:
#
#   ca.pem                 the test CA both sides trust
#   dest.pem dest.key      the listener: names localhost, dest.test,
#                          127.0.0.1 and every IP given
#   src.pem src.key        the dialer (CN src.test)
#   other-ca.pem           an unrelated CA; rogue.pem/.key signed by it
#   expired.pem/.key       signed by the test CA, expired in 2020
#   psk.txt psk-wrong.txt  one identity, two different keys
#
# Exit 77 with a one-line reason when certtool or psktool is missing.
set -eu
dir=$1; shift
command -v certtool >/dev/null || { echo "SKIP: no certtool (scripts/deps.sh test installs gnutls-bin)"; exit 77; }
command -v psktool >/dev/null || { echo "SKIP: no psktool (scripts/deps.sh test installs gnutls-bin)"; exit 77; }
mkdir -p "$dir"; cd "$dir"
ct() { certtool "$@" >/dev/null 2>&1; }
key() { ct --generate-privkey --key-type=ecdsa --outfile "$1"; }

ca() {  # name cn
  key "$1.key"
  printf 'cn = "%s"\nca\ncert_signing_key\nexpiration_days = 30\n' "$2" >"$1.tmpl"
  ct --generate-self-signed --load-privkey "$1.key" --template "$1.tmpl" --outfile "$1.pem"
}
leaf() {  # name ca cn extra-template-lines
  key "$1.key"
  printf 'cn = "%s"\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\n%b' "$3" "$4" >"$1.tmpl"
  ct --generate-certificate --load-privkey "$1.key" --load-ca-certificate "$2.pem" \
     --load-ca-privkey "$2.key" --template "$1.tmpl" --outfile "$1.pem"
}
ips=""
for ip in 127.0.0.1 "$@"; do ips="${ips}ip_address = \"$ip\"\n"; done
ca ca "lazymem test CA"
ca other-ca "an unrelated CA"
leaf dest ca dest.test "dns_name = \"localhost\"\ndns_name = \"dest.test\"\n${ips}expiration_days = 30\n"
leaf src ca src.test "dns_name = \"src.test\"\nexpiration_days = 30\n"
leaf rogue other-ca dest.test "dns_name = \"localhost\"\ndns_name = \"dest.test\"\ndns_name = \"src.test\"\n${ips}expiration_days = 30\n"
leaf expired ca src.test "dns_name = \"localhost\"\ndns_name = \"dest.test\"\ndns_name = \"src.test\"\n${ips}activation_date = \"2019-01-01 00:00:00 UTC\"\nexpiration_date = \"2020-01-01 00:00:00 UTC\"\n"
psktool -u lazymem -p psk.txt >/dev/null 2>&1
psktool -u lazymem -p psk-wrong.txt >/dev/null 2>&1
for f in ca.pem dest.pem src.pem rogue.pem expired.pem psk.txt psk-wrong.txt; do
  [ -s "$f" ] || { echo "tls_mkcerts: $f was not made"; exit 1; }
done
