#!/usr/bin/env bash
# The main job: build the softdiff tool, train a small Soft Diffusion model
# (Gaussian blur + noise) on Fashion-MNIST for a bounded time, sample with the
# momentum sampler, and write a sample grid and a forward-process strip.
#   SOFTDIFF_MINUTES  training time in minutes (default 10)
#   SOFTDIFF_OUT      output directory (default out/main_job)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_BUILD_TESTS=OFF -DSOFTDIFF_BUILD_BENCH=OFF
cmake --build build --target softdiff_cli -j "$(nproc)"
tool=build/examples/softdiff
out=${SOFTDIFF_OUT:-out/main_job}
minutes=${SOFTDIFF_MINUTES:-10}
mkdir -p "$out"
"$tool" forward-process --out "$out/forward_process.png"
"$tool" train --out "$out" --minutes "$minutes" --op gaussian-blur --seed 1
"$tool" sample --ckpt "$out/checkpoint.safetensors" --sampler momentum --count 64 --seed 2 --out "$out/samples.png"
echo "wrote $out/forward_process.png and $out/samples.png"
