#pragma once
// DDIM-type sampler (eq. 52 of Soft Diffusion):
//   x_{t'} = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta,   0 <= k <= s',
// with h = phi(x_t, t) + x_t, s = sigma_t, s' = sigma_{t'}. The paper prints the last
// term as k^2 eta; k eta is what keeps the noise variance of x_{t'} at s'^2
// ((s'^2 - k^2) + k^2 = s'^2, since (x_t - C_t h) / s estimates a unit-variance eta).
//
// k is set per step as k = k_ratio * s' with k_ratio in [0, 1], so that 0 <= k <= s'
// holds on every step of any grid: k_ratio = 0 is the deterministic DDIM step, and
// k_ratio = 1 reduces eq. 52 to the naive sampler (Algorithm 1).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <string_view>

#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

namespace detail {

/// Eq. 52 on raw arrays: out <- c + sqrt(s'^2 - k^2) (x - y) / s + k eta, with y = C_t h,
/// c = C_{t'} h, k = k_ratio s'; out may be x. Shared with the predictor-corrector sampler.
template <class T>
void ddim_update(const T* x, T* out, const T* y, const T* c, std::size_t n, double s, double s_next,
                 double k_ratio, const noise_source& noise) {
  const rules::ddim<T> rule = rules::ddim<T>::at(s, s_next, k_ratio);
  if (!rule.noisy) {
    backend::cpu::parallel_chunks(n, elementwise_grain, [=](std::size_t lo, std::size_t hi) {
#pragma omp simd
      for (std::size_t i = lo; i < hi; ++i) out[i] = rule(x[i], y[i], c[i]);
    });
    return;
  }
  for_each_normal_chunk<T>(noise, n, [=](std::size_t lo, std::size_t hi, const T* eta) {
#pragma omp simd
    for (std::size_t i = lo; i < hi; ++i) out[i] = rule(x[i], y[i], c[i], eta[i - lo]);
  });
}

}  // namespace detail

template <class T = float>
class ddim {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "ddim";

  /// k = k_ratio * sigma_{t'} on each step; k_ratio in [0, 1] (0: deterministic).
  explicit ddim(double k_ratio = 0.0) : k_ratio_(k_ratio) { rules::check_k_ratio("sampler::ddim", k_ratio); }

  [[nodiscard]] int evaluations_per_step() const { return 1; }
  [[nodiscard]] double k_ratio() const { return k_ratio_; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies eta when k > 0.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T>
  void step(M& model, batch<T>& x, double t, double t_next, const noise_source& noise) {
    const double s = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("sampler::ddim::step", x, t, t_next, s, s_next);
    if (!detail::estimate(model, x, t, t_next, s_next, h_, y_, c_)) return;  // h, C_t h, C_{t'} h
    // eq. 52: x_{t'} = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta
    detail::ddim_update(x.data(), x.data(), y_.data(), c_.data(), x.size(), s, s_next, k_ratio_, noise);
  }

private:
  double k_ratio_;
  batch<T> h_, y_, c_;  // workspaces: h, C_t h, C_{t'} h
};

static_assert(Sampler<ddim<float>, detail::model_archetype<float>>);
static_assert(Sampler<ddim<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
