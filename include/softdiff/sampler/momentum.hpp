#pragma once
// Momentum Sampler (Algorithm 2, eq. 17 of Soft Diffusion). Unlike the naive sampler
// it keeps the noise already in x_t: a denoising move along e = C_t x0 - x_t, fresh
// noise of variance sigma_t^2 - sigma_{t'}^2 so that x keeps noise level sigma_{t'},
// and the deblurring move C_{t'} x0 - C_t x0 (the "momentum").
//
// Blocks: momentum(block_samples) runs the step over blocks of that many samples, one
// model call per block, so that x, x0, C_t x0 and C_{t'} x0 of a block stay in cache
// instead of streaming four whole-batch arrays through memory several times. Noise is
// drawn at each element's flat index in the whole batch, so the result is bit for bit
// the one of the unblocked step whenever the model treats samples independently (as
// every operator and Denoiser in softdiff does). 0 (the default) is one block.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>

#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float>
class momentum {
public:
  using scalar_type = T;
  static constexpr std::string_view name = "momentum";

  momentum() = default;
  /// Steps run over blocks of `block_samples` samples (0: the whole batch at once).
  explicit momentum(std::size_t block_samples) : block_(block_samples) {}

  [[nodiscard]] int evaluations_per_step() const { return 1; }
  [[nodiscard]] std::size_t block_samples() const { return block_; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies eta.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T>
  void step(M& model, batch<T>& x, double t, double t_next, const noise_source& noise) {
    const double s = model.sigma(t), s_next = model.sigma(t_next);
    detail::check_step("sampler::momentum::step", x, t, t_next, s, s_next);
    const shape4 shape = shape_of(x);
    const std::size_t n = shape[0], d = x.size() / n;
    if (block_ == 0 || block_ >= n) {
      run(model, x, x.data(), 0, t, t_next, s, s_next, noise, whole_);
      return;
    }
    for (std::size_t n0 = 0; n0 < n; n0 += block_) {
      const std::size_t nb = std::min(block_, n - n0);
      workspace& w = nb == block_ ? whole_ : rest_;  // two block shapes at most: no reallocation
      ensure_shape(w.x, shape4{nb, shape[1], shape[2], shape[3]});
      std::copy(x.data() + n0 * d, x.data() + (n0 + nb) * d, w.x.data());
      run(model, w.x, x.data() + n0 * d, n0 * d, t, t_next, s, s_next, noise, w);
    }
  }

private:
  struct workspace {
    batch<T> x, x0, y, c;  // block of x_t (blocked steps only), x0 = phi + x_t, y_t = C_t x0, C_{t'} x0
  };

  /// Eq. 17 for the samples in xt, written to out; `offset` is xt's flat index in the batch.
  template <class M>
  void run(M& model, const batch<T>& xt, T* out, std::size_t offset, double t, double t_next, double s,
           double s_next, const noise_source& noise, workspace& w) {
    model.denoise(xt, t, w.x0);  // x0 = phi(x_t, t) + x_t
    const std::size_t size = xt.size();
    if (s_next == 0.0) {  // final step: return the x_0 estimate (step_support.hpp)
      std::copy(w.x0.data(), w.x0.data() + size, out);
      return;
    }
    model.apply_operator(t, w.x0, w.y);       // y_t = C_t x0
    model.apply_operator(t_next, w.x0, w.c);  // C_{t'} x0
    // Algorithm 2 / eq. 17, with s = sigma_t, s' = sigma_{t'}:
    //   e       = y_t - x_t
    //   z       = x_t - ((s'^2 - s^2) / s^2) e + sqrt(s^2 - s'^2) eta
    //   x_{t'}  = z + (C_{t'} x0 - y_t)
    // evaluated in one pass over x_t, y_t, C_{t'} x0 with eta generated in registers.
    const rules::momentum<T> rule = rules::momentum<T>::at(s, s_next);
    const T* y = w.y.data();
    const T* c = w.c.data();
    const T* xp = xt.data();  // may be out itself (whole-batch step): each index is read before it is written
    detail::for_each_normal_chunk_at<T>(noise, offset, size, [=](std::size_t lo, std::size_t hi, const T* eta) {
#pragma omp simd
      for (std::size_t i = lo; i < hi; ++i) out[i] = rule(xp[i], y[i], c[i], eta[i - lo]);
    });
  }

  std::size_t block_ = 0;
  workspace whole_, rest_;
};

static_assert(Sampler<momentum<float>, detail::model_archetype<float>>);
static_assert(Sampler<momentum<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
