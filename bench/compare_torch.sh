#!/usr/bin/env bash
# RefUNet against PyTorch in one run, alternated rounds (docs/performance.md, issue 11): each
# round runs, in this order,
#   1. bench_network: forward (thawed, keeping the activations, and frozen for inference: the
#      counterpart of PyTorch's no_grad forward) and training step of the default network (base
#      32, batch 64),
#      the training step by precision (float32, bf16) of the main recipe's network (base 16,
#      batch 32) and of the default one;
#   2. bench/torch_refunet.py: forward and training step of the default network;
#   3. bench/torch_refunet.py: the training step of the main recipe's network.
# and then the main recipe's training itself (`softdiff train`, 300 steps, float32 and bf16),
# reporting the steps per second the tool reports at the end. bf16 is skipped where AMX is
# missing (bench_network reports the error; the tool's refusal is printed).
#   bench/compare_torch.sh [BUILD_DIR] [ROUNDS]      (defaults: build, 3)
# Run on a quiet machine; everything is 2 threads (OMP_NUM_THREADS=2).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-3}
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
for exe in "$build/bench/bench_network" "$build/examples/softdiff"; do
  [ -x "$exe" ] || { echo "compare_torch.sh: $exe is missing (build with -DSOFTDIFF_BUILD_BENCH=ON)" >&2; exit 2; }
done
# shellcheck source=../scripts/recipe.sh
source scripts/recipe.sh
mapfile -t recipe < <(recipe_train_args; printf '%s\n' "${RECIPE_NET[@]}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for ((r = 1; r <= rounds; ++r)); do
  echo "== round $r $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
  "$build/bench/bench_network" --benchmark_filter='max_replicas:0|forward_frozen|train_step_precision' \
    --benchmark_report_aggregates_only=true 2>&1 | grep -E '_min|error' || true
  /usr/bin/python3 bench/torch_refunet.py --repeats 6
  /usr/bin/python3 bench/torch_refunet.py --base-channels 16 --batch 32 --only train_step --repeats 10
  for precision in float32 bf16; do
    rm -rf "$scratch/run"
    if "$build/examples/softdiff" train --out "$scratch/run" --steps 300 --seed 1 --sample-every 100000 \
      --precision "$precision" "${recipe[@]}" > "$scratch/log" 2>&1; then
      # the tool's closing line: "trained steps 0 -> 300 in 0m30s (9.9 steps/s); wrote ..."
      echo "softdiff train (main recipe, 300 steps) precision=$precision" \
        "steps_per_s=$(grep -o '([0-9.]* steps/s)' "$scratch/log" | tr -d '()' | cut -d' ' -f1)"
    else
      echo "softdiff train precision=$precision: $(tail -1 "$scratch/log")"
    fi
  done
done
