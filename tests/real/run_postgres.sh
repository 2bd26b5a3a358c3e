#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real program: PostgreSQL (Debian's postgresql package) under `shmtrack run --interval 500`.
# initdb into a private directory, start the postmaster under shmtrack run as the postgres user (or
# as the caller when not root) with a private unix socket directory and no TCP listener, load it with
# `pgbench -i -s 1` and `pgbench -T 3 -c 4`, and while pgbench runs take an on-demand dump
# (`shmtrack dump --socket`) and, right after it, `shmtrack scan --tree POSTMASTER` as the
# independent /proc view. Checks: the main segment (shared anonymous, PG's shared_memory_type=mmap),
# the small SysV header segment and the POSIX DSM control segment (/dev/shm/PostgreSQL.N) appear
# exactly once each, with the keys the /proc scan finds in the postmaster, owned by the postmaster
# (its pid from postmaster.pid); every DSM segment appears once and is owned by a PostgreSQL process;
# every object's size is at most its virtual size (page-rounded) and its holders' effective bytes
# sum to it; the server stops cleanly with `pg_ctl stop -m fast` and `shmtrack run` exits 0.
# With --resident the dump and the scan are taken once pgbench has finished (an idle server, so
# residency stands still between them) and every object's resident bytes must equal the scan's.
# Exit 77 (skipped) when PostgreSQL is not installed. Usage: run_postgres.sh BIN_DIR [--resident]
set -euo pipefail
bin=$1
resident=${2:-}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && [ -x "$pgbin/postgres" ] && [ -x "$pgbin/pgbench" ] ||
    { echo "SKIP: PostgreSQL not installed (tools/deps.sh real: apt-get install postgresql)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
tmp=$(mktemp -d)
as=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "SKIP: no postgres user (package not installed)"; exit 77; }
    as=(runuser -u postgres --)
    chown postgres: "$tmp"
