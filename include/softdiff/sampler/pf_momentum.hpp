#pragma once
// Probability-flow Momentum Sampler (eq. 51 of Soft Diffusion): the momentum sampler
// (eq. 17) without noise and with half the denoising step, the deterministic sampler of
// the probability-flow ODE. With C_t = I it is the Euler step of
// dx = -(1/2) d(sigma^2) grad log q_t(x).
#include <cmath>
#include <concepts>
#include <string_view>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float>
class pf_momentum {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "pf_momentum";
  [[nodiscard]] int evaluations_per_step() const { return 1; }

  /// One deterministic step t -> t' (t' < t) on x in place; `noise` is not used.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T>
  void step(M& model, batch<T>& x, double t, double t_next, const noise_source& /*noise*/) {
    const double s = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("sampler::pf_momentum::step", x, t, t_next, s, s_next);
    if (!detail::estimate(model, x, t, t_next, s_next, x0_, y_, c_)) return;  // x0, y_t = C_t x0, C_{t'} x0
    // eq. 51: e = y_t - x_t;  z = x_t - (1/2) ((s'^2 - s^2) / s^2) e;  x_{t'} = z + (C_{t'} x0 - y_t)
    const rules::pf_momentum<T> rule = rules::pf_momentum<T>::at(s, s_next);
    const T* y = y_.data();
    const T* c = c_.data();
    T* xp = x.data();
    backend::cpu::parallel_chunks(x.size(), detail::elementwise_grain, [=](std::size_t lo, std::size_t hi) {
#pragma omp simd
      for (std::size_t i = lo; i < hi; ++i) xp[i] = rule(xp[i], y[i], c[i]);
    });
  }

private:
  batch<T> x0_, y_, c_;  // workspaces: x0 = phi + x_t, y_t = C_t x0, C_{t'} x0
};

static_assert(Sampler<pf_momentum<float>, detail::model_archetype<float>>);
static_assert(Sampler<pf_momentum<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
