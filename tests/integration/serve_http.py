#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Integration test of `shmtrack serve` over real HTTP: routes and status codes, /api/dumps equal
# to the report JSON it was given (or to `shmtrack report --format json` of the same trace),
# /metrics through a strict exposition-format parser (and `promtool check metrics` when it is
# installed) with every sample compared to the report, then robustness: malformed requests,
# 200 concurrent connections, a client that never reads and one that stalls mid-request.
#
# usage: serve_http.py SHMTRACK (--report FILE | --trace FILE)
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, file=sys.stderr)
    return cond


def start_server(shmtrack, source_args):
    proc = subprocess.Popen([shmtrack, "serve", *source_args, "--port", "0", "--timeout", "2",
                             "--interval", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on http://127\.0\.0\.1:(\d+)/$", line.strip())
    if not m:
        proc.kill()
        sys.exit("serve did not start: %r %s" % (line, proc.stderr.read()))
    return proc, int(m.group(1))


def raw(port, data, timeout=5.0, read=True):
    """Sends bytes, returns (status or None, headers dict, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return s
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
                if head.startswith(b"HTTP/1.1 ") and b" 405 " in head[:20] and not m:
                    break
        s.close()
    except ConnectionResetError:
        return None, {}, b""
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0]) if lines and lines[0] else None
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return (int(m.group(1)) if m else None), headers, body


def get(port, path, method="GET", extra=b""):
    req = ("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)).encode()
    return raw(port, req + extra + b"\r\n")


# ---- a strict parser of the Prometheus text exposition format (0.0.4) ------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_label_value(s, i):
    """s[i] is just after the opening quote; returns (value, index after closing quote)."""
    out = []
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                raise ValueError("bad escape in label value at %d" % i)
            out.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        elif c == "\n":
            raise ValueError("raw newline in label value")
        else:
            out.append(c)
            i += 1
    raise ValueError("unterminated label value")


def parse_metrics(text):
    """Returns {family: {"type":..., "help":..., "samples": [(labels dict, float)]}}."""
    if not text.endswith("\n"):
        raise ValueError("exposition must end with a newline")
    fams, seen_series, current = {}, set(), None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    raise ValueError("line %d: malformed %s" % (n, line[:6]))
                continue
            kind, name, rest = m.groups()
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            if kind == "TYPE":
                if rest not in TYPES:
                    raise ValueError("line %d: unknown type %s" % (n, rest))
                if f["type"] is not None or f["samples"]:
                    raise ValueError("line %d: TYPE after samples or twice for %s" % (n, name))
                f["type"] = rest
            else:
                if f["help"] is not None:
                    raise ValueError("line %d: second HELP for %s" % (n, name))
                f["help"] = rest
            if current != name and name in seen_series_families(seen_series):
                raise ValueError("line %d: family %s is not contiguous" % (n, name))
            current = name
            continue
        m = re.match(r"(%s)" % NAME, line)
        if not m:
            raise ValueError("line %d: bad metric name" % n)
        name, i, labels = m.group(1), m.end(), {}
        if i < len(line) and line[i] == "{":
            i += 1
            while True:
                if line[i] == "}":
                    i += 1
                    break
                lm = re.match(LABEL, line[i:])
                if not lm or line[i + lm.end()] != "=" or line[i + lm.end() + 1] != '"':
                    raise ValueError("line %d: bad label at %d" % (n, i))
                lname = lm.group(0)
                if lname in labels:
                    raise ValueError("line %d: duplicate label %s" % (n, lname))
                value, i = parse_label_value(line, i + lm.end() + 2)
                labels[lname] = value
                if line[i] == ",":
                    i += 1
                elif line[i] != "}":
                    raise ValueError("line %d: expected , or } at %d" % (n, i))
        if i >= len(line) or line[i] != " ":
            raise ValueError("line %d: expected a space before the value" % n)
        parts = line[i + 1:].split(" ")
        if len(parts) not in (1, 2):
            raise ValueError("line %d: trailing garbage" % n)
        v = float(parts[0])  # accepts NaN/+Inf as the format does
        if len(parts) == 2:
            int(parts[1])
        if name not in fams or fams[name]["type"] is None:
            raise ValueError("line %d: sample of %s without TYPE" % (n, name))
        if current != name:
            raise ValueError("line %d: family %s is not contiguous" % (n, name))
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ValueError("line %d: duplicate series %s" % (n, key))
        seen_series.add(key)
        if fams[name]["type"] == "counter" and (v < 0 or math.isnan(v)):
            raise ValueError("line %d: counter %s is negative" % (n, name))
        fams[name]["samples"].append((labels, v))
    return fams


def seen_series_families(series):
    return {k[0] for k in series}


# ---- the checks -----------------------------------------------------------------------------

def check_routes(port, expected_report, expected_bytes):
    status, h, body = get(port, "/")
    check(status == 200 and h.get("content-type", "").startswith("text/html"), "GET / is the page")
    check(b'id="shmtrack-data"' in body and b"@SHMTRACK_" not in body, "page has its data")
    check("default-src 'none'" in h.get("content-security-policy", ""), "page has a CSP")
    status, h, body = get(port, "/api/dumps")
    check(status == 200 and h.get("content-type") == "application/json", "GET /api/dumps")
    check(json.loads(body) == expected_report, "/api/dumps equals the report JSON")
    if expected_bytes is not None:
        check(body == expected_bytes, "/api/dumps is byte for byte `shmtrack report --format json`")
    status, h, body = get(port, "/api/dumps", "HEAD")
    check(status == 200 and body == b"", "HEAD /api/dumps has no body")
    status, _, body = get(port, "/api/extra")
    check(status == 200 and isinstance(json.loads(body), dict), "GET /api/extra")
    for path in ("/nope", "/api", "/api/dumps/", "/../etc/passwd", "/metrics.txt"):
        check(get(port, path)[0] == 404, "GET %s is 404" % path)
    for method in ("POST", "PUT", "DELETE", "BREW"):
        status, h, _ = get(port, "/metrics", method)
        check(status == 405 and "GET" in h.get("allow", ""), "%s /metrics is 405 with Allow" % method)
    status, _, _ = get(port, "/api/dumps", "GET", b"Content-Length: 3\r\n\r\nabc")
    check(status == 400, "GET with a body is 400")


def check_metrics(port, report):
    status, h, body = get(port, "/metrics")
    check(status == 200 and h.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "GET /metrics content type")
    text = body.decode("utf-8")
    try:
        fams = parse_metrics(text)
    except ValueError as e:
        check(False, "metrics parse: %s" % e)
        return
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(r.returncode == 0, "promtool check metrics: %s%s" % (r.stdout, r.stderr))
    else:
        print("note: promtool not installed; the built-in strict parser alone checked /metrics")
    last = report["dumps"][-1] if report["dumps"] else None
    if not last:
        return

    def samples(name):
        return fams.get(name, {"samples": []})["samples"]

    owned = {(l["pid"], l["name"]): v for l, v in samples("shmtrack_process_shared_owned_bytes")}
    want = {(str(p["pid"]), p.get("name") or ""): p["shared_owned_bytes"] for p in last["processes"]}
    check(owned == want, "shared owned per process: %s vs %s" % (owned, want))
    objs = {l["key"]: (l["kind"], l["name"], l["owner"], v)
            for l, v in samples("shmtrack_object_resident_bytes")}
    want = {o["key"]: (o["kind"], o["name"], str(o.get("owner_pid") or 0), o["size"])
            for o in last["objects"]}
    check(objs == want, "object resident bytes: %s vs %s" % (objs, want))
    un = samples("shmtrack_unattributed_bytes")
    check(len(un) == 1 and un[0][1] == last["totals"]["unattributed"], "unattributed bytes")
    n = samples("shmtrack_dumps_total")
    check(len(n) == 1 and n[0][1] == len(report["dumps"]), "dumps_total")
    p = samples("shmtrack_partial_dumps_total")
    check(len(p) == 1 and p[0][1] == sum(1 for d in report["dumps"] if d.get("partial")),
          "partial_dumps_total")
    check(len(samples("shmtrack_dump_duration_seconds")) == 1, "dump duration gauge")


def check_malformed(port):
    cases = [
        (b"GARBAGE\r\n\r\n", "a request line that is not HTTP"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 without Host"),
        (b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", "an unknown HTTP version"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n",
         "a 200 kB header"),
        (b"\x00\xff\xfe\r\n\r\n", "binary junk"),
    ]
    for data, what in cases:
        try:
            status, _, _ = raw(port, data, timeout=5)
        except (BrokenPipeError, ConnectionResetError):
            status = None
        check(status is None or 400 <= status < 600, "%s: answered %s" % (what, status))
        check(get(port, "/metrics")[0] == 200, "server still serves after %s" % what)


def check_concurrent(port, n=200):
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    results = [None] * n

    def one(i):
        s = socks[i]
        try:
            s.sendall(b"GET /api/dumps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                buf += c
            results[i] = int(buf[9:12]) if buf.startswith(b"HTTP/1.1 ") else None
        except OSError as e:
            results[i] = str(e)
        finally:
            s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ok = sum(1 for r in results if r == 200)
    check(ok == n, "%d concurrent connections: %d answered 200 (%s)" % (n, ok,
          sorted({str(r) for r in results})))
    print("200 concurrent GET /api/dumps: %d x 200 in %.2f s" % (ok, time.monotonic() - t0))


def check_slow_clients(port):
    # 1. asks for the page and never reads: its replies sit in socket buffers, nothing blocks.
    lazy = []
    for _ in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)  # pipelined: far more than buffers
        lazy.append(s)
    # 2. sends half a request line and stalls.
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"GET /metr")
    t0 = time.monotonic()
    status = get(port, "/metrics")[0]
    check(status == 200 and time.monotonic() - t0 < 2, "a normal client is served while others stall")
    # The idle timeout (--timeout 2) closes the stalled connection.
    stalled.settimeout(10)
    t0 = time.monotonic()
    try:
        closed = stalled.recv(100) is not None
    except (ConnectionResetError, socket.timeout) as e:
        closed = not isinstance(e, socket.timeout)
    waited = time.monotonic() - t0
    check(closed and waited < 8, "stalled connection closed by the server after %.1f s" % waited)
    for s in lazy:
        s.close()
    stalled.close()
    check(get(port, "/")[0] == 200, "server still serves after slow clients")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shmtrack")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--report")
    g.add_argument("--trace")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            report = json.load(f)
        source = ["--report", args.report]
        report_bytes = None
    else:
        r = subprocess.run([args.shmtrack, "report", args.trace, "--format", "json", "--dump", "all"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("shmtrack report failed: %s" % r.stderr)
        report = json.loads(r.stdout)
        report_bytes = r.stdout.encode()
        source = [args.trace]
    proc, port = start_server(args.shmtrack, source)
    try:
        check_routes(port, report, report_bytes)
        check_metrics(port, report)
        check_malformed(port)
        check_concurrent(port)
        check_slow_clients(port)
        check(proc.poll() is None, "server alive at the end")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
        check(rc == 0, "serve exits 0 on SIGTERM (got %s)" % rc)
        err = proc.stderr.read()
        if err:
            print("serve stderr:", err, file=sys.stderr)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES), file=sys.stderr)
        return 1
    print("all serve checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
