#!/usr/bin/env bash
# Reproduces the paper's ablations on Fashion-MNIST with one command (docs/reproductions.md):
#   (a) samplers against NFE on the main model: momentum (Algorithm 2), naive (Algorithm 1),
#       probability-flow momentum (eq. 51), DDIM-type (eq. 52), predictor-corrector;
#   (b) Soft Score Matching (eq. 12) against the clean-image loss and DSM (eq. 7);
#   (c) Wasserstein schedule (section 3.3) against MSE-matched (eq. 55) and geometric;
#   (d) three values of sigma_max;
#   (e) fixed noise during the blur stage against noise growing with the blur (appendix F.1).
# Every variant is trained with two seeds; the spread over them is reported. The main model is
# the main job's recipe (scripts/recipe.sh) at the main job's length; each ablation changes one
# thing of the recipe and is compared with the recipe trained as long (recipe-short).
#
# Usage: bash scripts/reproduce.sh [--quick] [--out DIR] [--tool PATH]
#   --quick   tiny networks and a few steps (a few minutes): checks that every row is produced
#   --out     output directory (default out/reproduce, or out/reproduce_quick with --quick)
#   --tool    a built softdiff binary (default: build it into $SOFTDIFF_BUILD_DIR, default build)
# Writes DIR/results.csv, DIR/results.md and DIR/*.png. Run it again to resume: finished
# trainings and evaluations are kept, an interrupted training resumes from its checkpoint.
# The two seeds of a variant train at once, sharing the cores (bitwise the same on any thread count).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
out=""
tool=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --tool) tool=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "reproduce.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || out=$([ $quick = 1 ] && echo out/reproduce_quick || echo out/reproduce)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "$tool" ]; then
  bash scripts/install_deps.sh python3-matplotlib
  build=${SOFTDIFF_BUILD_DIR:-build}
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target softdiff_cli -j "$(nproc)"
  tool=$root/$build/examples/softdiff
