#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# The view, export and serve commands' command lines: --help, usage errors (exit 2 and a message
# naming the problem), unreadable input, --socket's own options, and that `view`
# writes its page atomically (a failed run leaves an existing OUT untouched).
#
# usage: cli_view.py SHMTRACK SAMPLE_REPORT
import os
import subprocess
import sys
import tempfile

FAILURES = []


def run(*args):
    return subprocess.run([SHMTRACK, *args], capture_output=True, text=True, timeout=30)


def expect(args, code, needle, stream="stderr"):
    r = run(*args)
    text = getattr(r, stream)
    ok = r.returncode == code and needle in text
    if not ok:
        FAILURES.append(args)
        print("FAIL: %s -> %d %r (wanted %d and %r)" % (args, r.returncode, text, code, needle),
              file=sys.stderr)


SHMTRACK, SAMPLE = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "page.html")
    for cmd in ("view", "export", "serve"):
        expect([cmd, "--help"], 0, "usage: shmtrack " + cmd, "stdout")
        expect([cmd, "--no-such-option"], 2, "usage")
    expect(["view"], 2, "-o OUT.html is required")
    expect(["view", "-o", out], 2, "give one TRACE")
    expect(["view", "a", "b", "-o", out], 2, "give one TRACE")
    expect(["view", "--report", os.path.join(tmp, "missing.json"), "-o", out], 2, "missing.json")
    expect(["view", os.path.join(tmp, "missing.json"), "-o", out], 2, "missing.json")
    with open(os.path.join(tmp, "notjson"), "w") as f:
        f.write("hello")
    expect(["view", "--report", os.path.join(tmp, "notjson"), "-o", out], 2, "not a `shmtrack report")
    # A good run, then a failing one: the page from the good run stays as it was.
    expect(["view", "--report", SAMPLE, "-o", out], 0, "")
    before = open(out, "rb").read()
    expect(["view", "--report", os.path.join(tmp, "notjson"), "-o", out], 2, "")
    if open(out, "rb").read() != before or os.path.exists(out + ".tmp"):
        FAILURES.append("atomic write")
        print("FAIL: a failed view changed or left behind files", file=sys.stderr)
    expect(["view", "--report", SAMPLE, "-o", os.path.join(tmp, "no", "such", "dir.html")], 1,
           "dir.html")
    expect(["export", os.path.join(tmp, "t.json")], 2, "--format is required")
    expect(["export", os.path.join(tmp, "t.json"), "--format", "svg", "-o", out], 2,
           "unknown format 'svg'")
    expect(["export", "--format", "perfetto", "-o", out], 2, "give one TRACE")
    expect(["export", os.path.join(tmp, "missing.json"), "--format", "perfetto", "-o", out], 2,
           "missing.json")
    expect(["serve"], 2, "give one of TRACE, --socket PATH or --report FILE")
    expect(["serve", "t.json", "--report", SAMPLE], 2, "give one of")
    expect(["serve", "--socket", os.path.join(tmp, "s"), "--keep", "0"], 2, "--keep")
    expect(["serve", "--socket", os.path.join(tmp, "s"), "--keep", "1001"], 2, "--keep")
    expect(["serve", "--report", SAMPLE, "--port", "70000"], 2, "not a port number")
    expect(["serve", "--report", SAMPLE, "--port", "-1"], 2, "not a port number")
    expect(["serve", "--report", SAMPLE, "--bind", "localhost.example"], 2, "cannot listen")
    expect(["serve", "--report", SAMPLE, "--interval", "0"], 2, "--interval")
    expect(["serve", "--report", os.path.join(tmp, "missing.json"), "--port", "0"], 2,
           "missing.json")

if FAILURES:
    print("%d check(s) failed" % len(FAILURES), file=sys.stderr)
    sys.exit(1)
print("all command-line checks passed")
