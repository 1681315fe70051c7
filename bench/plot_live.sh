#!/usr/bin/env bash
# plot_live.sh - writer work rate over time during each contender's
# snapshot, from `lazymem bench live-snapshot --timeline FILE` (CSV:
# mode,seconds,writes_per_s; seconds from the start of the snapshot).
#   lazymem bench live-snapshot --timeline live.csv && bench/plot_live.sh live.csv docs/live-snapshot.svg
set -euo pipefail
in=$1 out=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
modes=$(tail -n +2 "$in" | cut -d, -f1 | awk '!seen[$0]++')
plot=
for m in $modes; do
  grep "^$m," "$in" | cut -d, -f2,3 | tr , ' ' > "$dir/$m.dat"
  plot="$plot${plot:+, }\"$dir/$m.dat\" using 1:(\$2/1e6) with lines lw 2 title \"$m\""
done
gnuplot <<GP
set terminal $([ "${out##*.}" = png ] && echo "pngcairo size 900,480 font \"sans,11\"" || echo "svg size 900,480 font \"sans,12\"")
set output "$out"
set title "writer work rate during the snapshot (plain threads)"
set xlabel "seconds since the snapshot began"
set ylabel "million page writes per second"
set key outside right
set grid
plot $plot
GP
