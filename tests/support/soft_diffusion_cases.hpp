#pragma once
// SoftDiffusion on a backend (soft_diffusion_on_backend.hpp) against SoftDiffusion on the CPU,
// written once and run on every enabled backend: the includer defines SOFTDIFF_TEST_BACKEND
// (a Backend other than backend::cpu) and SOFTDIFF_TEST_TAG, and includes this file once.
// Both models share the operator, the schedule, the final distribution and a linear network
// phi(x, t) = -(1/4 + t/10) x (on the backend: nn::device_denoiser over backend pointers); each
// case compares what the backend model returns with the CPU model's result for the same seed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "softdiff/nn/adapters.hpp"
#include "softdiff/nn/device_denoiser.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/op/on_backend.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/soft_diffusion.hpp"
#include "operator_checks.hpp"

namespace softdiff::testing::soft_diffusion_cases {

using B = SOFTDIFF_TEST_BACKEND;
using T = float;
using blur_t = op::gaussian_blur<T>;

inline T phi_factor(double t) { return static_cast<T>(-(0.25 + 0.1 * t)); }

/// The network on backend pointers: one scale per sample.
struct device_net_fn {
  void operator()(const T* x, const shape4& s, const double* t, T* out) const {
    const std::size_t d = s[1] * s[2] * s[3];
    for (std::size_t n = 0; n < s[0]; ++n) op::scale_apply<B>(phi_factor(t[n]), x + n * d, out + n * d, d);
  }
};
/// The same network on host pointers.
struct host_net_fn {
  void operator()(const T* x, const shape4& s, const double* t, T* out) const {
    const std::size_t d = s[1] * s[2] * s[3];
    for (std::size_t i = 0; i < s[0] * d; ++i) out[i] = phi_factor(t[i / d]) * x[i];
  }
};

using device_net = nn::device_denoiser<B, T, device_net_fn>;
using host_net = nn::callable_denoiser<T, host_net_fn>;
using device_model = SoftDiffusion<blur_t, schedule::two_stage, device_net, B>;
using host_model = SoftDiffusion<blur_t, schedule::two_stage, host_net>;
using device_batch = backend::batch_t<B, T>;

inline schedule::two_stage test_schedule() {
  schedule::two_stage_parameters p;
  p.sigma_max = 0.3;
  p.level_min = 0.3;
  p.level_max = 4.0;
  return schedule::two_stage(p);
}

inline batch<T> dataset() { return random_batch<T>({6, 2, 9, 11}, 31); }

struct models {
  device_model dev{blur_t(10), test_schedule(), device_net(device_net_fn{})};
  host_model host{blur_t(10), test_schedule(), host_net(host_net_fn{})};
  models() {
    dev.fit_final_distribution(dataset());
    host.fit_final_distribution(dataset());
  }
};

/// max |a - b| / max(1, max |b|).
inline double gap(const batch<T>& a, const batch<T>& b) {
  REQUIRE(shape_of(a) == shape_of(b));
  double diff = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a.data()[i]) - double(b.data()[i])));
    scale = std::max(scale, std::abs(double(b.data()[i])));
  }
  return diff / scale;
}

inline batch<T> host_copy(const device_batch& d) {
  batch<T> h;
  backend::to_host<B>(d, h);
  return h;
}

template <template <class, class> class S, class... Args>
void check_sampler(models& m, Args... args) {
  const batch<T> want = m.host.sample(5, 6, 77, S<T, backend::cpu>(args...));
  const batch<T> got = host_copy(m.dev.sample(5, 6, 77, S<T, B>(args...)));
  INFO((S<T, B>::name));
  CHECK(gap(got, want) <= 2e-4);
  CHECK(std::any_of(want.begin(), want.end(), [](T v) { return std::abs(v) > T(0.1); }));  // not a trivial batch
  CHECK(std::all_of(got.begin(), got.end(), [](T v) { return std::isfinite(v); }));
  // a part of the batch (sample_range) is those rows of the whole, on the backend too
  const batch<T> part = host_copy(m.dev.sample(sample_range{2, 2}, 6, 77, S<T, B>(args...)));
  const std::size_t d = part.size() / 2;
  batch<T> rows({2, 2, 9, 11});
  std::copy(got.data() + 2 * d, got.data() + 4 * d, rows.data());
  CHECK(gap(part, rows) <= 1e-6);
}

}  // namespace softdiff::testing::soft_diffusion_cases

