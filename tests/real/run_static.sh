#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real program: a static binary (static_prog.c, gcc -static) under `shmtrack run`. The preload
# cannot load into it, so its shared anonymous mapping, memfd and SysV segment (and its fork
# child) can only come from the /proc catch-all that run applies to CMD's process tree. Truth:
# the pages the program wrote by construction, and the test's own /proc reading (proc_truth.py:
# st_blocks of each object through /proc/PID/map_files, before and after the dump). Checks: the
# dump holds exactly the tree's three objects, once each, with resident bytes equal to both, the
# parent owns all three (creator policy: SysV cpid, else the holder that started first), parent
# and child are holders, and the forwarded SIGTERM ends the program with its own status (5).
# Usage: run_static.sh BIN_DIR STATIC_PROG
set -euo pipefail
bin=$1
prog=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: /proc/PID/map_files (the test's truth) needs root"; exit 77; }
. "$here/../run_lib.sh"
st_run_init

"$bin/shmtrack" run -o "$tmp/t.json" --interval 0 --socket "$tmp/st.sock" -- "$prog" \
    >"$tmp/out" 2>"$tmp/err" &
run_pid=$!
st_run_wait_ready "$tmp/out" "$tmp/err"
read -r _ parent child shmid anon memfd sysv < <(grep '^ready' "$tmp/out")
python3 "$here/proc_truth.py" "$parent" "$tmp/before.json"
"$bin/shmtrack" dump --socket "$tmp/st.sock" -o "$tmp/d.json" >/dev/null
python3 "$here/proc_truth.py" "$parent" "$tmp/after.json"
st_run_stop
[ "$rc" -eq 5 ] || { echo "shmtrack run exited $rc, the program exits 5 on SIGTERM"; cat "$tmp/err"; exit 1; }
"$bin/shmtrack" report "$tmp/d.json" --format json >"$tmp/d.r.json"
python3 - "$here" "$tmp" "$parent" "$child" "$shmid" "$anon" "$memfd" "$sysv" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import proc_truth as pt
tmp = sys.argv[2]
parent, child, shmid, anon, memfd, sysv = map(int, sys.argv[3:])
before, after = json.load(open(f"{tmp}/before.json")), json.load(open(f"{tmp}/after.json"))
d, objs = pt.dump_objects(f"{tmp}/d.r.json")
assert before["swap_in_use_kb"] == 0, "swap in use: st_blocks would count swapped pages"
assert before["pids"] == after["pids"] == [parent, child], (before["pids"], after["pids"])
assert len(d["objects"]) == len(objs), "an object counted twice"
assert {parent, child} <= {p["pid"] for p in d["processes"]}, d["processes"]
want = {"anon": anon, "memfd": memfd, "sysv": sysv}
truth = before["objects"]
assert sorted(o["kind"] for o in truth.values()) == sorted(want), truth
assert set(objs) == set(truth), f"dump {sorted(objs)} != /proc {sorted(truth)}"
bad = pt.bracket(before, objs, after)
assert not bad, bad
for key, t in truth.items():
    o = objs[key]
    pages = want[o["kind"]]
    assert t["resident"] == pages * pt.PAGE, f"{key}: /proc {t['resident']} != written {pages} pages"
    assert o["size"] == pages * pt.PAGE, f"{key}: dump {o['size']} != written {pages} pages"
    assert o["owner_pid"] == parent, f"{key}: owner {o['owner_pid']} != parent {parent}"
    assert {h["pid"] for h in o["holders"]} == {parent, child}, o["holders"]
    assert sum(h["effective_size"] for h in o["holders"]) == o["size"], o["holders"]
    if o["kind"] == "sysv":
        assert key.endswith(f":{shmid}"), (key, shmid)
print(f"real_static: parent {parent}, child {child}: anon {anon}, memfd {memfd}, sysv {sysv} pages, "
      f"all owned by the parent, dump {d['id']}")
PY
