#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The preload's hardest cases under `shmtrack run`, with a live coordinator rather than the
# registry file test_preload reads (tests/preload/probe.c):
#   - forkstorm: 150 forks or more, for 500 ms at least (PROBE_MIN_MS: 150 forks alone once took
#     under 300 ms, too short for two dumps), while 3 threads sit in mmap/memfd hooks (and flood
#     the coordinator with their events), every child connecting, with a periodic dump every
#     100 ms: no deadlock (the test's TIMEOUT), every child exits 0, run exits 0, and the trace
#     holds the periodic dumps.
#     (test_preload runs the 1000-fork storm without a coordinator; with one, each fork costs
#     ~25 ms (Release) to ~100 ms (ASan coordinator) more on a loaded 2-core machine: the child's
#     connection and the hammer threads' event flood);
#   - closefds / dup2fds: the program closes (or dup2()s /dev/null over) every descriptor it did
#     not open, the preload's socket among them, then creates more shared memory and labels one
#     object; once a new socket shows among its fds (the preload reconnected) it says "ready",
#     the test takes a dump and ends it with SIGTERM through `shmtrack run`. The dump must hold
#     the three objects the probe wrote down (its own /proc/self/maps inode and pages touched),
#     once each, with exact resident bytes, held and owned by the probe alone, and the label
#     "after-close": a label only the preload's
#     connection can carry, so it proves the preload reconnected and answered (the /proc catch-all
#     sees the objects but knows no labels).
# Usage: run_probe_wire.sh BIN_DIR PROBE
set -euo pipefail
bin=$1
probe=$2
. "$(dirname "$0")/../run_lib.sh"
st_run_init

start=$(date +%s)
PROBE_FORKS=150 PROBE_MIN_MS=500 "$bin/shmtrack" run -o "$tmp/fork.json" --interval 100 -- "$probe" forkstorm "$tmp/fork" \
    >"$tmp/fork.out" 2>"$tmp/fork.err" || { echo "forkstorm under shmtrack run failed"; cat "$tmp/fork.err"; exit 1; }
grep -Eq '^forks (1[5-9][0-9]|[2-9][0-9]{2}|[0-9]{4,}) failures 0$' "$tmp/fork.out" || { cat "$tmp/fork.out"; exit 1; }
"$bin/shmtrack" report "$tmp/fork.json" --dump all --format json >"$tmp/fork.r.json"
python3 - "$tmp/fork.r.json" <<'PY'
import json, sys
dumps = json.load(open(sys.argv[1]))["dumps"]
assert len(dumps) >= 2, f"{len(dumps)} periodic dumps during the fork storm"
for d in dumps:
    assert len(d["objects"]) == len({o["key"] for o in d["objects"]}), f"dump {d['id']}: an object counted twice"
print(f"run_probe_wire: forkstorm: {len(dumps)} periodic dumps")
PY
echo "run_probe_wire: forkstorm took $(($(date +%s) - start)) s"

for scenario in closefds dup2fds; do
    PROBE_HOLD=1 "$bin/shmtrack" run -o "$tmp/$scenario.t.json" --interval 0 --socket "$tmp/s/$scenario" -- \
        "$probe" "$scenario" "$tmp/$scenario" >"$tmp/$scenario.out" 2>"$tmp/$scenario.err" &
    run_pid=$!
    st_run_wait_ready "$tmp/$scenario.out" "$tmp/$scenario.err"
    "$bin/shmtrack" dump --socket "$tmp/s/$scenario" -o "$tmp/$scenario.dump.json" >/dev/null
    kill -TERM "$run_pid"
    wait "$run_pid" || { echo "$scenario under shmtrack run failed"; cat "$tmp/$scenario.err"; exit 1; }
    run_pid=
    "$bin/shmtrack" report "$tmp/$scenario.dump.json" --format json >"$tmp/$scenario.r.json"
    python3 - "$tmp/$scenario.r.json" "$tmp/$scenario.expect" "$scenario" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["dumps"][-1]
expect = [l.split() for l in open(sys.argv[2]) if l.startswith("expect ")]
assert not d["partial"], d["warnings"]
assert len(d["objects"]) == len({o["key"] for o in d["objects"]}), "an object counted twice"
probe = [p["pid"] for p in d["processes"] if p["name"].startswith("st_preload")]
assert len(probe) == 1, d["processes"]
assert len(expect) == 3, expect
for _, kind, ino, resident, label in expect:
    objs = [o for o in d["objects"] if o["kind"] == kind and o["key"].endswith(f":{ino}")]
    assert len(objs) == 1, f"{kind} ino {ino}: {len(objs)} objects in the dump"
    o = objs[0]
    assert o["size"] == int(resident), f"{kind} {ino}: {o['size']} != {resident}"
    assert o["owner_pid"] == probe[0], f"{kind} {ino}: owner {o['owner_pid']} != probe {probe[0]}"
    assert [h["pid"] for h in o["holders"]] == probe, o["holders"]
    assert (o["label"] or "") == ("" if label == "-" else label), f"{kind} {ino}: label {o['label']!r} != {label!r}"
print(f"run_probe_wire: {sys.argv[3]}: 3 objects exact, label after the reconnect, dump {d['id']}")
PY
done
