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

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float, Backend B = backend::cpu>
class ddim : public detail::k_ratio_holder {
public:
  using scalar_type = T;
  using backend_type = B;
  using batch_type = backend::batch_t<B, T>;
  static constexpr std::string_view name = "ddim";

  /// k = k_ratio * sigma_{t'} on each step; k_ratio in [0, 1] (0: deterministic).
  explicit ddim(double k_ratio = 0.0) : detail::k_ratio_holder(k_ratio, "sampler::ddim") {}

  [[nodiscard]] int evaluations_per_step() const { return 1; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies eta when k > 0.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<model_batch_t<M>, batch_type>
  void step(M& model, batch_type& x, double t, double t_next, const noise_source& noise) {
    const double s = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("sampler::ddim::step", x, t, t_next, s, s_next);
    if (!detail::estimate<B>(model, x, t, t_next, s_next, h_, y_, c_)) return;  // h, C_t h, C_{t'} h
    // eq. 52: x_{t'} = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta
    detail::ddim_update<B>(x.data(), x.data(), y_.data(), c_.data(), x.size(), s, s_next, k_ratio_, noise);
  }

private:
  batch_type h_, y_, c_;  // workspaces: h, C_t h, C_{t'} h
};

static_assert(Sampler<ddim<float>, detail::model_archetype<float>>);
static_assert(Sampler<ddim<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
