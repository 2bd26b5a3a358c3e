#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Installs the Debian packages shmtrack needs, only those missing. Usage: tools/deps.sh [build|test|real|bench]
#   build: compiler, CMake, pkg-config, uthash, jansson, cmocka, libmicrohttpd (serve)
#   test:  build + clang (libFuzzer, sanitizers) + clang-format + what the view/serve/export
#          tests drive: chromium, nodejs + npm (Playwright), protobuf-compiler (protoc --decode),
#          python3 (HTTP tests), prometheus (promtool check metrics)
#   real:  build + the programs the real-program tests (ctest -L real) drive: postgresql, python3,
#          nginx, chromium (and libc6-dev, in build-essential: static_prog links against libc.a)
#   bench: build + smem (tools/bench/bench_scan compares against it)
# Not root and something missing: prints the apt-get line to run and fails.
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config uthash-dev libjansson-dev libcmocka-dev libmicrohttpd-dev)
if [ "$what" = test ]; then
    pkgs+=(clang libclang-rt-14-dev clang-format)
    pkgs+=(chromium nodejs npm protobuf-compiler python3 prometheus)
fi
if [ "$what" = real ]; then
    pkgs+=(postgresql python3 nginx chromium)
fi
if [ "$what" = bench ]; then
    pkgs+=(smem)
fi
missing=()
for p in "${pkgs[@]}"; do
    # A node from elsewhere (e.g. NodeSource's nodejs) ships its own npm: Debian's would conflict.
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "shmtrack: missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "shmtrack: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
