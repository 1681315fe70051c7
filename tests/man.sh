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

# Every option a command's --help defines (an option line's first
# option, and the usage line's) is in that command's section as *--opt*.
missing=
while read -r c; do
  sect=$(awk -v h="## $c" '$0 == h {on=1; next} on && /^#/ {exit} on' "$man1")
  help=$("$LAZYMEM" $c --help 2>&1)
  opts=$( { grep -oE '^ +(-[a-zA-Z], +)?--[a-z0-9-]+' <<<"$help"
            grep '^usage:' <<<"$help"; } | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u)
  for o in $opts; do
    [ "$o" = --help ] || grep -qF -- "*$o*" <<<"$sect" || missing="$missing $c:$o"
  done
  # and the other way: an option the page describes (a line of its own,
  # "*-x*, *--opt*" or "*--opt*") that --help does not know is stale.
  for o in $(grep -oE '^\*(-[a-zA-Z]\*, \*)?--[a-z0-9-]+\*' <<<"$sect" | grep -oE -- '--[a-z0-9-]+'); do
    grep -qxF -- "$o" <<<"$opts" || stale="${stale:-} $c:$o"
  done
done <<<"$cmds"
check "every option of every command's --help is in its lazymem(1) section" \
  bash -c "[ -z '$missing' ] || { echo '  missing:$missing'; exit 1; }"
check "lazymem(1) describes no option --help does not list" \
  bash -c "[ -z '${stale:-}' ] || { echo '  stale:${stale:-}'; exit 1; }"

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
