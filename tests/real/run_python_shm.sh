#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real program: Python's multiprocessing.shared_memory across a Pool of 4 workers, under
# `shmtrack run`. The truth is what py_shm_pool.py wrote (pages touched by construction) and what it
# read itself before exit (st_blocks * 512 of /dev/shm/NAME); checked against the last dump of the
# run's trace: the block appears exactly once, kind posix, its size is the bytes written, the creator
# (the parent) owns it, the holders' effective bytes sum to its size, the workers hold it, and
# `shmtrack run` exits with the script's own status (3). Exit 77 (skipped) when python3 is missing.
# Usage: run_python_shm.sh BIN_DIR
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIP: python3 not installed (apt-get install python3)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

set +e
"$bin/shmtrack" run -o "$tmp/t.json" --interval 0 -- \
    python3 "$here/py_shm_pool.py" "$bin/shmtrack" "$tmp/d.json" >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -eq 3 ] || { echo "shmtrack run exited $rc, the script exits 3"; cat "$tmp/out" "$tmp/err"; exit 1; }
"$bin/shmtrack" report "$tmp/t.json" --format json >"$tmp/r.json"
python3 - "$tmp/r.json" "$tmp/out" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
truth = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
d = rep["dumps"][-1]
assert not d["partial"], d["warnings"]
size = truth["pages_written"] * 4096
assert truth["st_bytes"] == size, f"script's own reading {truth['st_bytes']} != written {size}"
assert size < truth["block"], "the test must write fewer pages than the block has"
mine = [o for o in d["objects"] if o["name"].rstrip("/").split("/")[-1] == truth["name"]]
assert len(mine) == 1, f"{truth['name']} appears {len(mine)} times: {[o['name'] for o in d['objects']]}"
o = mine[0]
assert o["kind"] == "posix", o["kind"]
assert o["size"] == size, f"size {o['size']} != written {size}"
assert o["owner_pid"] == truth["parent"], f"owner {o['owner_pid']} != parent {truth['parent']}"
eff = sum(h["effective_size"] for h in o["holders"])
assert eff == size, f"holders sum {eff} != {size}"
holders = {h["pid"] for h in o["holders"]}
assert truth["parent"] in holders and set(truth["workers"]) <= holders, (holders, truth)
assert len(d["objects"]) == len({x["key"] for x in d["objects"]}), "an object counted twice"
print(f"real_python_shm: {truth['name']} {size} bytes, owner {o['owner_pid']}, "
      f"{len(holders)} holders, dump {d['id']}")
PY
