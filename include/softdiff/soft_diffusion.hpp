#pragma once
// SoftDiffusion<Op, Sched, Net, Backend = backend::cpu>: one corruption operator family, one
// schedule and one network, composed through the concepts of concepts.hpp, with the forward process
//   x_t = C_t x_0 + sigma_t eta,   C_t = op at level schedule.level(t), C_0 = I, sigma_0 = 0,
// the Soft Score Matching loss (eq. 12), the x_0 estimate h = phi(x_t, t) + x_t and the
// score (eq. 10), and sampling with any Sampler from a final distribution p_1 (appendix D).
//
// Random streams: the initial draw from p_1 uses stream_for(stream_purpose::initial, 0);
// sampler step k (k = 0 for the first step, from grid[0]) uses
// stream_for(stream_purpose::sampler, k). A sample is a pure function of the seed and of its
// index in the batch: every draw takes its numbers at the element's flat index, so sample i is
// the same whether it is drawn in one batch of N or in parts (sample_range; a part starting at
// sample f draws at flat indices f * C * H * W on). Parts bound the memory of sampling to their
// size instead of N; the result is bitwise the same whenever the network treats samples
// independently (as every operator and Denoiser in softdiff does).
//
// This file is the specialisation for backend::cpu, on softdiff::batch; the primary template,
// for any other backend, is in soft_diffusion_on_backend.hpp.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/loss/baselines.hpp"
#include "softdiff/loss/kind.hpp"
#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/op/per_sample.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/final_distribution.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/sampler/time_grid.hpp"
#include "softdiff/schedule/validate.hpp"
#include "softdiff/soft_diffusion_on_backend.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff {

namespace detail {

/// 1 when v is NaN or infinite (all exponent bits set), else 0; an integer test, so that loops
/// OR-reducing it vectorise without reassociating floating-point sums.
template <class T>
[[nodiscard]] inline unsigned non_finite_bit(T v) {
  if constexpr (sizeof(T) == 4) {
    constexpr std::uint32_t e = 0x7f800000u;
    return (std::bit_cast<std::uint32_t>(v) & e) == e;
  } else {
    constexpr std::uint64_t e = 0x7ff0000000000000ull;
    return (std::bit_cast<std::uint64_t>(v) & e) == e;
  }
}

/// True when every element of x is finite; parallel, run before the serial check that names the index.
template <class T>
[[nodiscard]] bool batch_is_finite(const batch<T>& x) {
  const T* p = x.data();
  std::atomic<bool> finite{true};
  std::atomic<bool>* flag = &finite;
  backend::cpu::parallel_chunks(x.size(), ::softdiff::sampler::detail::elementwise_grain,
                                [p, flag](std::size_t b, std::size_t e) {
                                  unsigned bad = 0;
                                  for (std::size_t i = b; i < e; ++i) bad |= non_finite_bit(p[i]);
                                  if (bad) flag->store(false, std::memory_order_relaxed);
                                });
  return finite.load();
}

/// f(i) for i in [0, n), on several threads only when n is large enough to gain from them.
template <class F>
void for_each_index(std::size_t n, F f) {
  backend::cpu::parallel_chunks(n, ::softdiff::sampler::detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
#pragma omp simd
    for (std::size_t i = b; i < e; ++i) f(i);
  });
}

/// Throws naming `where` and the first bad index unless every element of x is finite.
template <class T>
void require_finite_batch(const batch<T>& x, const char* where) {
  if (!batch_is_finite(x)) check_finite(x, where);
}

}  // namespace detail

template <CorruptionOperator Op, Schedule Sched, Denoiser Net>
  requires std::same_as<typename Op::scalar_type, typename Net::scalar_type>
class SoftDiffusion<Op, Sched, Net, backend::cpu> : public detail::soft_diffusion_base<Op, Sched, Net> {
  using base = detail::soft_diffusion_base<Op, Sched, Net>;
  using base::check_time, base::fill_levels, base::op_, base::schedule_, base::net_, base::final_, base::levels_,
      base::sigmas_;

public:
  using scalar_type = typename Op::scalar_type;
  using T = scalar_type;
  using backend_type = backend::cpu;
  using batch_type = batch<T>;
  using final_distribution_type = ::softdiff::sampler::final_distribution<T>;

