#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds softdiff with the CUDA backend, runs the GPU tests
# (and the CPU tests of the same code), the GPU benchmark (bench/cuda/bench_cuda.cu) and the
# PyTorch-on-GPU peer (bench/torch_cuda_step.py), and writes a summary table for
# docs/performance.md. Nothing here runs without a GPU: CI only compiles the CUDA code.
#   SOFTDIFF_BUILD_DIR   build directory (default build-gpu)
#   SOFTDIFF_OUT         output directory (default out/gpu_check)
#   PYTHON               a python with torch built for CUDA (default: /usr/bin/python3 if its
#                        torch sees the GPU, else python3)
#   CUDAARCHS            CUDA architectures (default: CMake's 90, i.e. H100 / H200)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check.sh: no NVIDIA GPU visible (nvidia-smi -L failed); nothing to check here" >&2
  exit 2
fi
nvidia-smi -L

build=${SOFTDIFF_BUILD_DIR:-build-gpu}
out=${SOFTDIFF_OUT:-out/gpu_check}
mkdir -p "$out"
nvcc_hint=()
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  nvcc_hint=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_ENABLE_CUDA=ON \
  -DSOFTDIFF_CUDA_GPU_TESTS=ON -DSOFTDIFF_BUILD_EXAMPLES=OFF "${nvcc_hint[@]}"
targets=(test_backend_portable test_cuda_host test_cuda_backend cuda_headers_compile_alone bench_cuda)
for t in "${targets[@]}"; do
  if ! ninja -C "$build" -t targets all | grep -q "^$t:"; then
    echo "gpu_check.sh: target $t is missing: tests/CMakeLists.txt and bench/CMakeLists.txt must add" \
         "tests/cuda and bench/cuda when SOFTDIFF_ENABLE_CUDA is ON" >&2
    exit 1
  fi
done
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"

# 1. tests: the GPU against the CPU, and the same code on the CPU
(cd "$build" && ctest --output-on-failure -R '^(test_backend_portable|test_cuda_host|test_cuda_backend|cuda_headers_compile_alone)$')

# 2. benchmarks: softdiff on the GPU, then PyTorch eager on the same GPU
bench=$(find "$build" -name bench_cuda -type f -perm -u+x | head -n 1)
"$bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/bench_cuda.json" --benchmark_out_format=json | tee "$out/bench_cuda.txt"

python=${PYTHON:-}
if [ -z "$python" ]; then
  if /usr/bin/python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python=/usr/bin/python3
  else
    python=python3
  fi
fi
"$python" bench/torch_cuda_step.py --json "$out/torch_cuda_step.json" | tee "$out/torch_cuda_step.txt"

# 3. summary: softdiff vs torch (median times), and shares of the GPU's memory bandwidth
"$python" - "$out" <<'EOF' | tee "$out/summary.md"
import json, sys
out = sys.argv[1]
ours = json.load(open(f"{out}/bench_cuda.json"))
theirs = json.load(open(f"{out}/torch_cuda_step.json"))["results"]
ctx = ours["context"]
peak = float(ctx["gpu_peak_bandwidth_GBps"])
rows = {}
for b in ours["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].replace("/manual_time", "")
    ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    rows[name] = (ms, b.get("GB/s"), b.get("bw_share"))
print(f"GPU: {ctx['gpu']}, peak memory bandwidth {peak:.0f} GB/s (2 x memory clock x bus width); {ctx['batch']}")
print()
print("| benchmark | softdiff (ms) | GB/s | share of peak | PyTorch eager (ms) | speed-up |")
print("| --- | --- | --- | --- | --- | --- |")
for name, (ms, gbs, share) in rows.items():
    peer = theirs.get(name.replace("/cuda", "/torch"))
    peer_ms = f"{peer['ms']:.4f}" if peer else "-"
    ratio = f"{peer['ms'] / ms:.2f}x" if peer else "-"
    share_s = f"{share * 100:.0f}%" if share is not None else "-"
    gbs_s = f"{gbs:.0f}" if gbs else "-"
    print(f"| {name} | {ms:.4f} | {gbs_s} | {share_s} | {peer_ms} | {ratio} |")
EOF
echo "gpu_check.sh: results in $out (summary.md for docs/performance.md)"
