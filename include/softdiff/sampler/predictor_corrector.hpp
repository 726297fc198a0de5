#pragma once
// Predictor-corrector sampler: a DDIM-type predictor (eq. 52) and a probability-flow
// momentum corrector (eq. 51), in the manner of Heun's method. Step t -> t', with
// s = sigma_t, s' = sigma_{t'}, a = (s'^2 - s^2) / s^2:
//
//   1. h   = phi(x_t, t) + x_t                                            (evaluation 1)
//   2. predictor, eq. 52:  x~ = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta
//   3. h~  = phi(x~, t') + x~                                             (evaluation 2)
//   4. corrector, eq. 51 from x_t with the trapezoidal x_0 estimate hb = (h + h~) / 2:
//        e = C_t hb - x_t;  x_{t'} = x_t - (1/2) a e + (C_{t'} hb - C_t hb)
//
// The corrector repeats the probability-flow momentum step of the same interval, but
// with the x_0 estimate averaged over both ends of the interval instead of taken at t
// only (with C_t = I it is the trapezoidal rule on the denoiser output for the
// probability-flow ODE). Linearity gives C hb = (C h + C h~) / 2, so a step applies the
// operator four times. NFE: 2 per step, except on a final step (sigma_{t'} = 0), which
// returns h after 1 evaluation (step_support.hpp). k = k_ratio * s' as in ddim.hpp; the
// predictor's noise reaches x_{t'} only through h~.
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
class predictor_corrector : public detail::k_ratio_holder {
public:
  using scalar_type = T;
  using backend_type = B;
  using batch_type = backend::batch_t<B, T>;
  static constexpr std::string_view name = "predictor_corrector";

  /// Predictor noise k = k_ratio * sigma_{t'}, k_ratio in [0, 1] (0: deterministic).
  explicit predictor_corrector(double k_ratio = 0.0)
      : detail::k_ratio_holder(k_ratio, "sampler::predictor_corrector") {}

  [[nodiscard]] int evaluations_per_step() const { return 2; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies the predictor's eta when k > 0.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<model_batch_t<M>, batch_type>
  void step(M& model, batch_type& x, double t, double t_next, const noise_source& noise) {
    const double s = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("sampler::predictor_corrector::step", x, t, t_next, s, s_next);
    if (!detail::estimate<B>(model, x, t, t_next, s_next, h_, y_, c_)) return;  // 1. h, C_t h, C_{t'} h
    ensure_shape(pred_, shape_of(x));
    // 2. predictor, eq. 52: x~ = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta
    detail::ddim_update<B>(x.data(), pred_.data(), y_.data(), c_.data(), x.size(), s, s_next, k_ratio_, noise);
    model.denoise(pred_, t_next, h_);       // 3. h~ = phi(x~, t') + x~
    model.apply_operator(t, h_, y2_);       // C_t h~
    model.apply_operator(t_next, h_, c2_);  // C_{t'} h~
    // 4. corrector, eq. 51 with hb = (h + h~) / 2
    correct(x.data(), y_.data(), c_.data(), y2_.data(), c2_.data(), x.size(), s, s_next);
  }

  /// The corrector alone (x updated in place): y1, c1 = C_t h, C_{t'} h; y2, c2 = C_t h~, C_{t'} h~;
  /// e = C_t hb - x_t;  x_{t'} = x_t - (1/2) ((s'^2 - s^2) / s^2) e + (C_{t'} hb - C_t hb).
  static void correct(T* x, const T* y1, const T* c1, const T* y2, const T* c2, std::size_t n, double s,
                      double s_next) {
    B::map(x, {x, y1, c1, y2, c2}, rules::corrector<T>::at(s, s_next), n);
  }

private:
  batch_type h_, y_, c_, pred_, y2_, c2_;  // workspaces: h then h~, C_t h, C_{t'} h, x~, C_t h~, C_{t'} h~
};

static_assert(Sampler<predictor_corrector<float>, detail::model_archetype<float>>);
static_assert(Sampler<predictor_corrector<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