  /// Throws if the schedule does not fit the operator (schedule/validate.hpp).
  SoftDiffusion(Op op, Sched schedule, Net network) : base(std::move(op), std::move(schedule), std::move(network)) {}

  using base::level, base::sigma;

  /// y = C_t x.
  void apply_operator(double t, const batch<T>& x, batch<T>& y) const { op_.apply(level(t), x, y); }

  /// x_t = C_t x_0 + sigma_t eta with one time per sample; eta is `noise` at the flat index of x_t.
  void corrupt(const batch<T>& x0, std::span<const double> t, const noise_source& noise, batch<T>& x_t) {
    constexpr const char* where = "SoftDiffusion::corrupt";
    check_batch(x0, t, where);
    detail::require(&x0 != &x_t, where, ": x_t must not alias x_0");
    fill_levels(t);
    op::apply_per_sample(op_, std::span<const double>(levels_), x0, x_t);  // C_t x_0, per sample
    const std::size_t d = x0.size() / x0.shape()[0];
    const double* sg = sigmas_.data();
    T* out = x_t.data();
    noise.for_each_normal<T>(
        x_t.size(), [=](std::size_t lo, std::size_t hi, const T* eta) {
          for (std::size_t i = lo; i < hi;) {  // runs of one sample: + sigma_{t_n} eta
            const std::size_t n = i / d, end = std::min(hi, (n + 1) * d);
            const T s = static_cast<T>(sg[n]);
#pragma omp simd
            for (std::size_t j = i; j < end; ++j) out[j] += s * eta[j - lo];
            i = end;
          }
        });
  }

  /// Soft Score Matching (eq. 12) on a batch: x_t = corrupt(x_0, t, noise), phi = net(x_t, t)
  /// (forward() when the network is trainable, so that backward() may follow), r = x_0 - x_t,
  /// L = (1/(N D)) sum_i w(t_i) ||C_{t_i} (phi_i - r_i)||^2. grad_phi, when given, receives dL/dphi.
  ::softdiff::loss::loss_value loss(const batch<T>& x0, std::span<const double> t, const noise_source& noise,
                                    ::softdiff::loss::weighting w, batch<T>* grad_phi = nullptr) {
    return loss(x0, t, noise, w, ::softdiff::loss::loss_kind::ssm, grad_phi);
  }

  /// The same batch with another objective (loss/kind.hpp): eq. 12 (ssm), the clean-image loss
  /// (clean) or eq. 7 in score space (dsm), all with per-sample weights w(t_i) and the 1/(N D)
  /// normalisation; grad_phi receives the chosen loss's dL/dphi. `whole` > 0: x0 is a shard of a
  /// batch of `whole` samples (data-parallel training), and N = whole, so that the shards'
  /// gradients are exactly those of the whole batch (`noise` must then start at the shard's offset).
  ::softdiff::loss::loss_value loss(const batch<T>& x0, std::span<const double> t, const noise_source& noise,
                                    ::softdiff::loss::weighting w, ::softdiff::loss::loss_kind kind,
                                    batch<T>* grad_phi = nullptr, std::size_t whole = 0) {
    corrupt(x0, t, noise, xt_);
    if constexpr (TrainableDenoiser<Net>)
      net_.forward(xt_, t, phi_);
    else
      net_.predict(xt_, t, phi_);
    check_same_shape(phi_, x0, "SoftDiffusion::loss: network output vs x_0");
    ensure_shape(r_, shape_of(x0));
    const T* a = x0.data();
    const T* b = xt_.data();
    T* r = r_.data();
    detail::for_each_index(x0.size(), [=](std::size_t i) { r[i] = a[i] - b[i]; });  // r_t = x_0 - x_t
    weights_.resize(t.size());
    for (std::size_t n = 0; n < t.size(); ++n) weights_[n] = ::softdiff::loss::weight(w, sigmas_[n]);
    switch (kind) {
      case ::softdiff::loss::loss_kind::clean: return clean_loss_(weights_, phi_, r_, grad_phi, whole);
      case ::softdiff::loss::loss_kind::dsm:
        return dsm_loss_(op_, levels_, sigmas_, weights_, phi_, xt_, x0, grad_phi, whole);
      case ::softdiff::loss::loss_kind::ssm: break;
    }
    return loss_(op_, levels_, weights_, phi_, r_, grad_phi, whole);
  }

