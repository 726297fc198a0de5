// The machine's float32 fused multiply-add peak, measured rather than quoted: every thread runs
// 12 independent chains of 64-byte vector FMAs (acc = acc * a + b) held in registers, enough to
// cover the FMA latency on the cores seen here (4 cycles, 2 units: 8 chains in flight). The
// compiler lowers the 64-byte vectors to AVX-512 or to pairs of AVX2 registers for the target it
// builds for (-march=native), so the figure is the peak of the code softdiff's kernels can reach
// on this machine. Counter GFLOP/s: 2 per multiply-add, all threads together.
// Run: build/bench/bench_peak (threads 1 and 2 are registered; more with --benchmark_filter).
// docs/performance.md ("Network: share of the FMA peak") divides the network's rates by these.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <cstdint>

namespace {

typedef float vec __attribute__((vector_size(64)));
constexpr int chains = 12, lanes = 16;
constexpr std::int64_t steps = 1 << 16;

/// FMAs of one thread: chains x steps vector multiply-adds; returns a value that depends on all.
float fma_chains(float seed) {
  // twelve named accumulators (an array would be kept on the stack and the chains would wait on
  // store forwarding instead of the FMA units)
  vec a0 = vec{} + seed, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5;
  vec a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11;
  const vec a = vec{} + 0.999999f, b = vec{} + 1e-7f;
  for (std::int64_t s = 0; s < steps; ++s) {
    a0 = a0 * a + b, a1 = a1 * a + b, a2 = a2 * a + b, a3 = a3 * a + b, a4 = a4 * a + b, a5 = a5 * a + b;
    a6 = a6 * a + b, a7 = a7 * a + b, a8 = a8 * a + b, a9 = a9 * a + b, a10 = a10 * a + b, a11 = a11 * a + b;
  }
  const vec sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  float out = 0;
  for (int l = 0; l < lanes; ++l) out += sum[l];
  return out;
}

void BM_fma_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  float sink = 0;
  for (auto _ : state) {
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += fma_chains(static_cast<float>(omp_get_thread_num()));
    sink += total;
  }
  benchmark::DoNotOptimize(sink);
  const double flops = 2.0 * lanes * chains * static_cast<double>(steps) * threads;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_fma_peak)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
