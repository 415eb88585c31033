#!/usr/bin/env bash
# First command of README: install what is needed, build, run the showcase.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
./build/braid examples/showcase.lua
