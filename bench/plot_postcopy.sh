#!/usr/bin/env bash
# plot_postcopy.sh - `lazymem bench postcopy --json` as two panels: demand-
# fault latency (p50 and p99) against the injected RTT, with the issue's
# goal lines, and fill rate per mode against the RTT.
#   lazymem bench postcopy --json > pc.json && bench/plot_postcopy.sh pc.json docs/postcopy.svg
set -euo pipefail
in=$1 out=$2
lat=$(mktemp) rate=$(mktemp)
trap 'rm -f "$lat" "$rate"' EXIT
python3 - "$in" "$lat" "$rate" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
res = [r for r in d["results"] if r["mode"] != "local" and r["via"] != "direct" or r["rtt_us"] == 0]
with open(sys.argv[2], "w") as f:
    f.write("rtt demand_p50 demand_p99 push_p50 push_p99\n")
    rtts = sorted({r["rtt_us"] for r in d["results"] if r["mode"] != "local"})
    for t in rtts:
        def get(mode, key):
            rs = [r for r in d["results"] if r["mode"] == mode and r["rtt_us"] == t and r["via"] == ("direct" if t == 0 else "proxy")]
            return rs[0][key] if rs else float("nan")
        f.write(f'{t} {get("demand","fault_p50_us")} {get("demand","fault_p99_us")} {get("push","fault_p50_us")} {get("push","fault_p99_us")}\n')
with open(sys.argv[3], "w") as f:
    local = [r for r in d["results"] if r["mode"] == "local"][0]["mib_per_s"]
    f.write("rtt local demand push push-only\n")
    for t in rtts:
        def get(mode):
            rs = [r for r in d["results"] if r["mode"] == mode and r["rtt_us"] == t and r["via"] == ("direct" if t == 0 else "proxy")]
            return rs[0]["mib_per_s"] if rs else float("nan")
        f.write(f'{t} {local} {get("demand")} {get("push")} {get("push-only")}\n')
PY
cfg=$(python3 - "$in" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["config"]
print(f'{c["mem"] >> 20} MiB, {c["threads"]} faulting threads, {c["cpus"]} CPUs, load {c["loadavg_start"]:.1f}')
PY
)
gnuplot <<GP
set terminal $([ "${out##*.}" = png ] && echo "pngcairo size 1000,420 font \"sans,10\"" || echo "svg size 1000,420 font \"sans,11\"")
set output "$out"
set multiplot layout 1,2 title "lazymem bench postcopy ($cfg)"
set xlabel "injected round-trip time (us)"
set grid
set key top left
set ylabel "demand-fault latency (us)"
set logscale y
plot "$lat" using 1:2 with linespoints title "demand p50", \
     "$lat" using 1:3 with linespoints title "demand p99", \
     "$lat" using 1:4 with linespoints title "push p50", \
     "$lat" using 1:5 with linespoints title "push p99", \
     "$lat" using 1:(\$1+100) with lines dt 2 title "goal p50: RTT+100", \
     "$lat" using 1:(3*\$1+1000) with lines dt 3 title "goal p99: 3 RTT+1 ms"
unset logscale y
set ylabel "MiB/s filled (higher is better)"
set key top right
plot "$rate" using 1:2 with lines dt 2 title "local (limit)", \
     "$rate" using 1:3 with linespoints title "demand only", \
     "$rate" using 1:4 with linespoints title "demand + push", \
     "$rate" using 1:5 with linespoints title "push only"
unset multiplot
GP
echo "wrote $out"
