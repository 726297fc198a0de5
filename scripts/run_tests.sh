#!/usr/bin/env bash
# Builds softdiff and runs every test (ctest prints the summary last).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
build=${SOFTDIFF_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${SOFTDIFF_CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)"
cd "$build"
OMP_NUM_THREADS=$(nproc) ctest --output-on-failure --timeout 1200 -j 1
