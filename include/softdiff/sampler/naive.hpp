#pragma once
// Naive sampler (Algorithm 1 of Soft Diffusion): estimate x_0, then corrupt it afresh
// to the next level. It throws away the noise already in x_t, which is why it loses
// diversity (section 3.4); kept as the baseline the momentum sampler improves on.
#include <cmath>
#include <concepts>
#include <string_view>

#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float>
class naive {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "naive";
  [[nodiscard]] int evaluations_per_step() const { return 1; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies eta.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T>
  void step(M& model, batch<T>& x, double t, double t_next, const noise_source& noise) {
    const double s_next = model.sigma(t_next);
    detail::check_step("sampler::naive::step", x, t, t_next, model.sigma(t), s_next);
    model.denoise(x, t, h_);  // h = phi(x_t, t) + x_t
    if (s_next == 0.0) {      // final step: return the x_0 estimate (step_support.hpp)
      detail::copy_into(h_, x);
      return;
    }
    model.apply_operator(t_next, h_, c_);  // C_{t'} h
    // Algorithm 1: x_{t'} = C_{t'} h + sigma_{t'} eta
    const rules::naive<T> rule = rules::naive<T>::at(s_next);
    const T* c = c_.data();
    T* out = x.data();
    detail::for_each_normal_chunk<T>(noise, x.size(), [=](std::size_t b, std::size_t e, const T* eta) {
#pragma omp simd
      for (std::size_t i = b; i < e; ++i) out[i] = rule(c[i], eta[i - b]);
    });
  }

private:
  batch<T> h_, c_;  // workspaces: h = phi + x_t, C_{t'} h
};

static_assert(Sampler<naive<float>, detail::model_archetype<float>>);
static_assert(Sampler<naive<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
