#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Integration test of `shmtrack export TRACE --format perfetto`: decodes the output with
# `protoc --decode=perfetto.protos.Trace` (Debian's protobuf-compiler) against the project's copy
# of Perfetto's messages, and checks the decoded text against the JSON trace itself, read here
# independently of shmtrack: one process descriptor per pid with its name, one snapshot per global
# dump with its id and timestamp, every allocator node (global ones under pid 0) with its guid,
# size and weak flag, every ownership edge with its importance.
#
# usage: export_perfetto.py SHMTRACK TRACE PROTO_DIR
import codecs
import json
import os
import re
import subprocess
import sys
import tempfile


def parse_text(text):
    """protoc's text format into nested dicts of lists (enough for this schema)."""
    root, stack = {}, []
    cur = root
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.endswith("{"):
            name = line[:-1].strip()
            child = {}
            cur.setdefault(name, []).append(child)
            stack.append(cur)
            cur = child
        elif line == "}":
            cur = stack.pop()
        else:
            name, _, value = line.partition(": ")
            if value.startswith('"'):
                # protoc writes C escapes, non-ASCII bytes as octal: back to bytes, then UTF-8.
                value = codecs.escape_decode(value[1:-1].encode())[0].decode("utf-8")
            elif re.fullmatch(r"-?\d+", value):
                value = int(value)
            cur.setdefault(name, []).append(value)
    return root


def main():
    shmtrack, trace_path, proto_dir = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "t.pftrace")
        subprocess.run([shmtrack, "export", trace_path, "--format", "perfetto", "-o", out], check=True)
        with open(out, "rb") as f:
            dec = subprocess.run(["protoc", "--decode=perfetto.protos.Trace", "-I", proto_dir,
                                  os.path.join(proto_dir, "perfetto_subset.proto")],
                                 stdin=f, capture_output=True, text=True)
    if dec.returncode != 0:
        sys.exit("protoc --decode failed: " + dec.stderr)
    packets = parse_text(dec.stdout).get("packet", [])

    with open(trace_path) as f:
        trace = json.load(f)
    names, dumps = {}, {}
    for ev in trace["traceEvents"]:
        if ev.get("ph") == "M" and ev.get("name") == "process_name":
            names[ev["pid"]] = ev["args"]["name"]
        if ev.get("ph") == "v":
            d = dumps.setdefault(int(ev["id"], 16), {"ts": ev["ts"], "procs": {}, "globals": {}})
            a = ev["args"]["dumps"]
            p = d["procs"].setdefault(ev["pid"], {"nodes": {}, "edges": []})
            for name, node in a.get("allocators", {}).items():
                size = node.get("attrs", {}).get("size", {}).get("value", "0")
                entry = (int(node["guid"], 16), int(size, 16), bool(node.get("flags", 0) & 1))
                (d["globals"] if name.startswith("global/") else p["nodes"])[name] = entry
            for e in a.get("allocators_graph", []):
                p["edges"].append((int(e["source"], 16), int(e["target"], 16), e.get("importance", 0)))

    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("FAIL:", what, file=sys.stderr)

    descs = [p["track_descriptor"][0] for p in packets if "track_descriptor" in p]
    got = {d["process"][0]["pid"][0]: d["process"][0].get("process_name", [None])[0] for d in descs}
    pids = {pid for d in dumps.values() for pid in d["procs"]}
    want = {pid: names.get(pid) for pid in pids}
    check(got == want, "process descriptors %s vs %s" % (got, want))
    snaps = [p for p in packets if "memory_tracker_snapshot" in p]
    check(len(snaps) == len(dumps), "one snapshot per dump: %d vs %d" % (len(snaps), len(dumps)))
    for pkt in snaps:
        s = pkt["memory_tracker_snapshot"][0]
        gid = s["global_dump_id"][0]
        d = dumps.get(gid)
        if not check(d is not None, "snapshot of unknown dump %d" % gid):
            continue
        check(pkt["timestamp"][0] == d["ts"] * 1000, "dump %d timestamp" % gid)
        seen = {}
        for ps in s.get("process_memory_dumps", []):
            pid = ps["pid"][0]
            nodes = {}
            for n in ps.get("allocator_dumps", []):
                size = 0
                for e in n.get("entries", []):
                    if e["name"][0] == "size":
                        size = e["value_uint64"][0]
                nodes[n["absolute_name"][0]] = (n["id"][0], size, n.get("weak", ["false"])[0] == "true")
            edges = [(e["source_id"][0], e["target_id"][0], e.get("importance", [0])[0])
                     for e in ps.get("memory_edges", [])]
            seen[pid] = (nodes, edges)
        want = {pid: (p["nodes"], p["edges"]) for pid, p in d["procs"].items()}
        if d["globals"]:
            want[0] = (d["globals"], [])
        check({k: (v[0], sorted(v[1])) for k, v in seen.items()} ==
              {k: (v[0], sorted(v[1])) for k, v in want.items()},
              "dump %d: nodes and edges per pid (globals under 0)" % gid)
    if failures:
        return 1
    print("perfetto export of %s: %d descriptors, %d snapshots decode and match the trace"
          % (trace_path, len(descs), len(snaps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
