#!/usr/bin/env bash
# Training precision against training seed (docs/performance.md, "bf16 training"): for each
# PRECISION:SEED pair, train the main recipe (scripts/recipe.sh, RECIPE_STEPS steps) and score
# the checkpoint in float32 with each sampler at the main job's step count (naive 50, momentum
# 200; 1,000 samples per sampling seed, seeds 3 and 4, clipped), as scripts/main_job.sh would.
# Every stage is skipped when its output exists and an interrupted training resumes exactly, so
# the script can be rerun until it completes; the table at the end collects what is there.
#   scripts/precision_seeds.sh BUILD_DIR OUT_DIR PRECISION:SEED...
#   e.g. scripts/precision_seeds.sh build-mj out/seeds float32:1 bf16:1 float32:2 bf16:2
# Each run writes OUT_DIR/<precision>_seed<seed>/ (checkpoint, loss.csv, eval_naive50/,
# eval_momentum200/); OUT_DIR/summary.csv has one row per run and sampler.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: $0 BUILD_DIR OUT_DIR PRECISION:SEED..." >&2; exit 2; }
tool=$1/examples/softdiff
out=$2
shift 2
[ -x "$tool" ] || { echo "precision_seeds.sh: $tool is missing (build the softdiff_cli target)" >&2; exit 2; }
# shellcheck source=recipe.sh
source scripts/recipe.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mapfile -t recipe < <(recipe_train_args; printf '%s\n' "${RECIPE_NET[@]}")
for run in "$@"; do  # every pair checked before anything is trained
  case "${run%%:*}" in float32 | bf16) ;; *) echo "precision_seeds.sh: bad precision in '$run' (float32 or bf16)" >&2; exit 2 ;; esac
  [[ "$run" =~ :[0-9]+$ ]] || { echo "precision_seeds.sh: bad seed in '$run' (PRECISION:SEED, SEED a whole number)" >&2; exit 2; }
done
mkdir -p "$out"
for run in "$@"; do
  precision=${run%%:*}
  seed=${run#*:}
  dir=$out/${precision}_seed$seed
  args=()  # a resumed run takes recipe, seed and precision from its checkpoint
  [ -f "$dir/checkpoint.safetensors" ] || args=(--seed "$seed" --precision "$precision" "${recipe[@]}")
  echo "== $run $(date -u +%H:%M:%S)"
  "$tool" train --out "$dir" --steps "$RECIPE_STEPS" --minutes 600 --sample-every 1000 ${args[@]+"${args[@]}"}
  for s in "naive $MAIN_JOB_NAIVE_STEPS" "momentum $MAIN_JOB_MOMENTUM_STEPS"; do
    read -r sampler steps <<< "$s"
    e=$dir/eval_$sampler$steps
    [ -f "$e/summary.json" ] && continue
    "$tool" eval --ckpt "$dir/checkpoint.safetensors" --sampler "$sampler" --steps "$steps" \
      --count 1000 --seeds 3,4 --clip on --out "$e" --precision float32
  done
done
{
  echo "precision,seed,sampler,steps,frechet_seed3,frechet_seed4,frechet_mean"
  for d in "$out"/*_seed*/; do
    name=$(basename "$d")
    for m in "$d"eval_*/metrics.csv; do
      [ -f "$m" ] || continue
      awk -F, -v p="${name%_seed*}" -v s="${name#*_seed}" '
        NR > 1 && $4 == 3 { f3 = $6; sampler = $1; steps = $2 }
        NR > 1 && $4 == 4 { f4 = $6 }
        NR > 1 && $4 == "mean" { fm = $6 }
        END { print p "," s "," sampler "," steps "," f3 "," f4 "," fm }' "$m"
    done
  done
} > "$out/summary.csv.tmp"
mv "$out/summary.csv.tmp" "$out/summary.csv"
column -s, -t "$out/summary.csv"
