#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The install contract: `cmake --install` into a temporary prefix gives bin/shmtrack, the public
# header, lib/libshmtrack.so, a relocatable pkg-config file and a CMake package; a program built
# with find_package(shmtrack) runs without the preload (-ENOSYS = -38) and with it (0); the
# installed `shmtrack run` finds its preload. Usage: install_package.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/inst" >/dev/null
for f in bin/shmtrack include/shmtrack/shmtrack.h lib/libshmtrack.so lib/pkgconfig/shmtrack.pc \
         lib/cmake/shmtrack/shmtrackConfig.cmake; do
    [ -e "$tmp/inst/$f" ] || { echo "not installed: $f"; exit 1; }
done
cflags=$(PKG_CONFIG_PATH="$tmp/inst/lib/pkgconfig" pkg-config --cflags shmtrack | tr -d " ")
[ -f "${cflags#-I}/shmtrack/shmtrack.h" ] || { echo "pkg-config points elsewhere: $cflags"; exit 1; }
cmake -S "$src/tests/integration/consumer" -B "$tmp/c" -DCMAKE_PREFIX_PATH="$tmp/inst" >/dev/null
cmake --build "$tmp/c" >/dev/null
out=$("$tmp/c/consumer")
[ "$out" = "label=-38 importance=-38" ] || { echo "without preload: $out"; exit 1; }
out=$(LD_PRELOAD="$tmp/inst/lib/libshmtrack.so" "$tmp/c/consumer")
[ "$out" = "label=0 importance=0" ] || { echo "with preload: $out"; exit 1; }
(cd "$tmp" && "$tmp/inst/bin/shmtrack" run -o "$tmp/t.json" -- "$tmp/c/consumer" >/dev/null 2>&1)
[ -s "$tmp/t.json" ] || { echo "installed run wrote no trace"; exit 1; }
echo "install_package: ok"
