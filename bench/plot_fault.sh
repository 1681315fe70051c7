#!/usr/bin/env bash
# plot_fault.sh - bar chart of `lazymem bench fault --json` output:
# pages/s per contender, one group per workload and faulting-thread count.
#   lazymem bench fault --json > fault.json && bench/plot_fault.sh fault.json docs/fault.svg
set -euo pipefail
in=$1 out=$2
dat=$(mktemp)
trap 'rm -f "$dat"' EXIT
python3 - "$in" > "$dat" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = {}
names = []
for r in d["results"]:
    name = r["delivery"]
    if r["delivery"] == "handler":
        name = f'handler x{r["handler_threads"]} {r["placement"]}'
    # fault_around is 0 when off (older files: 1).
    if r.get("fault_around", 0) > 1:
        name += f' +around{r["fault_around"]}'
    if name not in names:
        names.append(name)
    key = (r.get("workload", "sequential"), r["threads"])
    rows.setdefault(key, {})[name] = r["pages_per_sec"] / 1000
print("threads " + " ".join(f'"{n}"' for n in names))
for wl, t in sorted(rows, key=lambda k: (k[0] != "sequential", k[1])):
    print(f'"{wl[:3]} {t} thread{"s" if t > 1 else ""}" ' +
          " ".join(f"{rows[(wl, t)].get(n, 0):.1f}" for n in names))
PY
cfg=$(python3 - "$in" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["config"]
print(f'{c["size"] >> 20} MiB, {c["page_size"] >> 10} KiB pages, '
      f'{c["backing"]}/{c["install"]}, {c["cpus"]} CPUs, median of {c["repeat"]}')
PY
)
ncol=$(head -1 "$dat" | python3 -c 'import shlex,sys; print(len(shlex.split(sys.stdin.read())))')
gnuplot <<GP
set terminal $([ "${out##*.}" = png ] && echo "pngcairo size 900,480 font \"sans,11\"" || echo "svg size 900,480 font \"sans,12\"")
set output "$out"
set title "bench fault: first touches resolved\n($cfg)"
set ylabel "thousand pages/s (higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top
set grid ytics
set yrange [0:*]
plot for [i=2:$ncol] "$dat" using i:xtic(1) title columnheader(i)
GP
echo "wrote $out"
