#!/usr/bin/env bash
# The main job: build the softdiff tool, train a small Soft Diffusion model (heat blur +
# noise) on Fashion-MNIST for a bounded time, sample with the momentum and the naive sampler,
# write sample grids and a forward-process strip, and measure sample quality against held-out
# images (softdiff eval: Frechet distance in the committed classifier's features vs NFE).
#   SOFTDIFF_MINUTES    training time in minutes (default 10)
#   SOFTDIFF_OUT        output directory (default out/main_job); an existing run there is resumed
#   SOFTDIFF_BUILD_DIR  CMake build directory (default build)
# Settings for a short run on 2 cores (docs/guide.md, "The main job"): RefUNet with base 16
# (387,201 parameters) rather than 32, batch 32, learning rate 2e-3 after a 200-step warm-up,
# EMA decay 0.995; the two-stage schedule with the DCT heat blur from 0.5 to 28 px (at 28 px
# a 28 x 28 image is its mean colour, the final distribution of appendix D).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
build=${SOFTDIFF_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_BUILD_TESTS=OFF -DSOFTDIFF_BUILD_BENCH=OFF
cmake --build "$build" --target softdiff_cli -j "$(nproc)"
tool=$build/examples/softdiff
out=${SOFTDIFF_OUT:-out/main_job}
minutes=${SOFTDIFF_MINUTES:-10}
# OpenMP threads sleep rather than spin at barriers: on a shared machine spinning threads
# slowed training tenfold, on an idle one the difference is small.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out"
"$tool" forward-process --out "$out/forward_process.png" --op dct-blur --max-level 28 --steps 10
"$tool" train --out "$out" --minutes "$minutes" --op dct-blur --min-level 0.5 --seed 1 \
  --base-channels 16 --batch 32 --lr 2e-3 --warmup 200 --ema-decay 0.995 --sample-every 1000
"$tool" sample --ckpt "$out/checkpoint.safetensors" --sampler momentum --steps 100 --count 64 --seed 2 \
  --out "$out/samples.png"
"$tool" sample --ckpt "$out/checkpoint.safetensors" --sampler naive --steps 100 --count 64 --seed 2 \
  --out "$out/samples_naive.png"
"$tool" eval --ckpt "$out/checkpoint.safetensors" --sampler naive,momentum --steps 20,50,100 --count 256 \
  --seed 3 --out "$out/eval"
echo "wrote $out/forward_process.png, $out/samples.png (momentum), $out/samples_naive.png (naive)" \
  "and $out/eval/ (metrics.csv, frechet_vs_nfe.png, nearest_neighbours.png)"
