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

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float, Backend B = backend::cpu>
class momentum {
public:
  using scalar_type = T;
  using backend_type = B;
  using batch_type = backend::batch_t<B, T>;
  static constexpr std::string_view name = "momentum";

  momentum() = default;
  /// Steps run over blocks of `block_samples` samples (0: the whole batch at once).
  explicit momentum(std::size_t block_samples) : block_(block_samples) {}

  [[nodiscard]] int evaluations_per_step() const { return 1; }
  [[nodiscard]] std::size_t block_samples() const { return block_; }

  /// One step t -> t' (t' < t) on x in place; `noise` supplies eta.
  template <SamplingModel M>
    requires std::same_as<typename M::scalar_type, T> && std::same_as<model_batch_t<M>, batch_type>
  void step(M& model, batch_type& x, double t, double t_next, const noise_source& noise) {
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
      B::copy(x.data() + n0 * d, w.x.data(), nb * d);
      run(model, w.x, x.data() + n0 * d, n0 * d, t, t_next, s, s_next, noise, w);
    }
  }

  /// The fused element-wise part of eq. 17 alone, out[i] from x_t[i], y_t[i], C_{t'} x0[i] and
  /// the noise at flat index offset + i (out may be xt).
  static void update(T* out, const T* xt, const T* y, const T* c, std::size_t n, double s, double s_next,
                     const noise_source& noise, std::size_t offset = 0) {
    // Algorithm 2 / eq. 17, with s = sigma_t, s' = sigma_{t'}:
    //   e       = y_t - x_t
    //   z       = x_t - ((s'^2 - s^2) / s^2) e + sqrt(s^2 - s'^2) eta
    //   x_{t'}  = z + (C_{t'} x0 - y_t)
    // one pass over x_t, y_t, C_{t'} x0 with eta generated in the same pass.
    detail::noisy_update<B>(out, {xt, y, c}, rules::momentum<T>::at(s, s_next), n, noise, offset);
  }

private:
  struct workspace {
    batch_type x, x0, y, c;  // block of x_t (blocked steps only), x0 = phi + x_t, y_t = C_t x0, C_{t'} x0
  };

  /// Eq. 17 for the samples in xt, written to out; `offset` is xt's flat index in the batch.
  template <class M>
  void run(M& model, const batch_type& xt, T* out, std::size_t offset, double t, double t_next, double s,
           double s_next, const noise_source& noise, workspace& w) {
    model.denoise(xt, t, w.x0);  // x0 = phi(x_t, t) + x_t
    const std::size_t size = xt.size();
    if (s_next == 0.0) {  // final step: return the x_0 estimate (step_support.hpp)
      B::copy(w.x0.data(), out, size);
      return;
    }
    model.apply_operator(t, w.x0, w.y);       // y_t = C_t x0
    model.apply_operator(t_next, w.x0, w.c);  // C_{t'} x0
    // xt may be out itself (whole-batch step): each index is read before it is written
    update(out, xt.data(), w.y.data(), w.c.data(), size, s, s_next, noise, offset);
  }

  std::size_t block_ = 0;
  workspace whole_, rest_;
};

static_assert(Sampler<momentum<float>, detail::model_archetype<float>>);
static_assert(Sampler<momentum<double>, detail::model_archetype<double>>);

}  // namespace softdiff::sampler
