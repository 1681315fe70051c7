#!/usr/bin/env python3
# plot_migrate.py - `lazymem bench migrate --json` in three panels, drawn
# with gnuplot (matplotlib is not among our Debian packages): downtime per
# mode against the injected RTT with the 50 ms goal, demand-fault p50 and
# p99 of the post-copy and hybrid runs with the goal lines at
# 200 us, and total migration time per mode and RTT.
#
# usage: bench/plot_migrate.py RESULTS.json OUTPUT.svg|OUTPUT.png [TITLE]
import json
import os
import shutil
import subprocess
import sys
import tempfile

MODES = ['precopy', 'postcopy', 'hybrid']
COLOR = {'precopy': '#1f77b4', 'postcopy': '#d62728', 'hybrid': '#2ca02c'}


def load(src):
    doc = json.load(open(src))
    if doc.get('benchmark') != 'migrate':
        sys.exit('%s: not the output of lazymem bench migrate' % src)
    return doc


def nan_unless(r, key, ok=True):
    return '%f' % r[key] if r and r['verified'] and ok else 'NaN'


def write_data(doc, path):
    """One line per RTT: per mode downtime, p50, p99 (NaN without demand
    faults, so no point is drawn for a latency that was not measured),
    seconds."""
    res = {(r['mode'], r['rtt_us']): r for r in doc['results']}
    rtts = doc['config']['rtt_us']
    with open(path, 'w') as f:
        for i, t in enumerate(rtts):
            row = [str(i), '%dus' % t]
            for m in MODES:
                r = res.get((m, t))
                faults = bool(r) and r['pages_demand'] > 0 and r['fault_p50_us'] > 0
                row += [nan_unless(r, 'downtime_ms'),
                        nan_unless(r, 'fault_p50_us', faults),
                        nan_unless(r, 'fault_p99_us', faults),
                        nan_unless(r, 'seconds')]
            f.write(' '.join(row) + '\n')
    return rtts


def col(mode, what):
    """gnuplot column of a mode's value (see write_data)."""
    return 3 + MODES.index(mode) * 4 + ['down', 'p50', 'p99', 'sec'].index(what)


def panel_downtime(dat):
    plots = ["'%s' using 1:%d:xtic(2) with linespoints lw 2 pt 7 lc rgb '%s' title '%s'"
             % (dat, col(m, 'down'), COLOR[m], m) for m in MODES]
    return [
        "set title 'downtime: pause asked -> first vCPU in'",
        "set ylabel 'ms'", 'unset logscale y', 'set yrange [0:*]',
        "set arrow 1 from graph 0, first 50 to graph 1, first 50 nohead dt 2 lc rgb 'gray'",
        "set label 1 'goal 50 ms' at graph 0.02, first 50 offset 0,0.6 tc rgb 'gray'",
        'plot ' + ', '.join(plots),
        'unset arrow 1', 'unset label 1',
    ]


def goal_marks(rtts):
    """Short dashed lines at the 200 us goals, over the 200 us column."""
    if 200 not in rtts:
        return []
    x = rtts.index(200)
    out = []
    for n, (y, what) in enumerate(((300, 'p50 goal 300'), (1600, 'p99 goal 1600'))):
        out += ["set arrow %d from %f, first %d to %f, first %d nohead dt 2 lw 2 lc rgb 'gray'"
                % (10 + n, x - 0.35, y, x + 0.35, y, ),
                "set label %d '%s' at %f, first %d offset 0,0.6 center tc rgb 'gray'"
                % (10 + n, what, x, y)]
    return out


def panel_faults(dat, rtts):
    plots = []
    for m in ('postcopy', 'hybrid'):
        plots.append("'%s' using 1:%d:xtic(2) with linespoints lw 2 pt 7 lc rgb '%s' title '%s p50'"
                     % (dat, col(m, 'p50'), COLOR[m], m))
        plots.append("'%s' using 1:%d with linespoints lw 2 pt 5 dt 3 lc rgb '%s' title '%s p99'"
                     % (dat, col(m, 'p99'), COLOR[m], m))
    return [
        "set title 'demand-fault latency (no point: no demand faults)'",
        "set ylabel 'us, as the faulting vCPU timed it (log)'", 'set logscale y',
        'set yrange [10:*]',
    ] + goal_marks(rtts) + [
        'plot ' + ', '.join(plots),
        'unset arrow', 'unset label',
    ]


def panel_total(dat):
    return [
        "set title 'total: source connected -> every page here'",
        "set ylabel 'seconds'", 'unset logscale y', 'set yrange [0:*]',
        'set style data histograms', 'set style histogram clustered gap 1',
        'set style fill solid 0.8 border -1', 'set boxwidth 0.9',
        'plot ' + ', '.join(
            "'%s' using %d:xtic(2) title '%s' lc rgb '%s'"
            % (dat, col(m, 'sec'), m, COLOR[m]) for m in MODES),
    ]


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: plot_migrate.py RESULTS.json OUTPUT.svg|png [TITLE]')
    src, out = sys.argv[1], sys.argv[2]
    doc = load(src)
    cfg = doc['config']
    title = sys.argv[3] if len(sys.argv) > 3 else (
        'lazymem bench migrate: %d MiB guest, %d vCPUs, hot set %d pages/vCPU, load %.1f-%.1f'
        % (cfg['mem'] >> 20, cfg['vcpus'], cfg['hot_pages_per_vcpu'],
           cfg['load_start'], cfg['load_end']))
    tmp = tempfile.mkdtemp(prefix='bm-plot-')
    try:
        dat = os.path.join(tmp, 'm.dat')
        rtts = write_data(doc, dat)
        term = ('svg size 1500,540 dynamic' if out.endswith('.svg')
                else 'pngcairo size 1500,540')
        script = [
            'set terminal %s' % term, "set output '%s'" % out,
            "set multiplot layout 1,3 title '%s'" % title.replace("'", ''),
            "set xlabel 'injected RTT'", 'set grid ytics', 'set key below horizontal',
            'set offsets 0.3, 0.3, 0, 0',
        ]
        script += panel_downtime(dat) + panel_faults(dat, rtts)
        script += ['set offsets 0, 0, 0, 0'] + panel_total(dat)
        script += ['unset multiplot']
        subprocess.run(['gnuplot'], input='\n'.join(script), text=True, check=True)
    finally:
        shutil.rmtree(tmp)
    print('wrote %s' % out)


if __name__ == '__main__':
    main()
