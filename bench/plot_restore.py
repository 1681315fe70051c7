#!/usr/bin/env python3
# plot_restore.py - time to completion (bars) and to the first guest
# instruction (labels) per restore mode, page cache cold and warm, from the
# JSON of `lazymem bench restore --json` (or --json-out), drawn with gnuplot.
#
# usage: bench/plot_restore.py RESULTS.json OUTPUT.png|OUTPUT.svg [TITLE]
import json
import os
import subprocess
import sys
import tempfile

if len(sys.argv) < 3:
    sys.exit('usage: plot_restore.py RESULTS.json OUTPUT.png|svg [TITLE]')
src, out = sys.argv[1], sys.argv[2]
doc = json.load(open(src))
if doc.get('benchmark') != 'restore':
    sys.exit('%s: not the output of lazymem bench restore' % src)
cfg = doc['config']
title = sys.argv[3] if len(sys.argv) > 3 else (
    'lazymem bench restore: %d MiB, %d vCPU, working set %.0f%%, delivery %s' % (
        cfg['mem'] >> 20, cfg['vcpus'], cfg['ws'] * 100, cfg['delivery']))

modes = ['eager', 'lazy', 'prefetch', 'limit']
res = {(r['mode'], r['cache']): r for r in doc['results']}
tmp = tempfile.mkdtemp()
dat = os.path.join(tmp, 'r.dat')
with open(dat, 'w') as f:
    for m in modes:
        row = [m]
        for c in ('cold', 'warm'):
            r = res.get((m, c))
            row.append('%f' % r['seconds'] if r and r['verified'] else 'NaN')
        for c in ('cold', 'warm'):
            r = res.get((m, c))
            row.append('%.1f' % r['first_instruction_ms'] if r and r['verified'] else 'NaN')
        f.write(' '.join(row) + '\n')

term = 'svg size 900,520' if out.endswith('.svg') else 'pngcairo size 900,520'
script = '\n'.join([
    'set terminal %s' % term,
    "set output '%s'" % out,
    "set title '%s'" % title.replace("'", ''),
    "set ylabel 'seconds from the restore call to workload done (log)'",
    'set logscale y',
    'set style data histograms',
    'set style histogram clustered gap 1',
    'set style fill solid 0.8 border -1',
    'set boxwidth 0.9',
    'set key top right',
    'set grid ytics',
    "set label 1 'labels: ms to the first guest instruction' at graph 0.02, graph 0.95",
    "plot '%s' using 2:xtic(1) title 'page cache cold' lc rgb '#1f77b4', "
    "'' using 3 title 'page cache warm' lc rgb '#ff7f0e', "
    "'' using ($0-0.15):2:4 with labels offset 0,0.7 notitle, "
    "'' using ($0+0.15):3:5 with labels offset 0,0.7 notitle" % dat,
])
subprocess.run(['gnuplot'], input=script, text=True, check=True)
print('wrote %s' % out)
