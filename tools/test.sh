#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The whole test suite, as CI runs it: installs what is missing, then
#   1. Release build with -Wall -Wextra -Werror, every ctest label but real; then the real-program
#      tests (label real: PostgreSQL, Python shared_memory, nginx, Chromium, a static binary) after tools/deps.sh real installs them
#   2. Debug build with ASan+UBSan, every ctest label but real
#   3. TSan build, the tests labelled tsan (ipc, coordinator, scan, trace writer, graph processor)
#   4. the libFuzzer targets for a bounded time each (SHMTRACK_FUZZ_SECONDS, default 60)
#   5. clang-format check of every C source
# Build trees: build-release/, build-asan/, build-tsan/, build-fuzz/. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh test
jobs=$(nproc)

echo "== release build (-Werror) =="
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DSHMTRACK_WERROR=ON >/dev/null
cmake --build build-release -j"$jobs"
ctest --test-dir build-release -j"$jobs" --output-on-failure -LE real
echo "== real programs (Release) =="
tools/deps.sh real
ctest --test-dir build-release --output-on-failure -L real

echo "== ASan+UBSan build =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSHMTRACK_WERROR=ON -DSHMTRACK_SANITIZE=ON \
    -DSHMTRACK_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -j"$jobs" --output-on-failure -LE real

echo "== TSan build (the tests that run threads) =="
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSHMTRACK_WERROR=ON -DSHMTRACK_TSAN=ON \
    -DSHMTRACK_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$jobs"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan -L tsan --output-on-failure

echo "== fuzz =="
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSHMTRACK_FUZZ=ON -DBUILD_TESTING=OFF \
    -DSHMTRACK_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs"
seconds=${SHMTRACK_FUZZ_SECONDS:-60}
for fuzzer in build-fuzz/fuzz/*; do
    [ -x "$fuzzer" ] || continue
    name=$(basename "$fuzzer")
    corpus=$(mktemp -d)
    cp tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
    echo "-- $name for ${seconds}s"
    "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus" 2>&1 | tail -n 4
    rm -rf "$corpus"
done

echo "== clang-format =="
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
echo "all checks passed"
