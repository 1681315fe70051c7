#!/usr/bin/env python3
"""check_layers.py - every #include "..." obeys the layer list.

The list is read from docs/architecture.md (the fenced block opened with
```layers), so the document and the check cannot drift apart. A folder may
include its own headers, those of any folder on a lower line, and the
public API (include/lazymem); folders on one line are independent of each
other. A private header (a name ending in _internal.h, or one listed on the
block's "private:" line) may be included only from its own folder; tests/
may open one to unit-test it. An "only: HEADER FOLDER..." line limits a
header to the folders named (core/error.h, which writes the library's own
error channel, to the library's folders). Every include must name its folder
("vmm/vcpu.h"), except a header beside the including file in a top-level
folder outside src/ (bench/bench.h, tests/lm_test.h).

Usage: check_layers.py SOURCE_ROOT. Exit 0 when clean; otherwise one line
per offending include, "file:line: include "x": why", and exit 1.
"""
import os
import re
import sys

SCANNED = ('src', 'bench', 'tests', 'fuzz', 'examples')
PRIVATE_OK = ('tests',)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def read_layers(root):
    doc = os.path.join(root, 'docs', 'architecture.md')
    text = open(doc, encoding='utf-8').read()
    m = re.search(r'^```layers\n(.*?)^```', text, re.M | re.S)
    if not m:
        sys.exit('%s: no ```layers block' % doc)
    level, private, only = {}, set(), {}
    n = 0
    for line in m.group(1).splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        if line.startswith('private:'):
            private.update(line[len('private:'):].split())
            continue
        if line.startswith('only:'):
            words = line[len('only:'):].split()
            only[words[0]] = set(words[1:])
            continue
        for name in line.split():
            level[name] = n
        n += 1
    return level, private, only


def folder_of(root, path):
    """The layer a file belongs to: src/X -> X, else its top folder."""
    rel = os.path.relpath(path, root).split(os.sep)
    return rel[1] if rel[0] == 'src' else rel[0]


def check(root):
    level, private, only = read_layers(root)
    bad = []
    for top in SCANNED:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(('.c', '.h')):
                    continue
                path = os.path.join(dirpath, f)
                me = folder_of(root, path)
                rel = os.path.relpath(path, root)
                if me not in level:
                    bad.append('%s: folder "%s" is not in the layer list '
                               '(docs/architecture.md)' % (rel, me))
                    continue
                with open(path, encoding='utf-8', errors='replace') as fh:
                    for ln, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if m:
                            why = judge(root, level, private, only, me,
                                        path, m.group(1))
                            if why:
                                bad.append('%s:%d: include "%s": %s' %
                                           (rel, ln, m.group(1), why))
    return bad


def judge(root, level, private, only, me, path, inc):
    if '/' not in inc:
        beside = os.path.join(os.path.dirname(path), inc)
        if os.path.relpath(path, root).startswith('src' + os.sep):
            return 'names no folder (write "%s/%s")' % (me, inc)
        if not os.path.exists(beside):
            return 'names no folder and is not beside the file'
        return None
    them = inc.split('/', 1)[0]
    if them == 'lazymem':
        return None			# the public API, include/lazymem
    if them not in level:
        return 'folder "%s" is not in the layer list' % them
    if not os.path.exists(os.path.join(root, 'src', inc)) and \
       not os.path.exists(os.path.join(root, inc)):
        return 'no such header'
    if them != me and (inc.endswith('_internal.h') or inc in private) \
       and me not in PRIVATE_OK:
        return 'private to %s' % them
    if inc in only and me not in only[inc]:
        return 'only %s may include it' % ', '.join(sorted(only[inc]))
    if them != me and level[them] >= level[me]:
        return '%s (layer %d) may not include %s (layer %d): not below it' \
               % (me, level[me], them, level[them])
    return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    bad = check(root)
    for b in bad:
        print(b)
    if bad:
        print('check_layers: %d include(s) break the layering' % len(bad))
        return 1
    print('check_layers: every include obeys docs/architecture.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
