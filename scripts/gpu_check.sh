#!/usr/bin/env bash
# The GPU check of softdiff's CUDA backend: the GPU tests (and the CPU tests of the same code), the
# GPU benchmark (bench/cuda/bench_cuda.cu), the PyTorch-on-GPU peer (bench/torch_cuda_step.py)
# and a summary table for docs/performance.md. docs/cuda.md explains the backend.
#
#   scripts/gpu_check.sh [--dry-run] [STEP...]      STEP: pack, build, test, bench, all (default)
#
#   pack   on a machine WITHOUT a GPU that has the build dependencies (the development machine):
#          builds the five targets (no -march=native) and writes $SOFTDIFF_PACK/gpu_pack.tar.gz,
#          the binaries with every shared library they need except glibc, the NVIDIA driver,
#          cuBLAS and cuFFT (too large to carry; any CUDA 13 install has them).
#   build  on the GPU machine: configure and build there (needs nvcc, CMake, and softdiff's
#          dependencies: OpenBLAS, FFTW, Eigen, xtensor, nlohmann-json, libpng, Catch2 2, Google
#          benchmark). Skipped when a pack is present. Says what is missing if configure fails.
#   test   runs test_cuda_backend, test_cuda_host, cuda_headers_compile_alone, test_backend_portable.
#   bench  runs bench_cuda (5 repetitions) and torch_cuda_step.py, writes summary.md.
#   all    build (unless a pack is present), test, bench; bench runs even when a test failed,
#          and the exit status is then 1.
#
# The binaries come from the pack when $SOFTDIFF_PACK/gpu_pack.tar.gz exists (unpacked to
# $TMPDIR), else from $SOFTDIFF_BUILD_DIR. Output: at most 8 files directly in $SOFTDIFF_OUT:
# env.txt, build.txt, tests.txt, bench_cuda.txt, bench_cuda.json, torch_cuda_step.txt,
# torch_cuda_step.json, summary.md.
#
#   SOFTDIFF_BUILD_DIR   build directory (default build-gpu)
#   SOFTDIFF_PACK        folder of gpu_pack.tar.gz (default build-gpu-pack; ignored by git, so a
#                        device session carries it explicitly)
#   SOFTDIFF_OUT         output directory (default out/gpu_check)
#   PYTHON               a python with torch built for CUDA (default: /usr/bin/python3 if its torch
#                        sees the GPU, else python3)
#   CUDAARCHS            CUDA architectures for pack and build (default: CMake's 90, H100 / H200)
#   JOBS                 parallel compile jobs (default: nproc)
#   STEP_TIMEOUT         seconds any one program may run before it is stopped (default 420)
#
# --dry-run prints the commands instead of running them (the GPU is then not required) and checks
# bench/torch_cuda_step.py with its own --dry-run on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${SOFTDIFF_BUILD_DIR:-build-gpu}
pack_dir=${SOFTDIFF_PACK:-build-gpu-pack}
pack_file=$pack_dir/gpu_pack.tar.gz
out=${SOFTDIFF_OUT:-out/gpu_check}
jobs=${JOBS:-$(nproc)}
step_timeout=${STEP_TIMEOUT:-420}
targets=(test_cuda_backend test_cuda_host cuda_headers_compile_alone test_backend_portable bench_cuda)
declare -A target_path=(
  [test_cuda_backend]=tests/cuda/test_cuda_backend [test_cuda_host]=tests/cuda/test_cuda_host
  [cuda_headers_compile_alone]=tests/cuda/cuda_headers_compile_alone
  [test_backend_portable]=tests/test_backend_portable [bench_cuda]=bench/cuda/bench_cuda)

dry_run=0
steps=()
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    pack | build | test | bench | all) steps+=("$arg") ;;
    -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (steps: pack build test bench all; --dry-run)" >&2; exit 64 ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=(all)

