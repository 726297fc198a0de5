// The Wasserstein scheduler (schedule/wasserstein.hpp, Soft Diffusion section 3.3 / appendix C)
// on a 6,000-image Fashion-MNIST slice (the first 6,000 training images, 28 x 28, in [-1, 1])
// with the paper-exact Gaussian blur (half_size 27 covers a 28-pixel image): 256 geometric
// candidate blur std from 0.014 to 14 (plus the clean level), a 32-node path.
//   schedule/sinkhorn          the whole schedule, debiased Sinkhorn on a 256-image sub-slice
//   schedule/sliced            the whole schedule, sliced W2 (64 directions) on all 6,000 images
//   pair/divergence/256        one Sinkhorn distance (blur std 4 vs 4.6): the unit of the search,
//                              timed against bench/torch_sinkhorn.py (the same algorithm in PyTorch)
//   pair/plain/256             one plain Sinkhorn solve of the same pair (sqrt <P, C>), run to the
//                              library's default convergence criteria
//   level/sliced_profile/6000  one level of the sliced estimate: blur, projections, sorting
// The counter all_pairs_s of pair/divergence is what computing M for all 257 * 256 / 2 pairs
// would cost at that rate (the dense alternative to the lazy search).
// Run with OMP_NUM_THREADS=2 for the recorded figures (docs/performance.md, "Wasserstein scheduler").
#include <benchmark/benchmark.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "softdiff/data/idx.hpp"
#include "softdiff/metrics/sliced_wasserstein.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/schedule/sinkhorn.hpp"
#include "softdiff/schedule/wasserstein.hpp"

namespace {

using namespace softdiff;

const std::filesystem::path fashion_mnist = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

const batch<float>* slice() {
  static const batch<float>* x = [] {
    if (!std::filesystem::exists(fashion_mnist)) return static_cast<batch<float>*>(nullptr);
    return new batch<float>(data::read_idx_images<float>(fashion_mnist, 6000));
  }();
  return x;
}

schedule::wasserstein_options options(schedule::distance_estimate d) {
  schedule::wasserstein_options o;
  o.distance = d;
  o.levels.count = 256;
  o.levels.last = 14.0;
  o.target_nodes = 32;
  return o;
}

void schedule_bench(benchmark::State& state, schedule::distance_estimate d) {
  const batch<float>* x = slice();
  if (!x) {
    state.SkipWithError("Fashion-MNIST not found");
    return;
  }
  const op::gaussian_blur<float> blur(27);
  std::optional<schedule::wasserstein_result> r;
  for (auto _ : state) r = schedule::wasserstein_schedule(blur, *x, options(d));
  state.counters["pairs"] = static_cast<double>(r->path.evaluations);
  state.counters["corruptions"] = static_cast<double>(r->corruptions);
  state.counters["bisection_steps"] = static_cast<double>(r->path.bisection_steps);
  state.counters["epsilon"] = r->path.epsilon;
  state.counters["nodes"] = static_cast<double>(r->path.nodes.size());
}

struct pair_data {
  batch<float> a, b;
};

const pair_data* blurred_pair() {
  static const pair_data* p = [] {
    const batch<float>* x = slice();
    if (!x) return static_cast<pair_data*>(nullptr);
    std::vector<std::size_t> first(256);
    for (std::size_t k = 0; k < 256; ++k) first[k] = k;  // the first 256 images, as the torch peer
    const batch<float> sub = schedule::detail::gather_images(*x, first);
    auto* out = new pair_data;
    const op::gaussian_blur<float> blur(27);
    blur.apply(4.0, sub, out->a);
    blur.apply(4.6, sub, out->b);
    return out;
  }();
  return p;
}

void pair_bench(benchmark::State& state, bool debiased) {
  const pair_data* p = blurred_pair();
  if (!p) {
    state.SkipWithError("Fashion-MNIST not found");
    return;
  }
  schedule::sinkhorn_solver<float> solver;
  // the scheduler's settings for the divergence; the library defaults (run to convergence) for plain
  const schedule::sinkhorn_options o =
      debiased ? options(schedule::distance_estimate::sinkhorn).sinkhorn : schedule::sinkhorn_options{};
  double w2 = 0;
  int iterations = 0;
  for (auto _ : state) {
    if (debiased) {
      const auto r = solver.divergence(p->a, p->b, o);
      w2 = r.w2;
      iterations = r.cross.iterations;
    } else {
      const auto r = solver.solve(p->a, p->b, o);
      w2 = r.w2;
      iterations = r.iterations;
    }
    benchmark::DoNotOptimize(w2);
  }
  state.counters["w2"] = w2;
  state.counters["iterations"] = iterations;
  if (debiased)
    state.counters["all_pairs_s"] =
        benchmark::Counter(static_cast<double>(state.iterations()) / (257.0 * 256.0 / 2.0),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void sliced_level_bench(benchmark::State& state) {
  const batch<float>* x = slice();
  if (!x) {
    state.SkipWithError("Fashion-MNIST not found");
    return;
  }
  const op::gaussian_blur<float> blur(27);
  const metrics::sliced_projector<float> proj(784, 64, noise_source{0, 1});
  batch<float> y;
  for (auto _ : state) {
    blur.apply(4.0, *x, y);
    auto p = proj.profile(y, 256);
    benchmark::DoNotOptimize(p.values.data());
  }
}

}  // namespace

BENCHMARK_CAPTURE(schedule_bench, sinkhorn, schedule::distance_estimate::sinkhorn)
    ->Name("schedule/sinkhorn")
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK_CAPTURE(schedule_bench, sliced, schedule::distance_estimate::sliced)
    ->Name("schedule/sliced")
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK_CAPTURE(pair_bench, divergence, true)->Name("pair/divergence/256")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(pair_bench, plain, false)->Name("pair/plain/256")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(sliced_level_bench)->Name("level/sliced_profile/6000")->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
