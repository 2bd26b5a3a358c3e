#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# CLI integration test of `shmtrack report`: runs the real binary over the bundled examples
# (tests/data/examples) and compares stdout with the golden outputs in tests/data/report, whose
# numbers were checked by hand against the arithmetic in tests/integration/gen_examples.c; then
# the error cases, each with its exit status (2) and its exact one-line message on stderr.
# Usage: report_cli.sh SHMTRACK_BINARY DATA_DIR. SHMTRACK_UPDATE_GOLDEN=1 rewrites the goldens
# (review every changed number by hand before committing them).
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
data=$(cd "$2" && pwd)
golden=$data/report
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# golden NAME ARGS...: stdout must equal $golden/NAME, stderr empty, exit 0.
golden() {
    local name=$1
    shift
    local rc=0
    (cd "$data/examples" && "$bin" report "$@") >"$work/out" 2>"$work/err" || rc=$?
    if [ "${SHMTRACK_UPDATE_GOLDEN:-0}" = 1 ]; then
        cp "$work/out" "$golden/$name"
    fi
    [ "$rc" -eq 0 ] || fail "report $*: exit $rc: $(cat "$work/err")"
    [ ! -s "$work/err" ] || fail "report $*: unexpected stderr: $(cat "$work/err")"
    if ! diff -u "$golden/$name" "$work/out" >"$work/diff"; then
        fail "report $* differs from $name:"
        cat "$work/diff" >&2
    fi
}

# error STATUS LINE ARGS...: exit status STATUS, stderr exactly LINE, stdout empty.
error() {
    local want_rc=$1 want=$2
    shift 2
    local rc=0
    (cd "$data/examples" && "$bin" report "$@") >"$work/out" 2>"$work/err" || rc=$?
    [ "$rc" -eq "$want_rc" ] || fail "report $*: exit $rc, want $want_rc"
    [ "$(cat "$work/err")" = "$want" ] ||
        fail "report $*: stderr '$(cat "$work/err")', want '$want'"
    [ ! -s "$work/out" ] || fail "report $*: unexpected stdout"
}

golden browser.txt browser.json
golden browser-all-bytes.txt browser.json --dump all --bytes
golden browser-0x1.json --dump 0x1 --format json browser.json
golden browser-all.json browser.json --dump=all --format=json
golden browser-all.csv browser.json -d all -f csv
golden equal.txt equal.json --dump last
golden equal.json equal.json --format json
# "-" reads stdin
rc=0
(cd "$data/examples" && "$bin" report - <browser.json) >"$work/out" 2>"$work/err" || rc=$?
[ "$rc" -eq 0 ] && cmp -s "$work/out" "$golden/browser.txt" || fail "report - <browser.json"

error 2 "shmtrack report: missing.json: cannot open: No such file or directory" missing.json
error 2 "$(cat "$golden/bad-hex.stderr")" ../report/bad-hex.json
error 2 "$(cat "$golden/truncated.stderr")" ../report/truncated.json
error 2 "shmtrack report: unknown format 'xml' (table, json or csv)" browser.json --format xml
error 2 "shmtrack report: browser.json: no dump with id 0x9" browser.json --dump 0x9
error 2 "shmtrack report: --dump wants a hexadecimal id, 'last' or 'all', not 'first'" \
    browser.json --dump first
error 2 "shmtrack report: missing TRACE (see --help)"
error 2 "shmtrack report: unexpected argument 'equal.json' (see --help)" browser.json equal.json
error 2 "shmtrack report: unknown option '--frmat' (see --help)" browser.json --frmat json
error 2 "shmtrack report: option '--dump' needs a value (see --help)" browser.json --dump

# --help: exit 0 on stdout, and every option it names is one the parser takes.
rc=0
"$bin" report --help >"$work/help" 2>"$work/err" || rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$work/err" ] || fail "report --help: exit $rc"
for opt in $(grep -o -- '--[a-z]\+' "$work/help" | sort -u); do
    case $opt in
    --help) continue ;;
    --bytes) args=("$opt") ;;
    --dump) args=("$opt" last) ;;
    --format) args=("$opt" table) ;;
    *)
        fail "--help names $opt, which this test does not know"
        continue
        ;;
    esac
    (cd "$data/examples" && "$bin" report browser.json "${args[@]}") >/dev/null 2>&1 ||
        fail "--help names $opt but 'report browser.json ${args[*]}' fails"
done

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "report_cli: all checks passed"