TEST_CASE("SoftDiffusion on a backend: corrupt, loss and its gradient equal the CPU's", "[soft_diffusion][backend]" SOFTDIFF_TEST_TAG) {
  using namespace softdiff;
  namespace sc = testing::soft_diffusion_cases;
  sc::models m;
  const batch<sc::T> x0 = testing::random_batch<sc::T>({4, 2, 9, 11}, 5);
  const std::vector<double> t{0.05, 0.3, 0.3, 0.9};
  const noise_source noise{12, 34};
  batch<sc::T> xt, grad;
  m.host.corrupt(x0, t, noise, xt);
  const auto dx0 = backend::to_backend_batch<sc::B>(x0);
  sc::device_batch dxt, dgrad;
  m.dev.corrupt(dx0, t, noise, dxt);
  CHECK(sc::gap(sc::host_copy(dxt), xt) <= 2e-6);
  for (const auto w : {loss::weighting::unit, loss::weighting::inverse_sigma2}) {
    const loss::loss_value want = m.host.loss(x0, t, noise, w, &grad);
    const loss::loss_value got = m.dev.loss(dx0, t, noise, w, &dgrad);
    CHECK(got.value == Approx(want.value).epsilon(1e-5));
    CHECK(got.unweighted == Approx(want.unweighted).epsilon(1e-5));
    CHECK(sc::gap(sc::host_copy(dgrad), grad) <= 1e-5);
    CHECK(want.value > 0);
  }
  // a shard of a larger batch: N of the normalisation is the whole batch
  CHECK(m.dev.loss(dx0, t, noise, loss::weighting::unit, nullptr, 8).value ==
        Approx(m.host.loss(x0, t, noise, loss::weighting::unit, loss::loss_kind::ssm, nullptr, 8).value).epsilon(1e-5));
}

TEST_CASE("SoftDiffusion on a backend: denoise and score (eq. 10) equal the CPU's", "[soft_diffusion][backend]" SOFTDIFF_TEST_TAG) {
  using namespace softdiff;
  namespace sc = testing::soft_diffusion_cases;
  sc::models m;
  const batch<sc::T> x = testing::random_batch<sc::T>({3, 2, 9, 11}, 8);
  const auto dx = backend::to_backend_batch<sc::B>(x);
  batch<sc::T> h, s;
  sc::device_batch dh, ds;
  m.host.denoise(x, 0.4, h);
  m.dev.denoise(dx, 0.4, dh);
  CHECK(sc::gap(sc::host_copy(dh), h) == 0);
  m.host.score(x, 0.4, s);
  m.dev.score(dx, 0.4, ds);
  CHECK(sc::gap(sc::host_copy(ds), s) <= 1e-5);
  REQUIRE_THROWS_WITH(m.dev.score(dx, 0.0, ds), Catch::Contains("the score needs sigma_t > 0"));
  REQUIRE_THROWS_WITH(m.dev.denoise(dx, 1.5, dh), Catch::Contains("outside [0, 1]"));
}

TEST_CASE("SoftDiffusion on a backend: all five samplers give the CPU's samples", "[soft_diffusion][backend][sampler]" SOFTDIFF_TEST_TAG) {
  using namespace softdiff;
  namespace sc = testing::soft_diffusion_cases;
  sc::models m;
  sc::check_sampler<sampler::naive>(m);
  sc::check_sampler<sampler::momentum>(m);
  sc::check_sampler<sampler::momentum>(m, std::size_t{2});  // over blocks of 2 samples
  sc::check_sampler<sampler::pf_momentum>(m);
  sc::check_sampler<sampler::ddim>(m, 0.5);
  sc::check_sampler<sampler::predictor_corrector>(m, 0.3);
}
