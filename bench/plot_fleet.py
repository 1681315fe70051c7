#!/usr/bin/env python3
# plot_fleet.py - seconds to workload done per mode (bars, one cluster per
# RTT) and MiB fetched from the store (labels), from the JSON of
# `lazymem bench fleet --json`, drawn with gnuplot.
#
# usage: bench/plot_fleet.py RESULTS.json OUTPUT.png|OUTPUT.svg [TITLE]
import json
import os
import subprocess
import sys
import tempfile

if len(sys.argv) < 3:
    sys.exit('usage: plot_fleet.py RESULTS.json OUTPUT.png|svg [TITLE]')
src, out = sys.argv[1], sys.argv[2]
doc = json.load(open(src))
if doc.get('benchmark') != 'fleet':
    sys.exit('%s: not the output of lazymem bench fleet' % src)
cfg = doc['config']
title = sys.argv[3] if len(sys.argv) > 3 else (
    'lazymem bench fleet: %d MiB per VM, %d VMs in the cache modes, 10%% working set, dedup %.1fx' % (
        cfg['mem'] >> 20, cfg['vms'], doc['dedup_ratio']))
modes = ['lazy', 'pull', 'shared-cache', 'separate-cache']
res = {(r['mode'], r['rtt_us']): r for r in doc['results']}
tmp = tempfile.mkdtemp()
dat = os.path.join(tmp, 'f.dat')
with open(dat, 'w') as f:
    for rtt in cfg['rtt_us']:
        row = ['%gms' % (rtt / 1000.0)]
        for m in modes:
            r = res.get((m, rtt))
            row.append('%f' % r['seconds'] if r and r['verified'] else 'NaN')
        for m in modes:
            r = res.get((m, rtt))
            row.append('%.0f' % (r['bytes_fetched'] / 1048576.0) if r else 'NaN')
        f.write(' '.join(row) + '\n')
term = 'svg size 900,520' if out.endswith('.svg') else 'pngcairo size 900,520'
offs = [-0.3, -0.1, 0.1, 0.3]
plot = ["'%s' using 2:xtic(1) title 'lazy + prefetch, 1 VM'" % dat,
        "'' using 3 title 'pull, then restore, 1 VM'",
        "'' using 4 title 'N VMs, one cache'",
        "'' using 5 title 'N VMs, a cache each'"]
plot += ["'' using ($0%+.2f):%d:%d with labels offset 0,0.6 font ',8' notitle" % (offs[i], 2 + i, 6 + i)
         for i in range(4)]
script = '\n'.join([
    'set terminal %s' % term,
    "set output '%s'" % out,
    "set title '%s'" % title.replace("'", ''),
    "set xlabel 'round-trip time added by the proxy'",
    "set ylabel 'seconds from the restore to the working set read'",
    'set style data histograms',
    'set style histogram clustered gap 1',
    'set style fill solid 0.8 border -1',
    'set boxwidth 0.9',
    'set key top left',
    'set grid ytics',
    'set yrange [0:*]',
    'set offsets graph 0, graph 0, graph 0.35, graph 0',
    "set label 1 'labels: MiB fetched from the store' at graph 0.55, graph 0.95",
    'plot ' + ', '.join(plot),
])
subprocess.run(['gnuplot'], input=script, text=True, check=True)
print('wrote %s' % out)