  /// h = phi(x_t, t) + x_t, the estimate of x_0 (eq. 8, 10), all samples at time t.
  void denoise(const batch<T>& x_t, double t, batch<T>& h) {
    check_time(t, "SoftDiffusion::denoise");
    times_.assign(x_t.shape()[0], t);
    denoise(x_t, std::span<const double>(times_), h);
  }

  /// h = phi(x_t, t_n) + x_t with one time per sample. A non-finite x_t is reported after the
  /// network has run (the check shares the pass that adds x_t); h is then unspecified.
  void denoise(const batch<T>& x_t, std::span<const double> t, batch<T>& h) {
    constexpr const char* where = "SoftDiffusion::denoise";
    check_batch(x_t, t, where, false);
    detail::require(&x_t != &h, where, ": h must not alias x_t");
    net_.predict(x_t, t, h);
    check_same_shape(h, x_t, "SoftDiffusion::denoise: network output vs x_t");
    const T* x = x_t.data();
    T* out = h.data();
    std::atomic<bool> finite{true};
    std::atomic<bool>* flag = &finite;
    backend::cpu::parallel_chunks(x_t.size(), ::softdiff::sampler::detail::elementwise_grain,
                                  [x, out, flag](std::size_t b, std::size_t e) {
                                    unsigned bad = 0;
                                    for (std::size_t i = b; i < e; ++i) {
                                      out[i] += x[i];
                                      bad |= detail::non_finite_bit(x[i]);
                                    }
                                    if (bad) flag->store(false, std::memory_order_relaxed);
                                  });
    if (!finite.load()) check_finite(x_t, where);
  }

  /// The score of eq. 10, s = (C_t h - x_t) / sigma_t^2, with h = phi(x_t, t) + x_t. Needs sigma_t > 0.
  void score(const batch<T>& x_t, double t, batch<T>& s) {
    constexpr const char* where = "SoftDiffusion::score";
    const double sg = sigma(t);
    detail::require(sg > 0.0, where, ": sigma(t) = ", sg, " at t = ", t, "; the score needs sigma_t > 0");
    detail::require(&x_t != &s, where, ": s must not alias x_t");
    denoise(x_t, t, h_);
    apply_operator(t, h_, s);
    const T inv = static_cast<T>(1.0 / (sg * sg));
    const T* x = x_t.data();
    T* out = s.data();
    detail::for_each_index(x_t.size(), [=](std::size_t i) { out[i] = (out[i] - x[i]) * inv; });
  }


  /// `count` samples with `steps` steps on the uniform grid from t = 1 to t = 0. `on_step(k, n)`
  /// is called after step k of n (progress reports; it must not touch the model).
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch<T> sample(std::size_t count, std::size_t steps, std::uint64_t seed, S sampler = S{},
                                OnStep on_step = {}) {
    return sample<S>(sample_range{0, count}, steps, seed, std::move(sampler), on_step);
  }

  /// Samples range.first .. range.first + range.count - 1 of `seed` with `steps` steps on the
  /// uniform grid: rows range.first on of what sample(range.first + range.count, ...) returns,
  /// bitwise (memory grows with range.count only).
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch<T> sample(sample_range range, std::size_t steps, std::uint64_t seed, S sampler = S{},
                                OnStep on_step = {}) {
    const std::vector<double> grid = ::softdiff::sampler::uniform_grid(steps);
    return sample<S>(range, std::span<const double>(grid), seed, std::move(sampler), on_step);
  }

