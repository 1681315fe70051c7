#!/usr/bin/env python3
"""Sum the cmocka test cases of every meson test run into one closing line,
and repeat each skip's one-line reason so that a skip is never silent."""
import glob, json, re, sys

if sys.argv[1:2] == ["--failed"]:
    # test_summary.py --failed TESTLOG.JSON: each failed test's name and the
    # last 30 lines of its output (test.sh prints them when a run fails)
    for line in open(sys.argv[2]):
        t = json.loads(line)
        if t.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
            continue
        out = ((t.get("stdout") or "") + (t.get("stderr") or "")).splitlines()
        print(f"--- {t['name']}: {t.get('result')}; its last {min(len(out), 30)} lines:")
        print("\n".join(out[-30:]))
    sys.exit(0)

passed = failed = skipped = 0
reasons = set()
xfails = set()
lines = []
for d in sys.argv[1:]:
    # one log per `meson test` run (scripts/test.sh keeps them all), else
    # the last run's
    logs = sorted(glob.glob(f"{d}/meson-logs/testlog-run*.json")) or \
        glob.glob(f"{d}/meson-logs/testlog.json")
    for log in logs:
        lines += open(log).read().splitlines()
for line in lines:
    t = json.loads(line)
    if t.get("result") == "EXPECTEDFAIL":
        # a test meson runs with should_fail: its failing cases are the
        # point (a known bug elsewhere, named in the test); an unexpected
        # pass is meson's UNEXPECTEDPASS, counted as a failure below
        xfails.add(t["name"])
        continue
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    cases = 0
    for m in re.finditer(r"^\[  PASSED  \] (\d+) test", out, re.M):
        passed += int(m.group(1)); cases += 1
    for m in re.finditer(r"^\[  FAILED  \] (\d+) test", out, re.M):
        failed += int(m.group(1)); cases += 1
    for m in re.finditer(r"^\[  SKIPPED \] (\d+) test", out, re.M):
        skipped += int(m.group(1)); cases += 1
    for m in re.finditer(r"^SKIP: (.*)$", out, re.M):
        reasons.add(f"{t['name']}: {m.group(1)}")
    if not cases:  # a script test: meson's own verdict
        r = t.get("result")
        if r == "OK": passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
    elif t.get("result") not in ("OK", "SKIP") and not failed:
        failed += 1  # crashed after its cases passed
for r in sorted(reasons):
    print("skipped:", r)
for n in sorted(xfails):
    print("failed as expected:", n)
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
