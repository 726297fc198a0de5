// The corruption operators other than the Gaussian blur (bench/bench_blur.cpp has that one and its
// peers), on the batches the tool uses: Fashion-MNIST's training batch (64 x 1 x 28 x 28) and the
// CelebA-64 configuration of bench_blur (128 x 3 x 64 x 64). Each figure is one apply on the whole
// batch; the numbers are for comparing one version of softdiff with another (docs/performance.md,
// "One operator implementation"), not with a peer. The Gaussian blur is repeated here at 28 x 28,
// where the main job uses it.
// Run: OMP_NUM_THREADS=2 build/bench/bench_operators --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>

#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/fft_conv.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/random.hpp"

namespace {

using softdiff::batch;

const batch<float>& input(std::int64_t which) {
  static const batch<float> small = [] {
    batch<float> b({64, 1, 28, 28});
    softdiff::noise_source{2024, 2}.fill(b);
    return b;
  }();
  static const batch<float> large = [] {
    batch<float> b({128, 3, 64, 64});
    softdiff::noise_source{2024, 3}.fill(b);
    return b;
  }();
  return which == 0 ? small : large;
}

template <class Op>
void run(benchmark::State& state, const Op& op, double level) {
  const batch<float>& x = input(state.range(0));
  batch<float> y(x.shape());
  op.apply(level, x, y);  // plans and workspaces made here
  for (auto _ : state) {
    op.apply(level, x, y);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * x.shape()[0] * x.shape()[1]));
  state.SetLabel(state.range(0) == 0 ? "64x1x28x28" : "128x3x64x64");
}

void BM_gaussian_blur(benchmark::State& state) { run(state, softdiff::op::gaussian_blur<float>(80), 3.0); }
void BM_dct_blur(benchmark::State& state) { run(state, softdiff::op::dct_blur<float>{}, 3.0); }
void BM_fft_conv(benchmark::State& state) { run(state, softdiff::op::fft_conv<float>(8), 3.0); }
void BM_mask(benchmark::State& state) { run(state, softdiff::op::mask<float>{}, 0.5); }
void BM_scale(benchmark::State& state) { run(state, softdiff::op::scale<float>{}, 0.5); }
void BM_identity(benchmark::State& state) { run(state, softdiff::op::identity<float>{}, 0.5); }

}  // namespace

BENCHMARK(BM_gaussian_blur)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_dct_blur)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_fft_conv)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_mask)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_scale)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_identity)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
