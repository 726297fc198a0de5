#!/usr/bin/env bash
# Sampling throughput against a baseline build and PyTorch in one run, alternated rounds (issue
# 11, item 3; docs/performance.md "Session 15"). This VM's speed varies from day to day, so a
# speed-up is only measured against a baseline run the same day. Each round runs, in order:
#   1. the baseline build's bench_network: the main job's network (base 16) at batch 250;
#   2. this build's bench_network: the same, float32 and bf16 (bf16 reports an error where AMX
#      is missing);
#   3. bench/torch_refunet.py: PyTorch's forward of the same network at batch 250.
# Best of 2 repetitions of 2 calls (bench_network), best of 5 calls (PyTorch), in ms.
#   bench/compare_sampling.sh BASELINE_BUILD [BUILD_DIR] [THREADS] [ROUNDS]   (defaults: build, 2, 4)
# The issue's baseline is commit 5aaddb8:
#   git worktree add /tmp/baseline 5aaddb8 && cmake -S /tmp/baseline -B /tmp/baseline/build \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/baseline/build --target bench_network
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
baseline=$1
build=${2:-build}
threads=${3:-2}
rounds=${4:-4}
for exe in "$baseline/bench/bench_network" "$build/bench/bench_network"; do
  [ -x "$exe" ] || { echo "compare_sampling.sh: $exe is missing (build with -DSOFTDIFF_BUILD_BENCH=ON)" >&2; exit 2; }
done
export OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=passive
filter='sampling_nfe/base:16/batch:250'
best() {  # NAME EXE: one line per benchmark, "NAME ARGS ms"
  "$2" --benchmark_filter="$filter" --benchmark_repetitions=2 --benchmark_report_aggregates_only=true 2>&1 |
    grep -E '_min|error' | awk -v n="$1" '{sub(/\/iterations.*/, "", $1); print n, $1, $2}'
}
for ((r = 1; r <= rounds; ++r)); do
  echo "== round $r $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg) threads $threads"
  best baseline "$baseline/bench/bench_network"
  best current "$build/bench/bench_network"
  /usr/bin/python3 bench/torch_refunet.py --base-channels 16 --batch 250 --only forward --repeats 5 --warmup 2 |
    awk '{print "pytorch", $3}'
done