fi
[ -x "$tool" ] || { echo "reproduce.sh: no softdiff binary at '$tool'" >&2; exit 2; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export SOFTDIFF_PROGRESS_SECONDS=${SOFTDIFF_PROGRESS_SECONDS:-60}

# shellcheck source=recipe.sh
source scripts/recipe.sh
seeds=(1 2)
if [ $quick = 1 ]; then
  # tiny: 16-channel nets are the smallest RefUNet that still learns in 40 steps
  RECIPE_NET=(--base-channels 8 --channel-mult 1,2 --batch 16 --limit 512 --lr 2e-3 --warmup 5 --ema-decay 0.9)
  train_steps=40; main_steps=40
  eval_common=(--reference 64 --chunk 64)
  main_count=64; ablation_count=64
  eval_main_steps=2,4; eval_ablation_steps=4
  sched_args=(--levels 24 --target 6 --slice 200)
else
  main_steps=$RECIPE_STEPS            # the main job's budget (scripts/recipe.sh)
  train_steps=$REPRODUCE_ABLATION_STEPS
  eval_common=(--chunk 250)
  main_count=$REPRODUCE_MAIN_EVAL_COUNT; ablation_count=$REPRODUCE_ABLATION_EVAL_COUNT
  eval_main_steps=$REPRODUCE_MAIN_EVAL_STEPS
  eval_ablation_steps=$REPRODUCE_ABLATION_EVAL_STEPS
  sched_args=()
fi

log() { echo "[$(date +%H:%M:%S)] $*"; }

# The Wasserstein schedule of the main recipe's operator and noise (softdiff schedule).
wschedule=$out/wasserstein_schedule.json
if [ ! -f "$wschedule" ]; then
  log "computing the Wasserstein schedule (softdiff schedule)"
  "$tool" schedule --op "$RECIPE_OP" --sigma-min "$RECIPE_SIGMA_MIN" --sigma-max "$RECIPE_SIGMA_MAX" \
    --noise-fraction "$RECIPE_NOISE_FRACTION" ${sched_args[@]+"${sched_args[@]}"} --out "$wschedule" >"$out/schedule.log" 2>&1 ||
    { cat "$out/schedule.log" >&2; exit 1; }
fi

# variant name | groups | what differs from the main recipe (RECIPE_* assignments, scripts/recipe.sh).
# The main model (the main job's training length) is group (a). In (b)-(e) the recipe's row is
# the recipe trained as long as the variants (recipe-short), so that each comparison changes
# one thing and not the training length too; each other variant changes one thing.
variants=("main|a|" "recipe-short|b,c,d,e|")
for loss in ssm clean dsm; do
  [ "$loss" = "$RECIPE_LOSS" ] || variants+=("loss-$loss|b|RECIPE_LOSS=$loss")
done
for kind in geometric wasserstein mse-matched; do
  [ "$kind" = "$RECIPE_SCHEDULE_KIND" ] || variants+=("schedule-$kind|c|RECIPE_SCHEDULE_KIND=$kind")
done
for sigma in "${REPRODUCE_SIGMA_VALUES[@]}"; do variants+=("sigma-max-$sigma|d|RECIPE_SIGMA_MAX=$sigma"); done
for mode in fixed growing; do
  [ "$mode" = "$RECIPE_NOISE_MODE" ] || variants+=("noise-$mode|e|RECIPE_NOISE_MODE=$mode")
done
RECIPE_SCHEDULE_FILE=$wschedule

total=$(( ${#variants[@]} * ${#seeds[@]} ))
k=0
train_one() {  # name seed steps assignments threads
  local name=$1 seed=$2 steps=$3 assign=$4
  local dir=$out/models/$name/seed$seed
  mkdir -p "$dir"
  local -a recipe=()
  # a new run gets the recipe; a resumed one takes it from its checkpoint
  [ -f "$dir/checkpoint.safetensors" ] || mapfile -t recipe < <(eval "$assign"; recipe_train_args; printf '%s\n' "${RECIPE_NET[@]}")
  OMP_NUM_THREADS=$5 "$tool" train --out "$dir" --steps "$steps" --seed "$seed" --sample-every 0 \
    ${recipe[@]+"${recipe[@]}"} >>"$dir/train.log" 2>&1 ||
    { echo "training $name seed $seed failed; see $dir/train.log:" >&2; tail -n 5 "$dir/train.log" >&2; return 1; }
  echo "$steps" >"$dir/trained"
}

for v in "${variants[@]}"; do
  IFS='|' read -r name groups extra <<<"$v"
  steps=$([ "$name" = main ] && echo "$main_steps" || echo "$train_steps")
  k=$((k + ${#seeds[@]}))
  log "[$k/$total] training $name (seeds ${seeds[*]}, $steps steps each, two at once): $extra"
  # $dir/trained marks a finished training; the cores are shared among the unfinished ones
  # (training is bitwise the same on any thread count).
  todo=()
  for seed in "${seeds[@]}"; do
    [ "$(cat "$out/models/$name/seed$seed/trained" 2>/dev/null)" = "$steps" ] || todo+=("$seed")
  done
  [ ${#todo[@]} -gt 0 ] || continue
  threads=$(( $(nproc) / ${#todo[@]} )); [ "$threads" -ge 1 ] || threads=1
  pids=()
  for seed in "${todo[@]}"; do
    train_one "$name" "$seed" "$steps" "$extra" "$threads" &
    pids+=($!)
  done
  # progress: the last line of each training log every minute until both are done
  declare -A shown=()
  while kill -0 "${pids[@]}" 2>/dev/null; do
    sleep "$([ $quick = 1 ] && echo 2 || echo 60)"
    for seed in "${todo[@]}"; do
      l=$(tail -n 1 "$out/models/$name/seed$seed/train.log" 2>/dev/null || true)
      [ -n "$l" ] && [ "$l" != "${shown[$seed]:-}" ] && log "  $name seed $seed: $l"
      shown[$seed]=$l
    done
  done
  unset shown
  for p in "${pids[@]}"; do wait "$p"; done
done

# Evaluation: one directory per model; eval writes summary.json last, so its presence marks a
# finished evaluation.
eval_one() {  # name seed samplers steps count
  local name=$1 seed=$2 samplers=$3 steps=$4 count=$5
  local dir=$out/models/$name/seed$seed
  [ -f "$dir/eval/summary.json" ] && return 0
  log "evaluating $name seed $seed: $samplers at steps $steps"
  "$tool" eval --ckpt "$dir/checkpoint.safetensors" --sampler "$samplers" --steps "$steps" \
    --count "$count" --seeds "$seed" --clip on "${eval_common[@]}" --out "$dir/eval" >"$dir/eval.log" 2>&1 ||
    { echo "eval of $name seed $seed failed; see $dir/eval.log:" >&2; tail -n 5 "$dir/eval.log" >&2; exit 1; }
}
for seed in "${seeds[@]}"; do
  eval_one main "$seed" naive,momentum,pf_momentum,ddim,predictor_corrector "$eval_main_steps" "$main_count"
done
for v in "${variants[@]}"; do
  IFS='|' read -r name _ _ <<<"$v"
  [ "$name" = main ] && continue
  for seed in "${seeds[@]}"; do eval_one "$name" "$seed" momentum "$eval_ablation_steps" "$ablation_count"; done
done

log "tabulating"
/usr/bin/python3 scripts/reproduce_report.py --out "$out" --quick "$quick" \
  --variants "$(printf '%s\n' "${variants[@]}")" --seeds "${seeds[*]}" \
  --main-labels "b=loss $RECIPE_LOSS,c=schedule $RECIPE_SCHEDULE_KIND,d=sigma_max $RECIPE_SIGMA_MAX,e=noise $RECIPE_NOISE_MODE"
log "wrote $out/results.csv, $out/results.md and the plots in $out"
