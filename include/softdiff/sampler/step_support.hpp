#pragma once
// What every sampler step shares: the argument checks, the final-step convention, the model
// archetype for the Sampler static_asserts, and the element-wise passes over the backend's
// primitives (backend/backend.hpp), so that each step is written once for every backend.
//
// Final-step convention (every sampler in sampler/): when sigma_{t'} = 0 (t' = 0,
// where C_0 = I and sigma_0 = 0) the step returns h = phi(x_t, t) + x_t, the
// estimate of x_0, instead of evaluating its update rule. The update rules would
// otherwise keep terms that vanish only in expectation (the momentum rule gives
// h + sigma_t eta at t' = 0) or divide by sigma_{t'}.
//
// Noise: a step draws eta at each element's flat index in the whole batch (noise.offset + i,
// random.hpp), through the backend's noisy_map, which generates it in the same pass as the
// update rule.
#include <cstddef>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/update_rules.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler::detail {

/// Least elements per thread in element-wise passes on the CPU.
inline constexpr std::size_t elementwise_grain = backend::cpu::elementwise_grain;

/// The checks of one reverse step t -> t': finite times with 0 <= t' < t <= 1, sigma_t > 0,
/// 0 <= sigma_{t'} <= sigma_t, a non-empty batch. Finiteness of x is checked by the model's
/// denoise (SoftDiffusion::denoise), which every step calls first.
template <class A>
void check_step(const char* where, const A& x, double t, double t_next, double s, double s_next) {
  rules::check_step(where, shape_of(x), t, t_next, s, s_next);
}

/// out[i] = rule(in[0][i], ..., eta_i) on backend B, eta_i the normal at flat index
/// noise.offset + offset + i of the step's stream.
template <Backend B, class T, class Rule, std::size_t K>
void noisy_update(T* out, const T* const (&in)[K], Rule rule, std::size_t n, const noise_source& noise,
                  std::size_t offset = 0) {
  B::noisy_map(out, in, rule, n, noise.seed, noise.stream, noise.offset + offset);
}

/// The start of the pf_momentum, ddim and predictor-corrector steps: h = phi(x_t, t) + x_t, then
/// y = C_t h and c = C_{t'} h. On a final step (s' = 0) x becomes h instead and the result is
/// false (the final-step convention above).
template <Backend B, class M, class A>
bool estimate(M& model, A& x, double t, double t_next, double s_next, A& h, A& y, A& c) {
  model.denoise(x, t, h);
  if (s_next == 0.0) {
    backend::copy_batch<B>(h, x);
    return false;
  }
  model.apply_operator(t, h, y);
  model.apply_operator(t_next, h, c);
  return true;
}

/// Eq. 52 on backend arrays: out <- c + sqrt(s'^2 - k^2) (x - y) / s + k eta, with y = C_t h,
/// c = C_{t'} h, k = k_ratio s'; out may be x. Shared by ddim and the predictor-corrector.
template <Backend B, class T>
void ddim_update(const T* x, T* out, const T* y, const T* c, std::size_t n, double s, double s_next,
                 double k_ratio, const noise_source& noise) {
  const rules::ddim<T> rule = rules::ddim<T>::at(s, s_next, k_ratio);
  if (rule.noisy)
    noisy_update<B>(out, {x, y, c}, rule, n, noise);
  else
    B::map(out, {x, y, c}, rule, n);
}

/// The least a SamplingModel offers, for `static_assert(Sampler<S, model_archetype<T>>)`;
/// A is its batch type (softdiff::batch on the CPU, backend::batch_t elsewhere).
template <class T, class A = batch<T>>
struct model_archetype {
  using scalar_type = T;
  using batch_type = A;
  void denoise(const A& x, double t, A& out);
  void apply_operator(double t, const A& x, A& out);
  double sigma(double t) const;
};

/// The noise ratio k = k_ratio sigma_{t'} of eq. 52, held by ddim and predictor_corrector.
class k_ratio_holder {
public:
  explicit k_ratio_holder(double k_ratio, const char* where) : k_ratio_(k_ratio) {
    rules::check_k_ratio(where, k_ratio);
  }
  [[nodiscard]] double k_ratio() const { return k_ratio_; }

protected:
  double k_ratio_;
};

}  // namespace softdiff::sampler::detail
