#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# `shmtrack serve --socket` end to end: a coordinator (`shmtrack daemon`) in a private 0700
# directory, the bundled demo under the preload reporting to it, and serve taking a dump every
# 300 ms. The truth is what the demo builds (heap 6 MiB owned by the broker, frame-i 1 MiB +
# i * 64 KiB owned by the GPU process, pids from the demo's own output) and an independent
# `shmtrack dump -o` + `shmtrack report --format json` of the same coordinator: the served dump and
# that report are different moments, so they are compared on what is stable in the demo (object
# keys, kinds, names, sizes, owners). serve starts before the coordinator (503, failed fetches
# counted, retried); /metrics must carry the demo's objects and count the dumps; with the
# coordinator gone serve must keep answering and count the failed fetches.
#
# usage: serve_live.py BIN_DIR PRELOAD_SO
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN, PRELOAD = sys.argv[1], sys.argv[2]
SHMTRACK = os.path.join(BIN, "shmtrack")
MiB, KiB = 1 << 20, 1 << 10
procs = []


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def stable(dump):
    return {o["key"]: (o["kind"], o["name"], o["size"], o["owner_pid"]) for o in dump["objects"]}


def metric(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def preload_list():
    """The preload, after the sanitizer runtime the demo links: in a sanitizer build the runtime
    must come first in the initial library list, and LD_PRELOAD goes before the program's own."""
    runtimes = []
    for f in (os.path.join(BIN, "shmtrack-demo"), PRELOAD):
        ldd = subprocess.run(["ldd", f], capture_output=True, text=True).stdout
        for r in re.findall(r"^\s*lib(?:asan|ubsan)\.so\S*\s+=>\s+(\S+)", ldd, re.M):
            if r not in runtimes:
                runtimes.append(r)
    return ":".join(runtimes + [PRELOAD])


def wait_for(what, cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise SystemExit(f"serve_live: timed out waiting for {what}")


def main(tmp):
    sock = os.path.join(tmp, "coord.sock")
    # serve starts before the coordinator: no data yet (503), failed fetches counted, retried.
    serve = spawn([SHMTRACK, "serve", "--socket", sock, "--port", "0", "--interval", "300",
                   "--keep", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.match(r"listening on http://127\.0\.0\.1:(\d+)/$", serve.stdout.readline().strip())
    assert m, "serve did not print its address"
    port = int(m.group(1))

    wait_for("a failed fetch in /metrics",
             lambda: (metric(get(port, "/metrics")[1], "shmtrack_dump_errors_total") or 0) >= 1, 10)
    assert get(port, "/api/dumps")[0] == 503, "/api/dumps before any dump"

    daemon_err = open(os.path.join(tmp, "daemon.err"), "w")
    daemon = spawn([SHMTRACK, "daemon", "--socket", sock, "-o", os.path.join(tmp, "daemon.json")],
                   stderr=daemon_err)
    wait_for("the coordinator's socket", lambda: os.path.exists(sock), 10)

    env = dict(os.environ, LD_PRELOAD=preload_list(), SHMTRACK_SOCKET=sock)
    demo = spawn([os.path.join(BIN, "shmtrack-demo"), "--seconds", "40"], env=env,
                 stdout=subprocess.PIPE, text=True)
    line = demo.stdout.readline()
    m = re.search(r"broker (\d+), network (\d+), gpu (\d+)", line)
    assert m, f"demo said {line!r}"
    broker, network, gpu = map(int, m.groups())

    want = {"shared-heap": (6 * MiB, broker), "frame-0": (MiB, gpu), "frame-1": (MiB + 64 * KiB, gpu)}

    def demo_settled():
        status, body = get(port, "/api/dumps")
        if status != 200:
            assert status == 503, f"/api/dumps answered {status} before the first dump"
            return None
        rep = json.loads(body)
        d = rep["dumps"][-1]
        objs = {o["name"]: o for o in d["objects"]}
        ok = all(n in objs and (objs[n]["size"], objs[n]["owner_pid"]) == w for n, w in want.items())
        return rep if ok and not d["partial"] else None

    rep = wait_for("the demo's objects in /api/dumps", demo_settled, 30)
    assert 1 <= len(rep["dumps"]) <= 3, f"--keep 3 kept {len(rep['dumps'])} dumps"
    served = rep["dumps"][-1]
    rings = [o for o in served["objects"] if o["kind"] == "anon"]
    assert len(rings) == 1 and rings[0]["size"] == 768 * KiB and rings[0]["owner_pid"] == broker, rings
    ids = [d["id"] for d in rep["dumps"]]
    assert len(set(ids)) == len(ids), f"a dump served twice: {ids}"

    # An independent dump of the same coordinator, reported by `shmtrack report`.
    t = os.path.join(tmp, "t.json")
    subprocess.run([SHMTRACK, "dump", "--socket", sock, "-o", t], check=True,
                   stderr=subprocess.DEVNULL, timeout=20)
    out = subprocess.run([SHMTRACK, "report", t, "--format", "json"], check=True,
                         capture_output=True, text=True, timeout=20).stdout
    ref = json.loads(out)["dumps"][-1]
    assert stable(served) == stable(ref), f"served {stable(served)}\nreport {stable(ref)}"
    assert {p["pid"] for p in served["processes"]} == {p["pid"] for p in ref["processes"]}
    print(f"serve_live: /api/dumps dump {served['id']} matches `report` of dump {ref['id']}:",
          len(served["objects"]), "objects")

    status, text = get(port, "/metrics")
    assert status == 200, status
    for o in served["objects"]:
        key = o["key"].replace("\\", "\\\\").replace('"', '\\"')
        pat = (rf'^shmtrack_object_resident_bytes\{{key="{re.escape(key)}",kind="{o["kind"]}",'
               rf'name="[^"]*",owner="{o["owner_pid"]}"\}} {o["size"]}$')
        assert re.search(pat, text, re.M), f"/metrics lacks {o['name']}: {pat}"
    assert re.search(rf'^shmtrack_process_shared_owned_bytes\{{pid="{broker}",', text, re.M)
    assert metric(text, "shmtrack_dumps_total") >= len(rep["dumps"])
    assert metric(text, "shmtrack_dump_duration_seconds") > 0
    assert metric(text, "shmtrack_partial_dumps_total") is not None
    errors = metric(text, "shmtrack_dump_errors_total")
    assert errors is not None

    # The coordinator goes away: serve keeps serving the last dumps and counts failed fetches.
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=20) == 0, "the coordinator did not stop cleanly"
    assert os.path.getsize(os.path.join(tmp, "daemon.json")) > 0
    wait_for("failed fetches in /metrics",
             lambda: metric(get(port, "/metrics")[1], "shmtrack_dump_errors_total") >= errors + 2, 15)
    status, body = get(port, "/api/dumps")
    assert status == 200 and int(json.loads(body)["dumps"][-1]["id"], 16) >= int(served["id"], 16)
    print("serve_live: coordinator gone, serve still answers and counts the failures")

    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=20) == 0, "serve did not stop cleanly"
    err = serve.stderr.read()
    assert "retrying" in err, err
    demo.send_signal(signal.SIGTERM)
    demo.wait(timeout=20)


with tempfile.TemporaryDirectory() as tmp:
    os.chmod(tmp, 0o700)
    try:
        main(tmp)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
print("serve_live: ok")
