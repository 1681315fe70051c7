#!/usr/bin/env python3
"""check_symbols.py - debian/liblazymem0.symbols lists exactly the calls
liblazymem.map exports, each at LAZYMEM_0.1.

Why a test of its own: the package test (tests/deb.sh) catches a stale
symbols file only where dpkg-buildpackage and debhelper are installed,
which CI's machine is not; a call added to the map without its line in
the symbols file then passed CI and broke the package build."""
import re
import sys

root = sys.argv[1]
with open(f"{root}/liblazymem.map") as f:
    exported = set(re.findall(r"\b(lm_[a-z0-9_]+)\s*;", f.read()))
with open(f"{root}/debian/liblazymem0.symbols") as f:
    listed = {}
    for line in f:
        m = re.match(r"\s+(lm_[a-z0-9_]+)@(\S+)", line)
        if m:
            listed[m.group(1)] = m.group(2)
bad = []
for name in sorted(exported - listed.keys()):
    bad.append(f"{name}: exported by liblazymem.map, missing from "
               "debian/liblazymem0.symbols")
for name in sorted(listed.keys() - exported):
    bad.append(f"{name}: in debian/liblazymem0.symbols, not exported by "
               "liblazymem.map")
for name, ver in sorted(listed.items()):
    if ver != "LAZYMEM_0.1":
        bad.append(f"{name}: version {ver}, expected LAZYMEM_0.1")
for b in bad:
    print(b)
print(f"{len(exported)} calls exported, {len(listed)} listed: "
      f"{'ok' if not bad else 'MISMATCH'}")
sys.exit(1 if bad else 0)
