# SPDX-License-Identifier: MIT
#
# Shared by the shell tests that keep `shmtrack run` in the background while they probe it
# (integration/run_claims.sh, integration/run_probe_wire.sh, real/run_static.sh, real/run_nginx.sh):
# one temporary directory, one background run, one cleanup that ends the run (SIGTERM, then wait)
# and removes the directory however the test exits. Source it after `set -euo pipefail`.

# Makes $tmp and arms the cleanup; $run_pid is the background `shmtrack run` (empty: none).
st_run_init() {
    tmp=$(mktemp -d)
    run_pid=
    trap st_run_cleanup EXIT
}

st_run_cleanup() {
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -TERM "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}

# st_run_wait_ready OUT [LOG...]: waits up to 10 s for a line starting with "ready" in OUT while
# the run lives; otherwise prints why and the LOG files, and fails the test.
st_run_wait_ready() {
    local out=$1
    shift
    for _ in $(seq 100); do
        grep -q '^ready' "$out" && return 0
        kill -0 "$run_pid" 2>/dev/null || { echo "shmtrack run ended early"; cat "$@"; exit 1; }
        sleep 0.1
    done
    echo "no 'ready' line in $out after 10 s"
    cat "$@"
    exit 1
}

# Sends SIGTERM to the run (which forwards it to CMD), waits, and leaves its status in $rc.
st_run_stop() {
    kill -TERM "$run_pid"
    set +e
    wait "$run_pid"
    rc=$?
    set -e
    run_pid=
}
