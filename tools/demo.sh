#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# README's first command: installs the Debian packages that are missing (tools/deps.sh), configures
# and builds everything into build/, then runs the main job. Until the interposer exists the main
# job is `shmtrack report` over a bundled example trace (a broker and three workers sharing
# memory); a later issue replaces it with a live multi-process demo. The build log goes to
# build/demo-build.log and is shown only when the build fails.
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
echo "== build/bin/shmtrack report tests/data/examples/browser.json =="
build/bin/shmtrack report tests/data/examples/browser.json
