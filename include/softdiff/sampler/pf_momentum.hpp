#pragma once
// Probability-flow Momentum Sampler (eq. 51 of Soft Diffusion): the momentum sampler
// (eq. 17) without noise and with half the denoising step, the deterministic sampler of
// the probability-flow ODE. With C_t = I it is the Euler step of
// dx = -(1/2) d(sigma^2) grad log q_t(x).
#include <cmath>
#include <concepts>
#include <string_view>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float, Backend B = backend::cpu>
class pf_momentum {
public:
  using scalar_type = T;
  using backend_type = B;
  using batch_type = backend::batch_t<B, T>;
  static constexpr std::string_view name = "pf_momentum";

  [[nodiscard]] int evaluations_per_step() const { return 1; }

  /// One deterministic step t -> t' (t' < t) on x in place; `noise` is not used.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<model_batch_t<M>, batch_type>
  void step(M& model, batch_type& x, double t, double t_next, const noise_source& /*noise*/) {
    const double s = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("sampler::pf_momentum::step", x, t, t_next, s, s_next);
    if (!detail::estimate<B>(model, x, t, t_next, s_next, x0_, y_, c_)) return;  // x0, y_t = C_t x0, C_{t'} x0
    update(x.data(), y_.data(), c_.data(), x.size(), s, s_next);
  }

  /// The element-wise part of eq. 51 alone (x updated in place), given y_t = C_t x0 and C_{t'} x0:
  /// e = y_t - x_t;  z = x_t - (1/2) ((s'^2 - s^2) / s^2) e;  x_{t'} = z + (C_{t'} x0 - y_t).
  static void update(T* x, const T* y, const T* c, std::size_t n, double s, double s_next) {
    B::map(x, {x, y, c}, rules::pf_momentum<T>::at(s, s_next), n);
  }

private:
  batch_type x0_, y_, c_;  // workspaces: x0 = phi + x_t, y_t = C_t x0, C_{t'} x0
};

static_assert(Sampler<pf_momentum<float>, detail::model_archetype<float>>);
static_assert(Sampler<pf_momentum<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
