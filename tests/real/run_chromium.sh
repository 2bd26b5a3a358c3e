#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real program: Chromium headless (Debian's chromium) rendering a local page under `shmtrack run`:
#   chromium --headless --no-sandbox --no-zygote --disable-gpu --disable-background-networking
#            --disable-component-update --remote-debugging-port=0 --user-data-dir=TMP page.html
# The browser must keep working: DevTools (/json/list) shows the page with the title its
# JavaScript computed, before and after the dump. Every memfd / shm / shared anonymous object of
# the browser's process tree (everything under `shmtrack run`, so crashpad's double-forked handler
# too) must be counted once: the test reads the tree's objects from /proc itself (proc_truth.py:
# unique (dev, ino) of shmem mappings and memfd / /dev/shm descriptors, st_blocks through
# map_files), before and after an on-demand dump. Objects both snapshots saw must be in the dump,
# once, with resident bytes between the two kernel counts; the dump must hold nothing neither
# snapshot saw. Chromium creates and frees short-lived regions at any time, so a window in which
# that happened is measured again (up to 4 windows). Then SIGTERM to `shmtrack run` is forwarded
# and the whole tree must end.
#
# Default --no-zygote (every process a client); --zygote runs Chromium as it normally runs. Its
# zygote CHECKs that it is single-threaded before it forks, so the preload starts no agent thread
# in a process with --type=zygote (otherwise the zygote dies with SIGTRAP and the browser aborts);
# the coordinator's scan of the tree counts what it and the children it clones hold.
# Exit 77 (skipped) when chromium is not installed. Usage: run_chromium.sh BIN_DIR [--zygote]
set -euo pipefail
bin=$1
mode=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "SKIP: chromium not installed (tools/deps.sh real: apt-get install chromium)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: /proc/PID/map_files (the test's truth) needs root"; exit 77; }
tmp=$(mktemp -d)
run_pid=
cleanup() {
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -TERM "$run_pid" 2>/dev/null || true
        sleep 2
        kill -KILL "$run_pid" 2>/dev/null || true
        pkill -KILL -f -- "--user-data-dir=$tmp/ud" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cp "$here/chromium_page.html" "$tmp/page.html"
zygote=(--no-zygote)
[ "$mode" = --zygote ] && zygote=()

"$bin/shmtrack" run -o "$tmp/t.json" --interval 0 --deadline 5000 --socket "$tmp/s/st.sock" -- \
    "$chromium" --headless --no-sandbox "${zygote[@]}" --disable-gpu --disable-background-networking \
    --disable-component-update --no-first-run --remote-debugging-port=0 --user-data-dir="$tmp/ud" \
    "file://$tmp/page.html" >"$tmp/run.out" 2>"$tmp/run.err" &
run_pid=$!

# DevTools: the port Chromium chose, then the page's title as its script set it.
title() {
    python3 - "$1" <<'PY'
import json, sys, urllib.request
targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/list", timeout=5))
print(" ".join(t["title"] for t in targets if t.get("type") == "page" and t["url"].endswith("/page.html")))
PY
}
port=
for _ in $(seq 200); do
    kill -0 "$run_pid" 2>/dev/null || { echo "shmtrack run ended early"; grep -E "FATAL|ERROR" "$tmp/run.err" | tail -5; exit 1; }
    if [ -z "$port" ] && [ -s "$tmp/ud/DevToolsActivePort" ]; then port=$(head -n 1 "$tmp/ud/DevToolsActivePort"); fi
    if [ -n "$port" ] && [ "$(title "$port" 2>/dev/null)" = shmtrack-499500 ]; then break; fi
    sleep 0.2
done
[ -n "$port" ] && [ "$(title "$port")" = shmtrack-499500 ] ||
    { echo "the page did not render (DevTools port '$port')"; grep -E "FATAL|ERROR" "$tmp/run.err" | tail -5; exit 1; }
sleep 1 # let start-up settle

ok=
for w in 1 2 3 4; do
    python3 "$here/proc_truth.py" "$run_pid" "$tmp/before.json" --no-root
    "$bin/shmtrack" dump --socket "$tmp/s/st.sock" -o "$tmp/d$w.json" >/dev/null
    python3 "$here/proc_truth.py" "$run_pid" "$tmp/after.json" --no-root
    "$bin/shmtrack" report "$tmp/d$w.json" --format json >"$tmp/d.r.json"
    if python3 - "$here" "$tmp" "$w" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import proc_truth as pt
tmp, w = sys.argv[2], sys.argv[3]
before, after = json.load(open(f"{tmp}/before.json")), json.load(open(f"{tmp}/after.json"))
d, objs = pt.dump_objects(f"{tmp}/d.r.json")
assert before["swap_in_use_kb"] == 0, "swap in use: st_blocks would count swapped pages"
assert len(d["objects"]) == len(objs), "an object counted twice"
assert not d["partial"], d["warnings"]
stable = set(before["objects"]) & set(after["objects"])
assert len(stable) >= 5, f"too few shared objects for a browser: {sorted(stable)}"
assert set(before["pids"]) & set(after["pids"]) <= {p["pid"] for p in d["processes"]}, \
    "a process of the tree is missing from the dump"
for k, o in objs.items():
    assert sum(h["effective_size"] for h in o["holders"]) == o["size"] or o["size"] == 0, o
bad = pt.bracket(before, objs, after)
if bad:
    print(f"window {w}: " + "; ".join(bad[:5]))
    sys.exit(3)
kinds = sorted({objs[k]["kind"] for k in stable})
print(f"real_chromium: dump {d['id']} (window {w}): {len(d['processes'])} processes, "
      f"{len(objs)} objects ({len(stable)} in both /proc snapshots, kinds {kinds}), "
      f"{sum(o['size'] for o in objs.values())} resident bytes, each once, matching /proc")
PY
    then
        ok=1
        break
    else
        [ $? -eq 3 ] || exit 1
    fi
done
[ -n "$ok" ] || { echo "no window without objects created or freed in between"; exit 1; }
[ "$(title "$port")" = shmtrack-499500 ] || { echo "DevTools stopped answering after the dump"; exit 1; }

kill -TERM "$run_pid"
for _ in $(seq 150); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$run_pid" 2>/dev/null && { echo "chromium did not end on the forwarded SIGTERM"; exit 1; }
set +e
wait "$run_pid"
rc=$?
set -e
run_pid=
grep -q "wrote $tmp/t.json" "$tmp/run.err" || { echo "no trace written"; tail -5 "$tmp/run.err"; exit 1; }
echo "real_chromium: the browser ended on SIGTERM; shmtrack run exited $rc"
