#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `shmtrack run` and `shmtrack daemon` write each dump beside their trace as it is taken (a spool,
# cli.h st_cli_trace_out_t) and the trace whole at the end:
#   - a run of the demo with a dump every 100 ms: the trace holds every dump run reports it wrote,
#     and nothing else is left beside it;
#   - an output directory that does not exist: both commands fail at once (exit 1, "cannot
#     create"), before CMD runs;
#   - a full disk (a 300 KiB tmpfs; root only, else skipped): the dumps that do not fit are
#     reported one by one and run exits 1; what is left is no spool, and either nothing (the end
#     of the trace did not fit either, which is reported) or the trace of the dumps that fit,
#     which reads.
# Usage: run_spool.sh BIN_DIR
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
small=
cleanup() {
    [ -n "$small" ] && umount "$small" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir "$tmp/out"
"$bin/shmtrack" run -o "$tmp/out/t.json" --interval 100 -- "$bin/shmtrack-demo" --seconds 2 \
    >"$tmp/demo.out" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
n=$(sed -n 's/^shmtrack run: wrote .* (\([0-9]*\) dumps)$/\1/p' "$tmp/err")
[ -n "$n" ] && [ "$n" -ge 5 ] || { echo "run wrote too few dumps: '$n'"; cat "$tmp/err"; exit 1; }
[ "$(ls "$tmp/out")" = "t.json" ] || { echo "left beside the trace:"; ls -la "$tmp/out"; exit 1; }
"$bin/shmtrack" report "$tmp/out/t.json" --dump all --format json >"$tmp/r.json"
python3 - "$tmp/r.json" "$n" <<'PY'
import json, sys
dumps = json.load(open(sys.argv[1]))["dumps"]
assert len(dumps) == int(sys.argv[2]), f"{len(dumps)} dumps in the trace, run said {sys.argv[2]}"
ids = [int(d["id"], 16) for d in dumps]
assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
print(f"run_spool: {len(dumps)} dumps, all in the trace")
PY

set +e
"$bin/shmtrack" run -o "$tmp/missing/t.json" -- touch "$tmp/ran" 2>"$tmp/e"
[ $? -eq 1 ] || { echo "run into a missing directory: not exit 1"; exit 1; }
grep -q "cannot create" "$tmp/e" || { cat "$tmp/e"; exit 1; }
[ ! -e "$tmp/ran" ] || { echo "CMD ran although the trace cannot be written"; exit 1; }
"$bin/shmtrack" daemon --socket "$tmp/d/s" -o "$tmp/missing/t.json" 2>"$tmp/e"
[ $? -eq 1 ] || { echo "daemon into a missing directory: not exit 1"; exit 1; }
grep -q "cannot create" "$tmp/e" || { cat "$tmp/e"; exit 1; }
set -e
echo "run_spool: a missing directory fails at once"

if [ "$(id -u)" != 0 ]; then
    echo "run_spool: full disk skipped (needs root to mount a tmpfs)"
    exit 0
fi
mkdir "$tmp/small"
mount -t tmpfs -o size=300k tmpfs "$tmp/small" || { echo "run_spool: full disk skipped (no tmpfs mount)"; exit 0; }
small="$tmp/small"
set +e
"$bin/shmtrack" run -o "$small/t.json" --interval 50 -- "$bin/shmtrack-demo" --seconds 3 \
    >"$tmp/demo.out" 2>"$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] || { echo "full disk: run exit $rc, not 1"; cat "$tmp/err"; exit 1; }
grep -q "will not be in $small/t.json: .*No space left on device" "$tmp/err" || { cat "$tmp/err"; exit 1; }
left=$(ls -A "$small")
if [ -z "$left" ]; then
    grep -q "cannot write $small/t.json" "$tmp/err" || { cat "$tmp/err"; exit 1; }
    echo "run_spool: full disk reported, the trace did not fit, nothing left behind"
else
    [ "$left" = "t.json" ] || { echo "left on the full disk:"; ls -la "$small"; exit 1; }
    kept=$(sed -n 's/^shmtrack run: wrote .* (\([0-9]*\) dumps)$/\1/p' "$tmp/err")
    "$bin/shmtrack" report "$small/t.json" --dump all --format json >"$tmp/r.json"
    python3 -c "import json,sys; n=len(json.load(open(sys.argv[1]))['dumps']); assert n == int(sys.argv[2]) > 0, (n, sys.argv[2])" \
        "$tmp/r.json" "$kept"
    echo "run_spool: full disk reported, the trace of the $kept dumps that fit reads"
fi
