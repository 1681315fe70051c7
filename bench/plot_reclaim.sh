#!/usr/bin/env bash
# plot_reclaim.sh - RSS (region + store) and guest work rate over time for
# each backing and store, from `lazymem bench reclaim --timeline FILE`
# (CSV: backing,store,seconds,rss_bytes,writes_per_s); two panels.
#   lazymem bench reclaim --timeline r.csv && bench/plot_reclaim.sh r.csv docs/reclaim.svg
set -euo pipefail
in=$1 out=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
rows=$(tail -n +2 "$in" | cut -d, -f1,2 | awk '!seen[$0]++')
rss= rate=
for r in $rows; do
  f="$dir/${r/,/-}.dat"
  grep "^$r," "$in" | cut -d, -f3,4,5 | tr , ' ' > "$f"
  rss="$rss${rss:+, }\"$f\" using 1:(\$2/1048576) with lines lw 2 title \"${r/,/ }\""
  rate="$rate${rate:+, }\"$f\" using 1:(\$3/1e3) with lines lw 2 title \"${r/,/ }\""
done
gnuplot <<GP
set terminal $([ "${out##*.}" = png ] && echo "pngcairo size 900,720 font \"sans,11\"" || echo "svg size 900,720 font \"sans,12\"")
set output "$out"
set multiplot layout 2,1 title "bench reclaim (plain threads; phase change half-way)"
set key outside right
set grid
set xlabel "seconds"
set ylabel "RSS incl. store (MiB)"
set yrange [0:*]
plot $rss
set ylabel "guest work (k page writes/s)"
set yrange [0:*]
plot $rate
unset multiplot
GP
