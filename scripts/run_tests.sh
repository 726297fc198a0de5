#!/usr/bin/env bash
# Builds softdiff and runs every test (ctest prints the summary last).
set -euo pipefail
cd "$(dirname "$0")/.."
# matplotlib: the plots of scripts/reproduce.sh (test reproduce_quick); clang and its runtimes:
# the fuzz targets (test fuzz_brief, scripts/fuzz.sh); Open MPI: data-parallel training
# (tests/mpi, SOFTDIFF_ENABLE_MPI).
bash scripts/install_deps.sh python3-matplotlib clang libclang-rt-14-dev libomp-dev libopenmpi-dev openmpi-bin
build=${SOFTDIFF_BUILD_DIR:-build}
# The CUDA backend and its tests are compiled whenever nvcc is installed (CI has the toolkit but
# no GPU: the GPU tests are built, not registered; scripts/gpu_check.sh runs them on a GPU).
# SOFTDIFF_CMAKE_ARGS=-DSOFTDIFF_ENABLE_CUDA=OFF skips it.
cuda_args=()
if [[ "${SOFTDIFF_CMAKE_ARGS:-}" != *SOFTDIFF_ENABLE_CUDA* ]]; then
  nvcc=$(command -v nvcc || true)
  if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
  if [ -n "$nvcc" ]; then
    echo "run_tests.sh: compiling the CUDA backend with $nvcc"
    cuda_args=(-DSOFTDIFF_ENABLE_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc")
  else
    echo "run_tests.sh: no nvcc found; the CUDA backend is not compiled"
  fi
fi
# The benchmarks are not built here (their builds and commands are in docs/performance.md): with
# them the suite no longer fits 20 minutes on 2 cores. SOFTDIFF_CMAKE_ARGS=-DSOFTDIFF_BUILD_BENCH=ON
# adds them.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_ENABLE_MPI=ON -DSOFTDIFF_BUILD_BENCH=OFF \
      "${cuda_args[@]}" ${SOFTDIFF_CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)"
cd "$build"
# Two tests at a time: most are short and use one core for much of their run; the ones that must
# be alone on the machine say so (RUN_SERIAL), the longest start first (COST).
OMP_NUM_THREADS=$(nproc) ctest --output-on-failure --timeout 1200 -j 2
