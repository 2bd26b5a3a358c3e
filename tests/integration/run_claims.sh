#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Ownership claims end to end under `shmtrack run` (claims_prog.c): SHMTRACK_IMPORTANCE, and
# shmtrack_set_importance / shmtrack_label through the public API, must move ownership in the
# coordinator's merged dump as ALGORITHM.md specifies: the highest importance owns the whole
# object, equal importances split it (largest remainder), and without a claim the creator (2)
# keeps it. Truth: the bytes each memfd holds, as the program read them with fstat (st_blocks)
# and wrote them by construction (4 pages by the parent + 6 by one child = 40 KiB each), and the
# pids it printed. Expected owners: env-claim -> the env child (5 > 2); equal-claim -> parent and
# env child at 5 each, 20 KiB each; api-claim -> the api child (4 > 2), labelled "api-label";
# creator-kept -> the parent. The forwarded SIGTERM ends it with status 0. Usage: run_claims.sh
# BIN_DIR CLAIMS_PROG
set -euo pipefail
bin=$1
prog=$2
. "$(dirname "$0")/../run_lib.sh"
st_run_init

"$bin/shmtrack" run -o "$tmp/t.json" --interval 0 --socket "$tmp/s/st.sock" -- "$prog" \
    >"$tmp/out" 2>"$tmp/err" &
run_pid=$!
st_run_wait_ready "$tmp/out" "$tmp/err"
"$bin/shmtrack" dump --socket "$tmp/s/st.sock" -o "$tmp/d.json" >/dev/null
st_run_stop
[ "$rc" -eq 0 ] || { echo "shmtrack run exited $rc"; cat "$tmp/err"; exit 1; }
"$bin/shmtrack" report "$tmp/d.json" --format json >"$tmp/r.json"
python3 - "$tmp/r.json" "$tmp/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["dumps"][-1]
lines = open(sys.argv[2]).read().split("\n")
parent, env, api = map(int, next(l for l in lines if l.startswith("ready")).split()[1:])
truth = {f[1]: (int(f[2]), int(f[3])) for f in (l.split() for l in lines if l.startswith("obj "))}
PAGE = 4096
assert not d["partial"], d["warnings"]
assert len(d["objects"]) == len({o["key"] for o in d["objects"]}), "an object counted twice"
want = {  # name: {pid: effective bytes}, label
    "env-claim": ({parent: 0, env: 10 * PAGE}, None),
    "equal-claim": ({parent: 5 * PAGE, env: 5 * PAGE}, None),
    "api-claim": ({parent: 0, api: 10 * PAGE}, "api-label"),
    "creator-kept": ({parent: 10 * PAGE, api: 0}, None),
}
for name, (shares, label) in want.items():
    ino, size = truth[name]
    assert size == 10 * PAGE, f"{name}: the kernel counts {size} bytes, the program wrote {10 * PAGE}"
    objs = [o for o in d["objects"] if o["kind"] == "memfd" and o["key"].endswith(f":{ino}")]
    assert len(objs) == 1, f"{name} (ino {ino}): {len(objs)} objects"
    o = objs[0]
    assert o["size"] == size, f"{name}: size {o['size']} != {size}"
    got = {h["pid"]: h["effective_size"] for h in o["holders"]}
    assert got == shares, f"{name}: effective sizes {got} != {shares}"
    owner = max(shares, key=lambda p: (shares[p], -p))
    assert o["owner_pid"] == owner, f"{name}: owner {o['owner_pid']} != {owner}"
    if label:
        assert o["label"] == label, f"{name}: label {o['label']!r} != {label!r}"
print(f"run_claims: parent {parent}, env child {env} (SHMTRACK_IMPORTANCE=5), api child {api}: "
      f"owners and shares as specified in dump {d['id']}")
PY
