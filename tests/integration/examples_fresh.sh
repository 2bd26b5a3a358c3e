#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The committed example traces must be exactly what gen_examples writes through the project's
# writer, so that their numbers keep the reasons written in gen_examples.c.
# Usage: examples_fresh.sh GEN_EXAMPLES COMMITTED_DIR SCRATCH_DIR
set -euo pipefail
gen=$1
committed=$2
scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
"$gen" "$scratch"
for f in browser.json equal.json; do
    diff -u "$committed/$f" "$scratch/$f"
done
echo "examples_fresh: committed examples match the generator"
