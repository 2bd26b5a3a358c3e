#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# README's first command: installs the Debian packages that are missing (tools/deps.sh), configures
# and builds everything into build/, then runs the main job: the bundled browser-shaped program
# (tools/demo/shmtrack_demo.c: a broker, a network process, a GPU process and two renderers
# sharing memfds and shared anonymous memory) under `shmtrack run`, and the report of its last
# global dump. The build log goes to build/demo-build.log and is shown only when the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh build
jobs=$(nproc)
mkdir -p build
echo "== configuring and building into build/ (log: build/demo-build.log) =="
if ! { cmake -S . -B build && cmake --build build -j"$jobs"; } >build/demo-build.log 2>&1; then
    cat build/demo-build.log >&2
    echo "demo: the build failed (log above)" >&2
    exit 1
fi
echo "== build/bin/shmtrack run -o build/demo-trace.json --interval 500 -- build/bin/shmtrack-demo =="
build/bin/shmtrack run -o build/demo-trace.json --interval 500 -- build/bin/shmtrack-demo --seconds 2
echo "== build/bin/shmtrack report build/demo-trace.json =="
build/bin/shmtrack report build/demo-trace.json
