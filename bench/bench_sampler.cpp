// One Momentum Sampler step (Algorithm 2, eq. 17) on a 128 x 3 x 64 x 64 float batch with
// phi = 0 (a zero Denoiser, so the step is the sampler's own work: x0 = x, two paper-exact
// Gaussian blurs C_t x0 and C_{t'} x0 with half_size 80, the noise, and the update).
// bench/torch_momentum_step.py times the same step in PyTorch; docs/performance.md ("Sampler step")
// holds the ratios. Run with OMP_NUM_THREADS=2 for the recorded figures.
//
// Schedule: tabulated, level(t) = 100 t (blur std) and sigma(t) = t / 2, so
//   std:3  is t = 0.030 -> t' = 0.029 (blur std 3 -> 2.9, sigma 0.015 -> 0.0145),
//   std:10 is t = 0.100 -> t' = 0.098 (blur std 10 -> 9.8, sigma 0.05 -> 0.049).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/soft_diffusion.hpp"

namespace {

using namespace softdiff;

/// phi = 0: the denoiser a sampler benchmark should not measure.
struct zero_denoiser {
  using scalar_type = float;
  void predict(const batch<float>& x, std::span<const double>, batch<float>& phi) {
    ensure_shape(phi, shape_of(x));
    float* p = phi.data();
    backend::cpu::parallel_chunks(phi.size(), sampler::detail::elementwise_grain,
                                  [=](std::size_t b, std::size_t e) { std::fill(p + b, p + e, 0.0f); });
  }
};
static_assert(Denoiser<zero_denoiser>);

using model_t = SoftDiffusion<op::gaussian_blur<float>, schedule::tabulated, zero_denoiser>;

model_t make_model() {
  return model_t(op::gaussian_blur<float>(80), schedule::tabulated({0.0, 1.0}, {0.0, 100.0}, {0.0, 0.5}),
                 zero_denoiser{});
}

batch<float> start() {
  batch<float> x({128, 3, 64, 64});
  noise_source{1, stream_for(stream_purpose::user, 0)}.fill(x);
  return x;
}

void momentum_step(benchmark::State& state, double t, double t_next, std::size_t block) {
  model_t sd = make_model();
  batch<float> x = start();
  sampler::momentum<float> m(block);
  std::uint64_t k = 0;
  m.step(sd, x, t, t_next, noise_source{7, stream_for(stream_purpose::sampler, k++)});  // plans, workspaces
  for (auto _ : state) {
    m.step(sd, x, t, t_next, noise_source{7, stream_for(stream_purpose::sampler, k++)});
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(x.shape()[0]));
}

// The parts, to see where a step's time goes: one blur, and the fused noise + update pass.
void blur_only(benchmark::State& state, double t) {
  model_t sd = make_model();
  const batch<float> x = start();
  batch<float> y;
  sd.apply_operator(t, x, y);
  for (auto _ : state) {
    sd.apply_operator(t, x, y);
    benchmark::DoNotOptimize(y.data());
  }
}

void fused_update_only(benchmark::State& state) {
  batch<float> x = start(), y = start(), c = start();
  const float a = -0.066f, b = 0.0038f;
  std::uint64_t k = 0;
  for (auto _ : state) {
    const float* yp = y.data();
    const float* cp = c.data();
    float* xp = x.data();
    noise_source{7, stream_for(stream_purpose::sampler, k++)}.for_each_normal<float>(
        x.size(),
        [=](std::size_t lo, std::size_t hi, const float* eta) {
#pragma omp simd
          for (std::size_t i = lo; i < hi; ++i) {
            const float e = yp[i] - xp[i];
            xp[i] = (xp[i] - a * e + b * eta[i - lo]) + (cp[i] - yp[i]);
          }
        });
    benchmark::DoNotOptimize(x.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& [name, t, t_next] : {std::tuple{"std:3", 0.030, 0.029}, std::tuple{"std:10", 0.100, 0.098}}) {
    const double a = t, b = t_next;
    benchmark::RegisterBenchmark((std::string("momentum_step/softdiff/") + name).c_str(),
                                 [a, b](benchmark::State& s) { momentum_step(s, a, b, 0); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    for (std::size_t block : {4, 8, 16})
      benchmark::RegisterBenchmark(
          (std::string("momentum_step/softdiff_blocks_of_") + std::to_string(block) + "/" + name).c_str(),
          [a, b, block](benchmark::State& s) { momentum_step(s, a, b, block); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    benchmark::RegisterBenchmark((std::string("blur/softdiff/") + name).c_str(),
                                 [a](benchmark::State& s) { blur_only(s, a); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("fused_noise_update/softdiff", fused_update_only)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