  /// `count` samples on a user grid (sampler/time_grid.hpp), starting from the final distribution
  /// taken at grid[0]: x = C_{grid[0]} (colour) + sigma_{grid[0]} eta.
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch<T> sample(std::size_t count, std::span<const double> grid, std::uint64_t seed,
                                S sampler = S{}, OnStep on_step = {}) {
    return sample<S>(sample_range{0, count}, grid, seed, std::move(sampler), on_step);
  }

  /// Samples range.first .. range.first + range.count - 1 of `seed` on a user grid.
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch<T> sample(sample_range range, std::span<const double> grid, std::uint64_t seed,
                                S sampler = S{}, OnStep on_step = {}) {
    static_assert(Sampler<S, SoftDiffusion>, "S must model softdiff::Sampler for this SoftDiffusion");
    ::softdiff::sampler::validate_grid(grid);
    detail::require(range.count > 0, "SoftDiffusion::sample: count must be > 0");
    detail::require(final_.has_value(),
                    "SoftDiffusion::sample: no final distribution; call fit_final_distribution or "
                    "set_final_distribution, or start from your own x_1 with sample_from");
    const std::size_t d = final_->channels() * final_->height() * final_->width();
    batch<T> x;
    final_->sample(op_, level(grid[0]), sigma(grid[0]), range.count,
                   noise_source{seed, stream_for(stream_purpose::initial, 0), range.first * d}, x);
    sample_from(x, grid, seed, sampler, on_step, range.first);
    return x;
  }

  /// Runs `sampler` over the grid from a given x at grid[0], in place. Step k takes x from
  /// grid[k] to grid[k + 1] with noise stream stream_for(stream_purpose::sampler, k), drawn at
  /// flat index first_sample * C * H * W on (x being samples first_sample on of a larger batch);
  /// then on_step(k + 1, grid.size() - 1).
  template <class S, StepObserver OnStep = no_step_observer>
  void sample_from(batch<T>& x, std::span<const double> grid, std::uint64_t seed, S& sampler, OnStep on_step = {},
                   std::size_t first_sample = 0) {
    static_assert(Sampler<S, SoftDiffusion>, "S must model softdiff::Sampler for this SoftDiffusion");
    ::softdiff::sampler::validate_grid(grid);
    detail::require(x.size() > 0, "SoftDiffusion::sample_from: empty batch ", to_string(shape_of(x)));
    detail::require_finite_batch(x, "SoftDiffusion::sample_from: x");
    const std::uint64_t offset = static_cast<std::uint64_t>(first_sample) * (x.size() / x.shape()[0]);
    for (std::size_t k = 0; k + 1 < grid.size(); ++k) {
      sampler.step(*this, x, grid[k], grid[k + 1],
                   noise_source{seed, stream_for(stream_purpose::sampler, k), offset});
      on_step(k + 1, grid.size() - 1);
    }
  }

private:
  void check_batch(const batch<T>& x, std::span<const double> t, const char* where, bool values = true) const {
    detail::require(x.size() > 0, where, ": empty batch ", to_string(shape_of(x)));
    detail::require(t.size() == x.shape()[0], where, ": ", t.size(), " times for a batch of ", x.shape()[0],
                    " samples");
    for (std::size_t n = 0; n < t.size(); ++n)
      detail::require(std::isfinite(t[n]) && t[n] >= 0.0 && t[n] <= 1.0, where, ": t[", n, "] = ", t[n],
                      " is outside [0, 1]");
    if (values) detail::require_finite_batch(x, where);
  }

  // workspaces, kept so that steady-state loops do not allocate
  batch<T> xt_, phi_, r_, h_;
  std::vector<double> times_, weights_;
  ::softdiff::loss::soft_score_matching_loss<Op> loss_;
  ::softdiff::loss::clean_image_loss<T> clean_loss_;
  ::softdiff::loss::denoising_score_matching_loss<Op> dsm_loss_;
};

}  // namespace softdiff
