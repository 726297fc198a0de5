#!/usr/bin/env bash
# The main job: build the softdiff tool, train a small Soft Diffusion model (heat blur + noise)
# on Fashion-MNIST with the main recipe (scripts/recipe.sh) for a bounded time, sample with the
# momentum and the naive sampler, write sample grids and a forward-process strip, and measure
# sample quality against held-out images (softdiff eval: each sampler's best Frechet distance
# over a step sweep, two sampling seeds, with the floor at the same sample count).
#   SOFTDIFF_MINUTES    training time limit in minutes (default 15; training also stops at the
#                       recipe's RECIPE_STEPS steps, about 15 minutes on 2 quiet cores)
#   SOFTDIFF_OUT        output directory (default out/main_job); an existing run there is resumed
#   SOFTDIFF_BUILD_DIR  CMake build directory (default build)
#   SOFTDIFF_EVAL_COUNT samples per evaluated setting and seed (default 1000)
#   SOFTDIFF_PRECISION  arithmetic of training's 3x3 convolutions: float32 (default) or bf16
#                       (AMX only; recorded in the checkpoint; a resumed run keeps its own)
#   SOFTDIFF_SAMPLE_PRECISION  the same for sampling and evaluation (default float32)
#   SOFTDIFF_SEED       training seed (default 1; sampling and evaluation seeds stay 2, 3 and 4)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
build=${SOFTDIFF_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_BUILD_TESTS=OFF -DSOFTDIFF_BUILD_BENCH=OFF
cmake --build "$build" --target softdiff_cli -j "$(nproc)"
tool=$build/examples/softdiff
out=${SOFTDIFF_OUT:-out/main_job}
minutes=${SOFTDIFF_MINUTES:-15}
count=${SOFTDIFF_EVAL_COUNT:-1000}
sample_precision=(--precision "${SOFTDIFF_SAMPLE_PRECISION:-float32}")
# shellcheck source=recipe.sh
source scripts/recipe.sh
# OpenMP threads sleep rather than spin at barriers: on a shared machine spinning threads
# slowed training tenfold, on an idle one the difference is small.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out"
mapfile -t noise < <(recipe_noise_args)
recipe=()  # a resumed run takes its recipe from the checkpoint
if [ ! -f "$out/checkpoint.safetensors" ]; then
  mapfile -t recipe < <(recipe_train_args; printf '%s\n' "${RECIPE_NET[@]}")
  recipe+=(--precision "${SOFTDIFF_PRECISION:-float32}")
fi
"$tool" forward-process --out "$out/forward_process.png" --op "$RECIPE_OP" --max-level 28 --steps 10 "${noise[@]}"
"$tool" train --out "$out" --minutes "$minutes" --steps "$RECIPE_STEPS" --seed "${SOFTDIFF_SEED:-1}" --sample-every 1000 \
  ${recipe[@]+"${recipe[@]}"}
"$tool" sample --ckpt "$out/checkpoint.safetensors" --sampler momentum --steps "$MAIN_JOB_MOMENTUM_STEPS" \
  --count 64 --seed 2 --out "$out/samples.png" "${sample_precision[@]}"
"$tool" sample --ckpt "$out/checkpoint.safetensors" --sampler naive --steps "$MAIN_JOB_NAIVE_STEPS" \
  --count 64 --seed 2 --out "$out/samples_naive.png" "${sample_precision[@]}"
"$tool" eval --ckpt "$out/checkpoint.safetensors" --sampler naive,momentum --steps "$MAIN_JOB_EVAL_STEPS" \
  --count "$count" --seeds 3,4 --clip on --out "$out/eval" "${sample_precision[@]}"
echo "wrote $out/forward_process.png, $out/samples.png (momentum), $out/samples_naive.png (naive)" \
  "and $out/eval/ (metrics.csv, summary.json, frechet_vs_nfe.png, nearest_neighbours.png)"
