#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (libFuzzer, AddressSanitizer, UndefinedBehaviorSanitizer) for
# SECONDS each and fails on any crash, leak, sanitizer report, exception other than
# softdiff::error, or allocation above the limit below.
# Usage: scripts/fuzz.sh SECONDS [TARGET...]
#   SOFTDIFF_FUZZ_BUILD_DIR  the clang build of the targets (default build-fuzz)
#   SOFTDIFF_TEST_BUILD_DIR  the test build whose tests/test_fuzz_seeds makes the seed corpora and
#                            whose softdiff tool it runs (default build; configured if missing)
#   SOFTDIFF_FUZZ_JOBS       targets run at once (default: the number of cores)
#   SOFTDIFF_FUZZ_OPT        the targets' optimisation when the fuzz build is configured (default
#                            -O1; CI's brief run uses -O0, which compiles the checkpoint target in
#                            a third of the time and runs fewer inputs per second)
# The corpus of each target grows in $SOFTDIFF_FUZZ_BUILD_DIR/corpus/<target> across runs; a
# crashing input is kept in .../artifacts/<target>/ and its report in .../logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }
bash scripts/install_deps.sh clang libclang-rt-14-dev libomp-dev
fuzz_build=${SOFTDIFF_FUZZ_BUILD_DIR:-build-fuzz}
test_build=${SOFTDIFF_TEST_BUILD_DIR:-build}
jobs=${SOFTDIFF_FUZZ_JOBS:-$(nproc)}

# The targets: clang at -O1 (fuzzing wants many executions, not the fastest code per execution).
opt=${SOFTDIFF_FUZZ_OPT:--O1}
[[ "$opt" =~ ^-O[0-3sg]$ ]] || { echo "fuzz.sh: SOFTDIFF_FUZZ_OPT must be -O0, -O1, -O2, -O3, -Os or -Og, got '$opt'" >&2; exit 2; }
if [ ! -f "$fuzz_build/build.ninja" ]; then
  CXX=clang++ cmake -S . -B "$fuzz_build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=$opt" \
    -DSOFTDIFF_FUZZ=ON -DSOFTDIFF_BUILD_TESTS=OFF -DSOFTDIFF_BUILD_EXAMPLES=OFF -DSOFTDIFF_BUILD_BENCH=OFF \
    -DSOFTDIFF_INSTALL=OFF >/dev/null
fi
cmake --build "$fuzz_build" -j "$(nproc)"

# The seeds, made by the tests.
if [ ! -f "$test_build/build.ninja" ] && [ ! -f "$test_build/Makefile" ]; then
  cmake -S . -B "$test_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOFTDIFF_ENABLE_CUDA=OFF >/dev/null
fi
cmake --build "$test_build" -j "$(nproc)" --target test_fuzz_seeds softdiff_cli
fuzz_build=$(realpath "$fuzz_build")
rm -rf "$fuzz_build/seeds"
SOFTDIFF_FUZZ_CORPUS_DIR="$fuzz_build/seeds" OMP_NUM_THREADS=1 "$test_build/tests/test_fuzz_seeds" >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in "$fuzz_build"/fuzz/fuzz_*; do [ -x "$t" ] && targets+=("$(basename "$t")"); done
fi
mkdir -p "$fuzz_build/logs"
run_one() {
  local t=$1 dir=$2 seconds=$3
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t" "$dir/seeds/$t"
  # One thread: the readers' parallel loops would only add noise. -malloc_limit_mb: the largest
  # seed is under 1 MB; no input may make a reader allocate 512 MB.
  if OMP_NUM_THREADS=1 "$dir/fuzz/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
       -malloc_limit_mb=512 -seed="${SOFTDIFF_FUZZ_SEED:-1}" -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t/" \
       "$dir/corpus/$t" "$dir/seeds/$t" >"$dir/logs/$t.log" 2>&1; then
    echo "$t ok $(grep -m1 -o 'number_of_executed_units: [0-9]*' "$dir/logs/$t.log" | grep -o '[0-9]*$')" \
         "$(ls "$dir/corpus/$t" | wc -l)"
  else
    echo "$t FAILED - -"
  fi
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c "run_one {} '$fuzz_build' '$seconds'" \
  > "$fuzz_build/logs/summary.txt"
echo "fuzz.sh: $seconds s per target"
printf '%-20s %-7s %12s %8s\n' target result executions corpus
sort "$fuzz_build/logs/summary.txt" | while read -r t r e c; do printf '%-20s %-7s %12s %8s\n' "$t" "$r" "$e" "$c"; done
if grep -q FAILED "$fuzz_build/logs/summary.txt"; then
  for t in $(awk '$2 == "FAILED" {print $1}' "$fuzz_build/logs/summary.txt"); do
    echo "== $t: $fuzz_build/logs/$t.log (input kept in $fuzz_build/artifacts/$t/)"
    grep -v '^#[0-9]' "$fuzz_build/logs/$t.log" | tail -40
  done
  exit 1
fi
echo "fuzz.sh: no crash, leak or sanitizer report"
