#!/usr/bin/env bash
# Images per second of the main job's training (scripts/recipe.sh, Fashion-MNIST) on this
# machine: 1 process with T threads against P processes with T/P threads each (the cost of the
# communicator), STEPS steps each, best of ROUNDS. docs/distributed.md records the figures.
# Usage: bench/mpi/scaling.sh [build dir, default build] [STEPS=60] [ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
steps=${2:-60}
rounds=${3:-2}
tool="$build/examples/softdiff"
source scripts/recipe.sh
mapfile -t recipe < <(recipe_train_args)
threads=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rate() {  # prints steps/s of the run whose output is in $1
  grep -o '([0-9.]* steps/s)' "$1" | tr -d '(' | awk '{print $1}'
}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for ((k = 0; k < rounds; ++k)); do
  rm -rf "$work/one" "$work/many"
  OMP_NUM_THREADS=$threads "$tool" train --out "$work/one" --steps "$steps" "${recipe[@]}" "${RECIPE_NET[@]}" \
    --sample-every 0 --sample-count 1 --sample-steps 1 >"$work/one.txt" 2>&1
  mpirun --oversubscribe -np "$threads" -x OMP_NUM_THREADS=1 "$tool" train --out "$work/many" --steps "$steps" \
    "${recipe[@]}" "${RECIPE_NET[@]}" --sample-every 0 --sample-count 1 --sample-steps 1 >"$work/many.txt" 2>&1
  cmp -s "$work/one/checkpoint.safetensors" "$work/many/checkpoint.safetensors" && same=identical || same=DIFFERENT
  one=$(rate "$work/one.txt"); many=$(rate "$work/many.txt")
  batch=$(printf '%s\n' "${RECIPE_NET[@]}" | grep -A1 -x -- --batch | tail -1)
  awk -v a="$one" -v b="$many" -v bs="$batch" -v t="$threads" -v s="$same" 'BEGIN {
    printf "round: 1 process x %d threads %.1f img/s; %d processes x 1 thread %.1f img/s; ratio %.3f; checkpoints %s\n",
           t, a * bs, t, b * bs, b / a, s }'
done
