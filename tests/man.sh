#!/usr/bin/env bash
# man.sh - the man pages cover what they document: every command and
# subcommand `lazymem --help` lists has a section (## NAME) in lazymem(1),
# and every function the public headers declare has one naming it in
# liblazymem(3); every symbol liblazymem.map exports is such a function.
# With scdoc present, both pages also convert without error.
set -u
LAZYMEM=$1 src=$2
. "$(dirname "$0")/cli_lib.sh"
man1=$src/man/lazymem.1.scd man3=$src/man/liblazymem.3.scd

# The command table: "  NAME (padded to 22)  summary".
cmds=$("$LAZYMEM" --help | sed -n 's/^  \(.\{22\}\) .*/\1/p' | sed 's/ *$//')
check "--help lists commands" test "$(wc -l <<<"$cmds")" -ge 10
missing=
while read -r c; do
  grep -qxF "## $c" "$man1" || missing="$missing '$c'"
done <<<"$cmds"
check "every command has a section in lazymem(1)" \
  bash -c "[ -z '$missing' ] || { echo '  no section for:$missing'; exit 1; }"

# Public functions: a line of a header that starts a declaration (no
# indent, not a comment or typedef) with "lm_name(".
funcs=$(grep -hE '^[a-z][^(]*[ *]lm_[a-z0-9_]+\(' "$src"/include/lazymem/*.h \
  | grep -v '^typedef' | sed -E 's/^[^(]*[ *](lm_[a-z0-9_]+)\(.*/\1/' | sort -u)
exported=$(sed -n 's/^[[:space:]]*\(lm_[a-z0-9_]*\);$/\1/p' "$src/liblazymem.map" | sort -u)
notdecl=$(comm -13 <(echo "$funcs") <(echo "$exported") | tr '\n' ' ')
check "every exported symbol is declared in include/lazymem" \
  bash -c "[ -z '$notdecl' ] || { echo '  not in a header: $notdecl'; exit 1; }"
missing=
for f in $funcs; do
  grep -E '^## ' "$man3" | grep -qE "(^## |[ ,])$f\(\)" || missing="$missing $f"
done
check "every public function ($(wc -w <<<"$funcs")) has a section in liblazymem(3)" \
  bash -c "[ -z '$missing' ] || { echo '  undocumented:$missing'; exit 1; }"

if command -v scdoc >/dev/null; then
  check "scdoc converts lazymem(1)" bash -c "scdoc < '$man1' > /dev/null"
  check "scdoc converts liblazymem(3)" bash -c "scdoc < '$man3' > /dev/null"
else
  echo "skip: scdoc not installed, the pages' syntax is not checked"
fi
exit $((fails > 0))
