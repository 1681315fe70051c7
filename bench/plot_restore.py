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
# The plain-thread mode (no KVM, "guest": "threads") has threads instead
# of vCPUs and the mmap contender.
if cfg.get('guest') == 'threads':
    auto = 'lazymem bench restore (plain threads): %d MiB, %d threads, working set %.0f%%' % (
        cfg['mem'] >> 20, cfg['threads'], cfg['ws'] * 100)
else:
    auto = 'lazymem bench restore: %d MiB, %d vCPU, working set %.0f%%, delivery %s' % (
        cfg['mem'] >> 20, cfg['vcpus'], cfg['ws'] * 100, cfg['delivery'])
title = sys.argv[3] if len(sys.argv) > 3 else auto

modes = [m for m in ('eager', 'lazy', 'prefetch', 'limit', 'mmap')
         if any(r['mode'] == m for r in doc['results'])]
res = {(r['mode'], r['cache']): r for r in doc['results']}
tmp = tempfile.mkdtemp()
dat = os.path.join(tmp, 'r.dat')
# Only the caches measured (--cache warm has no cold runs; a run whose
# cold check failed is "not-cold" and not drawn).
caches = [c for c in ('cold', 'warm')
          if any(r['cache'] == c for r in doc['results'])]
if not caches:
    sys.exit('%s: no cold or warm results' % src)
with open(dat, 'w') as f:
    for m in modes:
        row = [m]
        for c in caches:
            r = res.get((m, c))
            row.append('%f' % r['seconds'] if r and r['verified'] else 'NaN')
        for c in caches:
            r = res.get((m, c))
            row.append('%.2f' % r['first_instruction_ms'] if r and r['verified'] else 'NaN')
        f.write(' '.join(row) + '\n')

colour = {'cold': '#1f77b4', 'warm': '#ff7f0e'}
n = len(caches)
bars, labels = [], []
for i, c in enumerate(caches):
    bars.append("'%s' using %d%s title 'page cache %s' lc rgb '%s'" % (
        dat if i == 0 else '', 2 + i, ':xtic(1)' if i == 0 else '', c,
        colour[c]))
    shift = 0 if n == 1 else (-0.15 if i == 0 else 0.15)
    labels.append("'' using ($0%+.2f):%d:%d with labels offset 0,0.7 notitle" % (
        shift, 2 + i, 2 + n + i))
plot = 'plot ' + ', '.join(bars + labels)

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
    "set xlabel 'labels on the bars: ms to the first guest instruction (plain threads: to the threads let go)'",
    plot,
])
subprocess.run(['gnuplot'], input=script, text=True, check=True)
print('wrote %s' % out)