say() { echo "gpu_check.sh: $*" >&2; }
# Runs a command, or prints it under --dry-run.
run() {
  if [ $dry_run = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

need_gpu() {
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then return 0; fi
  if [ $dry_run = 1 ]; then say "no GPU visible (dry run: going on)"; return 0; fi
  say "no NVIDIA GPU visible (nvidia-smi -L failed); steps test and bench need one"
  exit 2
}

cuda_compiler_args() {
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    echo "-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc"
  fi
}

generator_args() {
  if command -v ninja >/dev/null; then echo "-G Ninja"; else echo "-G Unix Makefiles"; fi
}

# configure BUILD_DIR EXTRA_ARGS...
configure() {
  local dir=$1
  shift
  # shellcheck disable=SC2046
  run cmake -S . -B "$dir" $(generator_args) -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_ENABLE_CUDA=ON \
    -DSOFTDIFF_CUDA_GPU_TESTS=ON -DSOFTDIFF_BUILD_EXAMPLES=OFF $(cuda_compiler_args) "$@"
}

build_targets() {
  run cmake --build "$1" --target "${targets[@]}" -j "$jobs"
}

# ---- pack: build here, carry the binaries to a GPU machine ----
step_pack() {
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { say "pack needs nvcc"; exit 1; }
  # No -march=native: the GPU machine's processor may lack this one's instructions.
  configure "$build" -DSOFTDIFF_ARCH_NATIVE=OFF
  build_targets "$build"
  if [ $dry_run = 1 ]; then
    say "would write $pack_file: bin/ (${targets[*]}), lib/ (their shared libraries but glibc, libcuda, cuBLAS, cuFFT)"
    return
  fi
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/pack/bin" "$stage/pack/lib" "$stage/pack/lib-compat" "$pack_dir"
  for t in "${targets[@]}"; do cp "$build/${target_path[$t]}" "$stage/pack/bin/"; done
  # Every shared library the binaries resolve here, except those the GPU machine must provide:
  # glibc (2.34 or newer there), the driver, and cuBLAS / cuBLASLt / cuFFT (hundreds of MB).
  # libstdc++ and libgcc_s go to lib-compat, used only where the GPU machine's own are missing or
  # too old: this machine's libstdc++ needs its glibc (2.36), which the GPU machine may not have.
  ldd "$stage"/pack/bin/* | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u | while read -r lib; do
    case $(basename "$lib") in
      libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux* | libcuda.so* | \
        libcublas.so* | libcublasLt.so* | libcufft.so*) ;;
      libstdc++.so* | libgcc_s.so*) cp -L "$lib" "$stage/pack/lib-compat/" ;;
      *) cp -L "$lib" "$stage/pack/lib/" ;;
    esac
  done
  { echo "built $(date -u +%FT%TZ) on $(uname -n) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    git status --short 2>/dev/null | sed 's/^/  /'
    nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc); "$nvcc_bin" --version | tail -n 2
  } >"$stage/pack/SOURCE.txt"
  tar -C "$stage" -czf "$pack_file.tmp" pack
  mv "$pack_file.tmp" "$pack_file"
  rm -rf "$stage"
  say "wrote $pack_file ($(du -h "$pack_file" | cut -f1)); carry the folder $pack_dir to the GPU machine"
}

# ---- where the binaries are: the unpacked pack, or the build directory ----
bin_dir=
lib_path=
locate_binaries() {
  [ -z "$bin_dir" ] || return 0
  if [ -f "$pack_file" ]; then
    local dest=${TMPDIR:-/tmp}/softdiff_gpu_pack
    run rm -rf "$dest"
    run mkdir -p "$dest"
    run tar -C "$dest" -xzf "$pack_file"
    bin_dir=$dest/pack/bin
    lib_path=$dest/pack/lib
    if [ $dry_run = 0 ]; then
      # cuBLAS, cuBLASLt, cuFFT: from the GPU machine's CUDA toolkit or its PyTorch wheels (a few
      # rounds: a library found may need another, e.g. cuBLAS needs cuBLASLt)
      local missing round
      for round in 1 2 3; do
      missing=$(LD_LIBRARY_PATH=$lib_path ldd "$bin_dir"/* 2>/dev/null | awk '/not found/ { print $1 }' | sort -u)
      [ -n "$missing" ] || break
      for so in $missing; do
        local found=
        for d in ${CUDA_HOME:+$CUDA_HOME/lib64 $CUDA_HOME/lib} /usr/local/cuda/lib64 /usr/local/cuda/lib \
          /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
          [ -e "$d/$so" ] && { found=$d; break; }
        done
        if [ -z "$found" ]; then
          found=$(find /usr/local /opt /usr/lib -name "$so" -print -quit 2>/dev/null || true)
          [ -z "$found" ] || found=$(dirname "$found")
        fi
        if [ -n "$found" ]; then
          lib_path=$lib_path:$found
        else
          [ $round -lt 3 ] || say "$so: not found on this machine (needed by the packed binaries)"
        fi
      done
      done
      # the C++ runtime of the build machine, only if this one's is missing or older
      if LD_LIBRARY_PATH=$lib_path ldd "$bin_dir"/* 2>&1 | grep -Eq '(libstdc\+\+|libgcc_s).*not found'; then
        lib_path=$lib_path:$dest/pack/lib-compat
        say "using the pack's libstdc++ (this machine's is missing or older than the build's)"
      fi
      if LD_LIBRARY_PATH=$lib_path ldd "$bin_dir"/* 2>&1 | grep -q 'not found'; then
        say "some libraries are still missing:"
        LD_LIBRARY_PATH=$lib_path ldd "$bin_dir"/* 2>&1 | grep 'not found' | sort -u >&2
      fi
    fi
    say "binaries from $pack_file"
  else
    bin_dir=$build
    say "binaries from $build (no $pack_file)"
  fi
}

binary() {
  if [ "$bin_dir" = "$build" ]; then echo "$build/${target_path[$1]}"; else echo "$bin_dir/$1"; fi
}

# Runs a built program with the pack's libraries, stopped after STEP_TIMEOUT seconds.
run_program() {
  local prog
  prog=$(binary "$1")
  shift
  run env ${lib_path:+LD_LIBRARY_PATH=$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} \
    timeout "$step_timeout" "$prog" "$@"
}

write_env() {
  [ $dry_run = 0 ] || return 0
  {
    echo "date: $(date -u +%FT%TZ)  host: $(uname -n)  cores: $(nproc)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1 || true
    ldd --version 2>&1 | head -n 1
    if [ -f "$pack_file" ]; then
      tar -xzOf "$pack_file" pack/SOURCE.txt 2>/dev/null || true
      echo "libraries of test_cuda_backend:"
      LD_LIBRARY_PATH=$lib_path ldd "$bin_dir/test_cuda_backend" 2>&1 | sed 's/^/  /'
    else
      echo "built here in $build from $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    fi
  } >"$out/env.txt" 2>&1
}

# ---- build on the GPU machine ----
step_build() {
  if [ -f "$pack_file" ]; then
    say "build: skipped, $pack_file holds the binaries"
    return
  fi
  local missing=()
  for tool in cmake nvcc g++; do
    command -v $tool >/dev/null || { [ $tool = nvcc ] && [ -x /usr/local/cuda/bin/nvcc ]; } || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "build: missing ${missing[*]}; run 'scripts/gpu_check.sh pack' on a machine that has them and carry $pack_dir"
    exit 3
  fi
  if [ $dry_run = 1 ]; then
    configure "$build"
    build_targets "$build"
    return
  fi
  local log=$out/build.txt
  if ! configure "$build" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    say "build: configure failed (log: $log). softdiff needs OpenBLAS (or another CBLAS), FFTW 3 (float and" \
      "double), Eigen 3, xtensor, nlohmann-json, libpng, zlib, Catch2 2 and Google benchmark; where they" \
      "cannot be installed, run 'scripts/gpu_check.sh pack' on the development machine and carry $pack_dir"
    exit 3
  fi
  if ! build_targets "$build" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "build: compilation failed (log: $log)"
    exit 3
  fi
  say "build: done (log: $log)"
}

# ---- tests ----
step_test() {
  need_gpu
  locate_binaries
  write_env
  local log=$out/tests.txt failed=0
  [ $dry_run = 1 ] || : >"$log"
  for t in test_cuda_backend test_cuda_host cuda_headers_compile_alone test_backend_portable; do
    [ $dry_run = 1 ] || echo "==== $t" >>"$log"
    local status=0
    if [ $dry_run = 1 ]; then
      run_program "$t"
    else
      run_program "$t" >>"$log" 2>&1 || status=$?
      echo "==== $t: exit status $status" >>"$log"
      say "$t: $([ $status = 0 ] && echo passed || echo "FAILED (exit status $status)")"
    fi
    [ $status = 0 ] || failed=1
  done
  [ $dry_run = 1 ] || say "test log: $log"
  return $failed
}

# ---- benchmarks ----
pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  if /usr/bin/python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo /usr/bin/python3
  else
    echo python3
  fi
}

step_bench() {
  need_gpu
  locate_binaries
  [ -f "$out/env.txt" ] || write_env
  local python status=0
  python=$(pick_python)
  if [ $dry_run = 1 ]; then
    run_program bench_cuda --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/bench_cuda.json" --benchmark_out_format=json
    run "$python" bench/torch_cuda_step.py --json "$out/torch_cuda_step.json"
    # the peer script itself, on the CPU (Debian's python has a CPU torch)
    local cpu_python=/usr/bin/python3
    "$cpu_python" -c 'import torch' 2>/dev/null || cpu_python=$python
    "$cpu_python" bench/torch_cuda_step.py --dry-run >/dev/null && say "bench/torch_cuda_step.py --dry-run: ok"
    return
  fi
  run_program bench_cuda --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/bench_cuda.json" --benchmark_out_format=json >"$out/bench_cuda.txt" 2>&1 || status=$?
  say "bench_cuda: exit status $status (output: $out/bench_cuda.txt)"
  local torch_status=0
  PYTHONUNBUFFERED=1 timeout "$step_timeout" "$python" bench/torch_cuda_step.py --json "$out/torch_cuda_step.json" \
    >"$out/torch_cuda_step.txt" 2>&1 || torch_status=$?
  say "torch_cuda_step.py ($python): exit status $torch_status (output: $out/torch_cuda_step.txt)"
  if summarize "$python"; then
    cat "$out/summary.md"
  else
    rm -f "$out/summary.md"
    say "summary: failed (is $out/bench_cuda.json there?)"
  fi
  [ $status = 0 ]
}

# summary.md: softdiff's median times against PyTorch's best, shares of the bandwidths.
summarize() {
  "$1" - "$out" >"$out/summary.md" <<'EOF'
import json, os, sys
out = sys.argv[1]
ours = json.load(open(os.path.join(out, "bench_cuda.json")))
theirs = {}
torch_json = os.path.join(out, "torch_cuda_step.json")
if os.path.exists(torch_json):
    theirs = json.load(open(torch_json))["results"]
ctx = ours["context"]
peak = float(ctx["gpu_peak_bandwidth_GBps"])
copy = float(ctx.get("gpu_copy_bandwidth_GBps", "nan"))
rows = {}
for b in ours["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].replace("/manual_time", "")
    ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    rows[name] = (ms, b.get("GB/s"))
print(f"GPU: {ctx['gpu']}; {ctx['batch']}.")
print(f"Peak memory bandwidth {peak:.0f} GB/s ({ctx.get('gpu_peak_bandwidth_source', '2 x memory clock x bus width')}); "
      f"measured device-to-device copy {copy:.0f} GB/s (bytes read + written).")
if not theirs:
    print("PyTorch: no results (see torch_cuda_step.txt).")
print()
print("| benchmark | softdiff (ms, median of 5) | GB/s | share of peak | share of copy | PyTorch eager (ms, best) | speed-up |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name, (ms, gbs) in rows.items():
    peer = theirs.get(name.replace("/cuda", "/torch"))
    peer_ms = f"{peer['ms']:.4f}" if peer else "-"
    ratio = f"{peer['ms'] / ms:.2f}x" if peer else "-"
    gbs_s = f"{gbs:.0f}" if gbs else "-"
    share = f"{gbs / peak * 100:.0f}%" if gbs else "-"
    share_copy = f"{gbs / copy * 100:.0f}%" if gbs and copy == copy else "-"
    print(f"| {name} | {ms:.4f} | {gbs_s} | {share} | {share_copy} | {peer_ms} | {ratio} |")
EOF
}

# ---- main ----
[ $dry_run = 1 ] || [ "${steps[*]}" = pack ] || mkdir -p "$out"
exit_status=0
for step in "${steps[@]}"; do
  case $step in
    pack) step_pack ;;
    build) step_build ;;
    test) step_test || exit_status=1 ;;
    bench) step_bench || exit_status=1 ;;
    all)
      need_gpu
      step_build
      step_test || exit_status=1
      step_bench || exit_status=1
      ;;
  esac
done
if [ $dry_run = 0 ] && [ -n "$bin_dir" ]; then
  say "results in $out (summary.md for docs/performance.md); exit status $exit_status"
fi
exit $exit_status