fi
chmod 700 "$tmp"
run_pid=
cleanup() {
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        "${as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" stop -m immediate >/dev/null 2>&1 || true
        kill "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
port=5432
pg=(-h "$tmp" -p "$port")

"${as[@]}" "$pgbin/initdb" -D "$tmp/data" -A trust -U postgres --no-sync >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log"; exit 1; }
"${as[@]}" "$bin/shmtrack" run -o "$tmp/t.json" --interval 500 --socket "$tmp/st.sock" -- \
    "$pgbin/postgres" -D "$tmp/data" -k "$tmp" -p "$port" -c listen_addresses= -c max_connections=20 \
    >"$tmp/run.out" 2>"$tmp/run.err" &
run_pid=$!
for _ in $(seq 100); do
    "${as[@]}" "$pgbin/pg_isready" "${pg[@]}" -q && break
    kill -0 "$run_pid" 2>/dev/null || { echo "shmtrack run ended early"; cat "$tmp/run.err"; exit 1; }
    sleep 0.2
done
"${as[@]}" "$pgbin/pg_isready" "${pg[@]}" -q || { echo "server not ready"; cat "$tmp/run.err"; exit 1; }
postmaster=$(head -n 1 "$tmp/data/postmaster.pid")

"${as[@]}" "$pgbin/pgbench" "${pg[@]}" -i -s 1 postgres >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log"; exit 1; }
# The postmaster's children (from /proc/PID/stat: the fields after the command's ')' are state,
# ppid, ...), to know when pgbench's backends are gone.
children() {
    local n=0 f s
    for f in /proc/[0-9]*/stat; do
        { read -r s <"$f"; } 2>/dev/null || continue
        s=${s##*) }
        set -- $s
        if [ "${2:-}" = "$postmaster" ]; then n=$((n + 1)); fi
    done
    echo "$n"
}
idle_children=$(children)
"${as[@]}" "$pgbin/pgbench" "${pg[@]}" -T 3 -c 4 postgres >"$tmp/bench.log" 2>&1 &
bench_pid=$!
if [ "$resident" = --resident ]; then
    wait "$bench_pid" # an idle server: residency stands still between the dump and the scan
    # pgbench's backends exit after pgbench does; one that exits during the dump leaves it
    # before answering, and the dump is then rightly partial: wait until they are gone (5 s)
    for _ in $(seq 50); do
        [ "$(children)" -le "$idle_children" ] && break
        sleep 0.1
    done
else
    sleep 1.5
fi
"${as[@]}" "$bin/shmtrack" dump --socket "$tmp/st.sock" -o "$tmp/d.json" >/dev/null
"$bin/shmtrack" scan --tree "$postmaster" -o "$tmp/s.json"
wait "$bench_pid" 2>/dev/null || [ "$resident" = --resident ] || { echo "pgbench failed"; cat "$tmp/bench.log"; exit 1; }
grep -q '^tps = ' "$tmp/bench.log" || { cat "$tmp/bench.log"; exit 1; }

"${as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" stop -m fast -w -t 30 >/dev/null
set +e
wait "$run_pid"
rc=$?
set -e
run_pid=
[ "$rc" -eq 0 ] || { echo "shmtrack run exited $rc"; tail -n 20 "$tmp/run.err"; exit 1; }
grep -q 'database system is shut down' "$tmp/run.err" || { echo "no clean shutdown"; tail "$tmp/run.err"; exit 1; }

"$bin/shmtrack" report "$tmp/d.json" --format json >"$tmp/d.r.json"
"$bin/shmtrack" report "$tmp/s.json" --format json >"$tmp/s.r.json"
"$bin/shmtrack" report "$tmp/t.json" --dump all --format json >"$tmp/t.r.json"
python3 - "$tmp/d.r.json" "$tmp/s.r.json" "$tmp/t.r.json" "$postmaster" "$resident" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["dumps"][-1]
s = json.load(open(sys.argv[2]))["dumps"][-1]
trace = json.load(open(sys.argv[3]))
pm, resident = int(sys.argv[4]), sys.argv[5] == "--resident"
PAGE = 4096
assert len(trace["dumps"]) >= 2, "periodic dumps missing from the run's trace"
assert not d["partial"], d["warnings"]
if d["warnings"]:
    print("dump warnings:", d["warnings"])
pids = {p["pid"] for p in d["processes"]}
assert pm in pids, f"postmaster {pm} not in the dump"
assert len(d["objects"]) == len({o["key"] for o in d["objects"]}), "an object counted twice"
by_key = {o["key"]: o for o in d["objects"]}
for o in d["objects"]:
    vround = -(-o["virtual_size"] // PAGE) * PAGE
    assert 0 <= o["size"] <= vround, f"{o['key']}: size {o['size']} > virtual {o['virtual_size']}"
    eff = sum(h["effective_size"] for h in o["holders"])
    assert eff == o["size"], f"{o['key']}: holders sum {eff} != {o['size']}"
# What the /proc scan of the postmaster finds, by kind: one anon (main segment), one sysv
# (PGShmemHeader), the posix DSM control segment; each must be in the dump, once, owned by it.
wrong = []
seen = {k: [o for o in s["objects"] if o["kind"] == k and any(h["pid"] == pm for h in o["holders"])]
        for k in ("anon", "sysv", "posix")}
assert len(seen["anon"]) == 1 and len(seen["sysv"]) == 1, seen
assert any(o["name"].split("/")[-1].startswith("PostgreSQL.") for o in seen["posix"]), seen["posix"]
for kind, objs in seen.items():
    for so in objs:
        assert so["key"] in by_key, f"{kind} {so['key']} ({so['name']}) missing from the dump"
        o = by_key[so["key"]]
        assert o["owner_pid"] == pm, f"{so['key']}: owner {o['owner_pid']} != postmaster {pm}"
        assert o["virtual_size"] == so["virtual_size"], (o, so)
        if resident and o["size"] != so["size"]:
            wrong.append(f"{so['key']} {so['name']}: dump {o['size']} != /proc {so['size']}")
assert not wrong, "resident bytes differ from the /proc scan: " + "; ".join(wrong)
if resident:  # every object of the server's tree, not only the postmaster's, in exact bytes
    scanned = {o["key"]: o for o in s["objects"]}
    for o in d["objects"]:
        so = scanned.get(o["key"])
        assert so is not None, f"{o['key']} ({o['name']}) not found by the /proc scan"
        if o["size"] != so["size"]:
            wrong.append(f"{o['key']} {o['name']}: dump {o['size']} != /proc {so['size']}")
    assert not wrong, "resident bytes differ from the /proc scan: " + "; ".join(wrong)
names = [o["name"] for o in d["objects"] if o["kind"] == "posix" and "PostgreSQL." in o["name"]]
assert len(names) == len(set(names)) >= 1, names
for o in d["objects"]:
    if o["kind"] == "posix" and "PostgreSQL." in o["name"]:
        assert o["owner_pid"] in pids, f"{o['name']}: owner {o['owner_pid']} not a PostgreSQL process"
print(f"real_postgres: postmaster {pm}; dump {d['id']}: {len(d['processes'])} processes, "
      f"{len(d['objects'])} objects ({len(names)} DSM); {len(trace['dumps'])} dumps in the trace")
PY
