#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real program: nginx (Debian's nginx package) with 3 workers, a cache manager and a cache loader,
# and two shared zones (limit_req_zone rl:1m, proxy_cache_path keys_zone=pc:1m) besides nginx's
# own small shared block (accept mutex and counters), under `shmtrack run`. The config lives in a
# private directory, listening on a free loopback port; the master runs as root (the test runs
# as root) and its workers as nginx's default user, nobody: they connect to the coordinator right
# after fork, while still root (SO_PEERCRED keeps the credentials of connect()), and whatever a
# worker cannot report (a refused reconnect as nobody) the /proc catch-all of run's process tree
# still counts, so every worker must be a holder either way.
#
# Load: 4 client threads for 3 s over loopback, through the rate limiter and through the proxy
# cache (which proxies to the same server); every answer must be 200 "ok". While the load runs:
# /proc snapshot (proc_truth.py), `shmtrack dump --socket`, /proc snapshot; once it ended, the
# same again on the idle server. Truth per object: st_blocks of the zone's shmem inode through
# /proc/PID/map_files (see proc_truth.py for why that is exact). Checks: each zone appears once,
# keyed by its inode, owned by the master (creator policy: it created every zone before forking),
# held by every nginx process; under load its resident bytes lie between the two snapshots, idle
# they equal both; the dump holds nothing the snapshots did not see. Then SIGTERM to
# `shmtrack run` is forwarded, nginx exits cleanly and run exits 0.
# Exit 77 (skipped) when nginx is not installed. Usage: run_nginx.sh BIN_DIR
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
ngx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$ngx" ] || { echo "SKIP: nginx not installed (tools/deps.sh real: apt-get install nginx)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: /proc/PID/map_files (the test's truth) needs root"; exit 77; }
. "$here/../run_lib.sh"
st_run_init
chmod 755 "$tmp" # the workers (nobody) read nothing here, but the cache directory is theirs
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 3;
pid $tmp/nginx.pid;
error_log $tmp/error.log notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    limit_req_zone \$binary_remote_addr zone=rl:1m rate=100000r/s;
    proxy_cache_path $tmp/cache keys_zone=pc:1m;
    server {
        listen 127.0.0.1:$port;
        location / { limit_req zone=rl burst=100000 nodelay; return 200 "ok\n"; }
        location /c/ { proxy_pass http://127.0.0.1:$port/; proxy_cache pc; proxy_cache_valid 200 1m; }
    }
}
CONF

"$bin/shmtrack" run -o "$tmp/t.json" --interval 1000 --socket "$tmp/s/st.sock" -- \
    "$ngx" -p "$tmp" -c "$tmp/nginx.conf" >"$tmp/run.out" 2>"$tmp/run.err" &
run_pid=$!
up=
for _ in $(seq 100); do
    if [ -s "$tmp/nginx.pid" ] && python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$run_pid" 2>/dev/null || { echo "shmtrack run ended early"; cat "$tmp/run.err" "$tmp/error.log"; exit 1; }
    sleep 0.1
done
[ -n "$up" ] || { echo "nginx not answering"; cat "$tmp/run.err" "$tmp/error.log"; exit 1; }
master=$(cat "$tmp/nginx.pid")

# The load: 4 threads, 3 s, half through the limiter, half through the proxy cache.
python3 - "$port" >"$tmp/load.out" <<'PY' &
import sys, threading, time, urllib.request
port, stop = sys.argv[1], time.time() + 3
counts = {"ok": 0, "bad": 0}
lock = threading.Lock()
def client(n):
    i = 0
    while time.time() < stop:
        path = f"/c/{n}-{i % 50}" if i % 2 else f"/r{i}"
        i += 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                good = r.status == 200 and r.read() == b"ok\n"
        except Exception:
            good = False
        with lock:
            counts["ok" if good else "bad"] += 1
ts = [threading.Thread(target=client, args=(n,)) for n in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(counts["ok"], counts["bad"])
PY
load_pid=$!
sleep 1.5
python3 "$here/proc_truth.py" "$master" "$tmp/busy.before.json"
"$bin/shmtrack" dump --socket "$tmp/s/st.sock" -o "$tmp/busy.json" >/dev/null
python3 "$here/proc_truth.py" "$master" "$tmp/busy.after.json"
wait "$load_pid"
read -r ok bad <"$tmp/load.out"
[ "$bad" -eq 0 ] && [ "$ok" -ge 100 ] || { echo "load: $ok answers ok, $bad not"; exit 1; }
python3 "$here/proc_truth.py" "$master" "$tmp/idle.before.json"
"$bin/shmtrack" dump --socket "$tmp/s/st.sock" -o "$tmp/idle.json" >/dev/null
python3 "$here/proc_truth.py" "$master" "$tmp/idle.after.json"

st_run_stop
[ "$rc" -eq 0 ] || { echo "shmtrack run exited $rc"; tail -n 20 "$tmp/run.err" "$tmp/error.log"; exit 1; }
grep -q "\[notice\] $master#$master: exit" "$tmp/error.log" || { echo "no clean exit"; tail "$tmp/error.log"; exit 1; }
[ -z "$(pgrep -s 0 -f "nginx: " || true)" ] || { echo "nginx processes left"; exit 1; }

for f in busy idle; do "$bin/shmtrack" report "$tmp/$f.json" --format json >"$tmp/$f.r.json"; done
"$bin/shmtrack" report "$tmp/t.json" --dump all --format json >"$tmp/t.r.json"
python3 - "$here" "$tmp" "$master" "$ok" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import proc_truth as pt
tmp, master, requests = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MiB = 1 << 20
trace = json.load(open(f"{tmp}/t.r.json"))
assert len(trace["dumps"]) >= 4, "periodic dumps missing from the run's trace"
for phase in ("busy", "idle"):
    before = json.load(open(f"{tmp}/{phase}.before.json"))
    after = json.load(open(f"{tmp}/{phase}.after.json"))
    d, objs = pt.dump_objects(f"{tmp}/{phase}.r.json")
    assert before["swap_in_use_kb"] == 0, "swap in use: st_blocks would count swapped pages"
    assert not d["partial"], d["warnings"]
    assert len(d["objects"]) == len(objs), f"{phase}: an object counted twice"
    nginx = set(before["pids"]) & set(after["pids"])
    assert len(nginx) >= 5, f"master + 3 workers + cache manager expected: {sorted(nginx)}"
    assert nginx <= {p["pid"] for p in d["processes"]}, (sorted(nginx), d["processes"])
    zones = [k for k, o in before["objects"].items() if o["kind"] == "anon"]
    # rl and pc are 1 MiB each; nginx's own block (accept mutex, counters) is smaller
    big = [k for k in zones if max(before["objects"][k]["holders"].values()) == MiB]
    assert len(big) == 2 and len(zones) >= 3, (phase, zones, big)
    bad = pt.bracket(before, objs, after)
    assert not bad, (phase, bad)
    for k in zones:
        o = objs[k]
        assert o["owner_pid"] == master, f"{phase} {k}: owner {o['owner_pid']} != master {master}"
        holders = {h["pid"] for h in o["holders"]}
        assert nginx <= holders, f"{phase} {k}: holders {sorted(holders)} lack {sorted(nginx - holders)}"
        assert sum(h["effective_size"] for h in o["holders"]) == o["size"], o["holders"]
        if phase == "idle":
            t = before["objects"][k]["resident"]
            assert t == after["objects"][k]["resident"] == o["size"], \
                f"idle {k}: dump {o['size']} != /proc {t}"
    print(f"real_nginx {phase}: dump {d['id']}: {len(d['processes'])} processes, zones " +
          ", ".join(f"{k} {objs[k]['size']} B" for k in sorted(zones)) + f", owner {master}")
print(f"real_nginx: {requests} requests answered 200; {len(trace['dumps'])} dumps in the trace")
PY
