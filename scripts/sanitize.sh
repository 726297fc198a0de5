#!/usr/bin/env bash
# Builds the whole test suite and the softdiff tool with AddressSanitizer and
# UndefinedBehaviorSanitizer (-DSOFTDIFF_SANITIZE=ON, GCC) and runs every test.
# Usage: scripts/sanitize.sh [build dir, default build-sanitize]
# Fails on any failing test and on any sanitizer report, including reports from `softdiff` runs
# that a test started and whose output it did not print (every report is also written to a log
# directory, which must stay empty). Takes 19-35 minutes on 2 cores (docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh python3-matplotlib
build=${1:-build-sanitize}
# -O1: sanitized code at -O3 compiles much more slowly and runs little faster. Assertions stay on.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
      -DSOFTDIFF_SANITIZE=ON -DSOFTDIFF_ENABLE_CUDA=OFF -DSOFTDIFF_BUILD_BENCH=OFF -DSOFTDIFF_STRICT_HEADER_CHECK=ON
cmake --build "$build" -j "$(nproc)"
logs=$(realpath "$build")/sanitizer_reports
rm -rf "$logs" && mkdir -p "$logs"
# exitcode 86: a report is never mistaken for the exit status 1 a test expects from bad input.
# allocator_may_return_null: a huge request fails as std::bad_alloc, which the tool reports, as in
# a normal build. malloc_fill_byte 255: fresh memory of the tool is NaN too (tests/support/replace_new.hpp
# does this for the test programs).
common="exitcode=86:log_path=$logs/report:print_stacktrace=1"
export ASAN_OPTIONS="$common:detect_leaks=1:allocator_may_return_null=1:malloc_fill_byte=255:max_malloc_fill_size=4294967296:strict_string_checks=1"
export UBSAN_OPTIONS="$common:halt_on_error=1"
status=0
(cd "$build" && OMP_NUM_THREADS=$(nproc) ctest --output-on-failure --timeout 3600 -j 1) || status=$?
if compgen -G "$logs/report*" >/dev/null; then
  echo "sanitize.sh: sanitizer reports in $logs:"
  for f in "$logs"/report*; do echo "== $f"; head -40 "$f"; done
  status=1
fi
if [ "$status" -eq 0 ]; then echo "sanitize.sh: every test passed with no sanitizer report"; fi
exit "$status"
