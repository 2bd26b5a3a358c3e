#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# End to end: `shmtrack run` over the bundled demo (preload + coordinator + report). The truth is
# what the demo writes by construction, in whole pages: the heap 6 MiB, the ring 768 KiB (the
# broker writes half, the forked network process a quarter), frame-i 1 MiB + i * 64 KiB. Owners:
# heap and ring → the broker (creator, claim 2); every frame → the GPU process (explicit claim 3
# through the public API). Also: run's exit status is CMD's, a missing CMD is exit 127, usage errors
# are exit 2. Usage: run_demo.sh BIN_DIR
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin/shmtrack" run -o "$tmp/t.json" --interval 300 --deadline 5000 -- "$bin/shmtrack-demo" --seconds 3 \
    >"$tmp/out" 2>"$tmp/err"
pids=$(grep -o 'broker [0-9]*, network [0-9]*, gpu [0-9]*' "$tmp/out")
"$bin/shmtrack" report "$tmp/t.json" --dump all --format json >"$tmp/r.json"
python3 - "$tmp/r.json" "$pids" <<'PY'
import json, re, sys
rep = json.load(open(sys.argv[1]))
broker, network, gpu = map(int, re.findall(r'\d+', sys.argv[2]))
# The steady state: the last dump that saw all five processes and is complete (a periodic dump
# may land while the tree is exiting, which is not what this test checks).
full = [d for d in rep["dumps"] if not d["partial"] and len(d["processes"]) == 5
        and {broker, network, gpu} <= {p["pid"] for p in d["processes"]}]
assert full, [(d["id"], d["partial"], len(d["processes"])) for d in rep["dumps"]]
d = full[-1]
objs = {o["name"]: o for o in d["objects"]}
MiB, KiB = 1 << 20, 1 << 10
want = {"shared-heap": (6 * MiB, broker), "frame-0": (1 * MiB, gpu), "frame-1": (MiB + 64 * KiB, gpu)}
for name, (size, owner) in want.items():
    assert name in objs, f"{name} missing: {sorted(objs)}"
    o = objs[name]
    assert o["size"] == size, f"{name}: size {o['size']} != {size}"
    assert o["owner_pid"] == owner, f"{name}: owner {o['owner_pid']} != {owner}"
    assert sum(h["effective_size"] for h in o["holders"]) == size, f"{name}: holders do not sum"
rings = [o for o in d["objects"] if o["kind"] == "anon"]
assert len(rings) == 1, rings
assert rings[0]["size"] == 768 * KiB and rings[0]["owner_pid"] == broker, rings[0]
assert {h["pid"] for h in rings[0]["holders"]} == {broker, network}, rings[0]["holders"]
t = d["totals"]
assert t["attributed"] + t["unattributed"] == t["shared_resident_unique"], t
assert len(d["objects"]) == len({o["key"] for o in d["objects"]}), "an object counted twice"
print("run_demo: exact sizes and owners in dump", d["id"])
PY

# Exit statuses: CMD's own, 127 when CMD cannot run, 2 on usage errors.
set +e
"$bin/shmtrack" run -o "$tmp/f.json" -- sh -c 'exit 7' 2>/dev/null; [ $? -eq 7 ] || { echo "exit status not CMD's"; exit 1; }
"$bin/shmtrack" run -o "$tmp/f.json" -- /nonexistent/cmd 2>"$tmp/e"; [ $? -eq 127 ] || { echo "missing CMD not 127"; exit 1; }
grep -q "cannot run /nonexistent/cmd" "$tmp/e" || { cat "$tmp/e"; exit 1; }
"$bin/shmtrack" run --interval abc -- true 2>/dev/null; [ $? -eq 2 ] || { echo "bad --interval not 2"; exit 1; }
"$bin/shmtrack" run 2>/dev/null; [ $? -eq 2 ] || { echo "no CMD not 2"; exit 1; }
"$bin/shmtrack" daemon --socket "$tmp/d/s" --interval abc 2>"$tmp/e"; [ $? -eq 2 ] || { echo "daemon bad --interval not 2"; exit 1; }
grep -q "interval takes milliseconds" "$tmp/e" || { cat "$tmp/e"; exit 1; }
"$bin/shmtrack" daemon --socket "$tmp/d/s" --deadline 0 2>/dev/null; [ $? -eq 2 ] || { echo "daemon --deadline 0 not 2"; exit 1; }
"$bin/shmtrack" run --ask-window 0 -- true 2>"$tmp/e"; [ $? -eq 2 ] || { echo "--ask-window 0 not 2"; exit 1; }
grep -q "ask-window takes a number of clients" "$tmp/e" || { cat "$tmp/e"; exit 1; }
"$bin/shmtrack" daemon --socket "$tmp/d/s" --ask-window some 2>/dev/null; [ $? -eq 2 ] || { echo "daemon --ask-window some not 2"; exit 1; }
echo "run_demo: exit statuses ok"

# Asked one process at a time, or all at once: every dump complete all the same.
set -e
for w in 1 all; do
    "$bin/shmtrack" run -o "$tmp/w$w.json" --interval 200 --ask-window "$w" -- "$bin/shmtrack-demo" --seconds 1 \
        >/dev/null 2>"$tmp/e" || { cat "$tmp/e"; exit 1; }
    "$bin/shmtrack" report "$tmp/w$w.json" --dump all --format json >"$tmp/w.json"
    python3 - "$tmp/w.json" "$w" <<'PY'
import json, sys
dumps = json.load(open(sys.argv[1]))["dumps"]
full = [d for d in dumps if not d["partial"] and len(d["processes"]) == 5]
assert full, [(d["id"], d["partial"], len(d["processes"]), d["warnings"]) for d in dumps]
print(f"run_demo: --ask-window {sys.argv[2]}: {len(full)} complete dumps of the five processes")
PY
done
