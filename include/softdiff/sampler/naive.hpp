#pragma once
// Naive sampler (Algorithm 1 of Soft Diffusion): estimate x_0, then corrupt it afresh
// to the next level. It throws away the noise already in x_t, which is why it loses
// diversity (section 3.4); kept as the baseline the momentum sampler improves on.
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

/// Algorithm 1 on backend B (backend::cpu: softdiff::batch; any other: backend::batch_t).
template <class T = float, Backend B = backend::cpu>
class naive {
public:
  using scalar_type = T;
  using backend_type = B;
  using batch_type = backend::batch_t<B, T>;
  static constexpr std::string_view name = "naive";

  [[nodiscard]] int evaluations_per_step() const { return 1; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies eta.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<model_batch_t<M>, batch_type>
  void step(M& model, batch_type& x, double t, double t_next, const noise_source& noise) {
    const double s_next = model.sigma(t_next);
    detail::check_step("sampler::naive::step", x, t, t_next, model.sigma(t), s_next);
    model.denoise(x, t, h_);  // h = phi(x_t, t) + x_t
    if (s_next == 0.0) {      // final step: return the x_0 estimate (step_support.hpp)
      backend::copy_batch<B>(h_, x);
      return;
    }
    model.apply_operator(t_next, h_, c_);  // C_{t'} h
    update(x.data(), c_.data(), x.size(), s_next, noise);
  }

  /// The element-wise part alone, Algorithm 1: x_{t'} = C_{t'} h + sigma_{t'} eta, c = C_{t'} h.
  static void update(T* x, const T* c, std::size_t n, double s_next, const noise_source& noise) {
    detail::noisy_update<B>(x, {c}, rules::naive<T>::at(s_next), n, noise);
  }

private:
  batch_type h_, c_;  // workspaces: h = phi + x_t, C_{t'} h
};

static_assert(Sampler<naive<float>, detail::model_archetype<float>>);
static_assert(Sampler<naive<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
