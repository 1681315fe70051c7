#!/usr/bin/env python3
# plot_paging.py - pages/s against vCPUs per delivery, from the JSON of
# `lazymem bench paging --json` (or --json-out), drawn with gnuplot.
#
# usage: bench/plot_paging.py RESULTS.json OUTPUT.png|OUTPUT.svg [TITLE]
import json
import os
import subprocess
import sys
import tempfile

if len(sys.argv) < 3:
    sys.exit('usage: plot_paging.py RESULTS.json OUTPUT.png|svg [TITLE]')
src, out = sys.argv[1], sys.argv[2]
doc = json.load(open(src))
if doc.get('benchmark') != 'paging':
    sys.exit('%s: not the output of lazymem bench paging' % src)
cfg = doc['config']
title = sys.argv[3] if len(sys.argv) > 3 else (
    'lazymem bench paging: %d MiB/vCPU, %s guest pages, %d host CPUs' % (
        cfg['mem_per_vcpu'] >> 20,
        '4 KiB' if cfg['guest_page_size'] == 4096 else '2 MiB',
        cfg['host_cpus']))

series = {}
for r in doc['results']:
    if not r['verified']:
        continue  # a failed run has no rate worth drawing
    name = r['delivery'] + (' ' + r['placement'] if r['placement'] else '')
    series.setdefault(name, []).append((r['vcpus'], r['pages_per_sec']))
order = ['limit', 'handler same-cpu', 'handler other-cpu', 'minor', 'exit',
         'hybrid']
names = [n for n in order if n in series] + \
        sorted(n for n in series if n not in order)

tmp = tempfile.mkdtemp()
plots = []
for i, name in enumerate(names):
    path = os.path.join(tmp, '%d.dat' % i)
    with open(path, 'w') as f:
        for v, rate in sorted(series[name]):
            f.write('%d %f\n' % (v, rate))
    colors = {'limit': '#000000', 'handler same-cpu': '#d62728',
              'handler other-cpu': '#ff9896', 'minor': '#9467bd',
              'exit': '#1f77b4', 'hybrid': '#2ca02c'}
    plots.append("'%s' using 1:2 with linespoints lw 2 ps 1.3 pt %d lc rgb '%s' title '%s'" %
                 (path, 5 + i, colors.get(name, '#7f7f7f'), name))

term = 'svg size 900,560' if out.endswith('.svg') else \
       'pngcairo size 900,560' if 'pngcairo' in subprocess.run(
           ['gnuplot', '-e', 'set terminal'], capture_output=True,
           text=True).stdout + subprocess.run(
           ['gnuplot', '-e', 'set terminal'], capture_output=True,
           text=True).stderr else 'png size 900,560'
vcpus = sorted({v for s in series.values() for v, _ in s})
script = '\n'.join([
    'set terminal %s' % term,
    "set output '%s'" % out,
    "set title '%s'" % title.replace("'", ''),
    "set xlabel 'vCPUs (%d host CPUs: above that they time-share)'" %
    cfg['host_cpus'],
    "set ylabel 'guest pages/s (log)'",
    'set logscale xy 2',
    'set xrange [%f:%f]' % (min(vcpus) / 1.25, max(vcpus) * 1.25),
    'set xtics (%s)' % ', '.join('"%d" %d' % (v, v) for v in vcpus),
    'set format y "%.0s%c"',
    'set key outside right',
    'set grid',
    'plot ' + ', '.join(plots),
])
subprocess.run(['gnuplot'], input=script, text=True, check=True)
print('wrote %s' % out)
