#pragma once
// SoftDiffusion<Op, Sched, Net, B>: the primary template, for every backend B other than the
// CPU (backend::cuda, or a backend of the user's); soft_diffusion.hpp specialises it for
// backend::cpu. The same composition as on the CPU, on B's batches (backend::device_batch):
//
//   corrupt    x_t = C_t x_0 + sigma_t eta, one time per sample: the operator on B
//              (op/on_backend.hpp) on each sample's slice, then sigma_n eta added by noisy_map
//              with eta at the element's flat index of the whole batch (as on the CPU)
//   loss       Soft Score Matching, eq. 12: e = phi - r_t, u = C_t e, L = (1/(N D)) sum_i w_i ||u_i||^2,
//              the squared norms by one strided-batched GEMM (u_i u_i^T per sample; accumulated in T,
//              not in double as on the CPU); dL/dphi_i = (2 w_i / (N D)) C_i^T u_i
//   denoise    h = phi(x_t, t) + x_t (eq. 8, 10); score (eq. 10) s = (C_t h - x_t) / sigma_t^2
//   sample     x_1 = C_1 (colour * 1) + sigma_1 eta from the final distribution (appendix D: the
//              colours drawn on the host as on the CPU, the planes filled, C_1 and the noise on B),
//              then any sampler of sampler/ instantiated for B (sampler::momentum<T, B>, ...)
//
// Net is a network on B (nn::BackendDenoiser: nn::device_denoiser wraps a callable on backend
// pointers). Inputs are not scanned for NaN or inf on the backend (a scan would stop an
// asynchronous backend); a non-finite loss is reported. Only eq. 12 is offered here; the clean
// and DSM objectives of loss/kind.hpp are on the CPU only.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/host_device.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/nn/device_denoiser.hpp"
#include "softdiff/op/on_backend.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/final_distribution.hpp"
#include "softdiff/sampler/time_grid.hpp"
#include "softdiff/schedule/validate.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff {

/// Samples [first, first + count) of the sequence that one seed gives: what a call for
/// first + count samples would return from row `first` on (soft_diffusion.hpp).
struct sample_range {
  std::size_t first = 0;
  std::size_t count = 0;
};

/// The StepObserver SoftDiffusion::sample uses when given none.
struct no_step_observer {
  void operator()(std::size_t /*done*/, std::size_t /*total*/) const noexcept {}
};
static_assert(StepObserver<no_step_observer>);

namespace detail {
template <class T>
struct add_scaled_noise {  // x + s eta
  T s;
  SOFTDIFF_HOST_DEVICE T operator()(T x, T eta) const { return x + s * eta; }
};
template <class T>
struct add_rule {  // a + b
  SOFTDIFF_HOST_DEVICE T operator()(T a, T b) const { return a + b; }
};
template <class T>
struct scale_rule {  // s a
  T s;
  SOFTDIFF_HOST_DEVICE T operator()(T a) const { return s * a; }
};
template <class T>
struct residual_error_rule {  // phi - r, r = x_0 - x_t
  SOFTDIFF_HOST_DEVICE T operator()(T phi, T x0, T xt) const { return phi - (x0 - xt); }
};
template <class T>
struct score_rule {  // (C_t h - x_t) / sigma_t^2
  T inv;
  SOFTDIFF_HOST_DEVICE T operator()(T ch, T x) const { return (ch - x) * inv; }
};
/// out[i] = colour[i / plane]: constant planes. Index: an element.
template <class T>
struct plane_fill_fn {
  T* out;
  const T* colour;
  std::size_t plane;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const { out[i] = colour[i / plane]; }
};
/// What SoftDiffusion on every backend shares: the operator (host form), the schedule, the network
/// and the final distribution, with the checks of times and the per-sample levels of a batch.
template <CorruptionOperator Op, Schedule Sched, class Net>
class soft_diffusion_base {
public:
  using scalar_type = typename Op::scalar_type;
  using final_distribution_type = ::softdiff::sampler::final_distribution<scalar_type>;

  /// Throws if the schedule does not fit the operator (schedule/validate.hpp).
  soft_diffusion_base(Op op, Sched schedule, Net network)
      : op_(std::move(op)), schedule_(std::move(schedule)), net_(std::move(network)) {
    ::softdiff::schedule::validate_schedule(schedule_, op_);
  }

  [[nodiscard]] const Op& op() const { return op_; }
  [[nodiscard]] const Sched& schedule() const { return schedule_; }
  [[nodiscard]] Net& network() { return net_; }
  [[nodiscard]] const Net& network() const { return net_; }

  [[nodiscard]] double sigma(double t) const {
    check_time(t, "SoftDiffusion::sigma");
    return static_cast<double>(schedule_.sigma(t));
  }
  [[nodiscard]] double level(double t) const {
    check_time(t, "SoftDiffusion::level");
    return static_cast<double>(schedule_.level(t));
  }

  void set_final_distribution(final_distribution_type d) {
    softdiff::detail::require(d.fitted(), "SoftDiffusion::set_final_distribution: the distribution is not fitted");
    final_ = std::move(d);
  }
  /// Fits p_1 to a dataset [M, C, H, W] in host memory (sampler/final_distribution.hpp).
  void fit_final_distribution(const batch<scalar_type>& data) { final_.emplace(data); }
  [[nodiscard]] const std::optional<final_distribution_type>& final_distribution() const { return final_; }

protected:
  static void check_time(double t, const char* where) {
    softdiff::detail::require(std::isfinite(t) && t >= 0.0 && t <= 1.0, where, ": time t = ", t, " is outside [0, 1]");
  }

  /// levels_[n], sigmas_[n] = the schedule at t[n].
  void fill_levels(std::span<const double> t) {
    levels_.resize(t.size());
    sigmas_.resize(t.size());
    for (std::size_t n = 0; n < t.size(); ++n) {
      levels_[n] = static_cast<double>(schedule_.level(t[n]));
      sigmas_[n] = static_cast<double>(schedule_.sigma(t[n]));
    }
  }

  Op op_;
  Sched schedule_;
  Net net_;
  std::optional<final_distribution_type> final_;
  std::vector<double> levels_, sigmas_;
};

}  // namespace detail

template <CorruptionOperator Op, Schedule Sched, class Net, Backend B = backend::cpu>
  requires std::same_as<typename Op::scalar_type, typename Net::scalar_type>
class SoftDiffusion : public detail::soft_diffusion_base<Op, Sched, Net> {
  using base = detail::soft_diffusion_base<Op, Sched, Net>;
  using base::check_time, base::fill_levels, base::op_, base::schedule_, base::net_, base::final_, base::levels_,
      base::sigmas_;
  static_assert(!std::is_same_v<B, backend::cpu>,
                "SoftDiffusion on backend::cpu needs a softdiff::Denoiser as its network (concepts.hpp)");
  static_assert(nn::BackendDenoiser<Net, B>,
                "SoftDiffusion on a backend needs a network with predict(x, t, phi) on that backend's batches "
                "(nn::BackendDenoiser; nn::device_denoiser wraps a callable on backend pointers)");

public:
  using scalar_type = typename Op::scalar_type;
  using T = scalar_type;
  using backend_type = B;
  using batch_type = backend::batch_t<B, T>;
  using final_distribution_type = ::softdiff::sampler::final_distribution<T>;

  /// Throws if the schedule does not fit the operator (schedule/validate.hpp).
  SoftDiffusion(Op op, Sched schedule, Net network)
      : base(std::move(op), std::move(schedule), std::move(network)), dev_op_(op_) {}

  using base::level, base::sigma;

  /// y = C_t x.
  void apply_operator(double t, const batch_type& x, batch_type& y) {
    const double l = level(t);
    ensure_shape(y, shape_of(x));
    dev_op_.apply(l, x.data(), y.data(), shape_of(x));
  }

  /// x_t = C_t x_0 + sigma_t eta with one time per sample; eta is `noise` at the flat index of x_t.
  void corrupt(const batch_type& x0, std::span<const double> t, const noise_source& noise, batch_type& x_t) {
    constexpr const char* where = "SoftDiffusion::corrupt";
    check_batch(x0, t, where);
    softdiff::detail::require(&x0 != &x_t, where, ": x_t must not alias x_0");
    fill_levels(t);
    for (const double l : levels_) check_level(op_, l, where);
    const shape4 s = shape_of(x0), one{1, s[1], s[2], s[3]};
    ensure_shape(x_t, s);
    const std::size_t d = x0.size() / s[0];
    for (std::size_t n = 0; n < s[0]; ++n) {
      T* out = x_t.data() + n * d;
      dev_op_.apply(levels_[n], x0.data() + n * d, out, one);  // C_{t_n} x_0
      B::noisy_map(out, {static_cast<const T*>(out)}, detail::add_scaled_noise<T>{static_cast<T>(sigmas_[n])}, d,
                   noise.seed, noise.stream, noise.offset + n * d);
    }
  }

  /// Soft Score Matching (eq. 12) on a batch: x_t = corrupt(x_0, t, noise), phi = net(x_t, t),
  /// r = x_0 - x_t, L = (1/(N D)) sum_i w(t_i) ||C_{t_i} (phi_i - r_i)||^2. grad_phi, when given,
  /// receives dL/dphi. `whole` > 0: x0 is a shard of a batch of `whole` samples (N = whole).
  ::softdiff::loss::loss_value loss(const batch_type& x0, std::span<const double> t, const noise_source& noise,
                                    ::softdiff::loss::weighting w, batch_type* grad_phi = nullptr,
                                    std::size_t whole = 0) {
    constexpr const char* where = "SoftDiffusion::loss";
    corrupt(x0, t, noise, xt_);
    net_.predict(xt_, t, phi_);
    softdiff::detail::require(shape_of(phi_) == shape_of(x0), where, ": the network returned shape ",
                              to_string(shape_of(phi_)), " for x_0 of shape ", to_string(shape_of(x0)));
    const shape4 s = shape_of(x0), one{1, s[1], s[2], s[3]};
    const std::size_t n = s[0], d = x0.size() / n;
    ensure_shape(u_, s);
    B::map(u_.data(), {phi_.data(), x0.data(), xt_.data()}, detail::residual_error_rule<T>{}, x0.size());  // e = phi - r
    for (std::size_t i = 0; i < n; ++i) dev_op_.apply(levels_[i], u_.data() + i * d, u_.data() + i * d, one);  // u = C e
    // ||u_i||^2 = u_i u_i^T, one 1 x 1 product per sample
    norms_dev_.resize(n);
    B::template gemm_strided_batched<T>(false, true, 1, 1, static_cast<int>(d), T(1), u_.data(), static_cast<int>(d),
                                        static_cast<std::ptrdiff_t>(d), u_.data(), static_cast<int>(d),
                                        static_cast<std::ptrdiff_t>(d), T(0), norms_dev_.data(), 1, 1,
                                        static_cast<int>(n));
    norms_t_.resize(n);
    norms_dev_.download(norms_t_.data());
    norms_.assign(norms_t_.begin(), norms_t_.end());
    weights_.resize(n);
    for (std::size_t i = 0; i < n; ++i) weights_[i] = ::softdiff::loss::weight(w, sigmas_[i]);
    const ::softdiff::loss::loss_value v = ::softdiff::loss::detail::reduce(norms_, weights_, d, whole);
    softdiff::detail::require(std::isfinite(v.value), where, ": the loss is ", v.value, " on backend ", B::name,
                              " (a non-finite x_0 or network output; inputs are not scanned on a backend)");
    if (grad_phi != nullptr) {
      ensure_shape(*grad_phi, s);
      const double nd = static_cast<double>(::softdiff::loss::detail::normaliser(n, whole)) * static_cast<double>(d);
      for (std::size_t i = 0; i < n; ++i) {
        T* g = grad_phi->data() + i * d;
        dev_op_.apply_adjoint(levels_[i], u_.data() + i * d, g, one);  // C^T C (phi - r)
        B::map(g, {static_cast<const T*>(g)}, detail::scale_rule<T>{static_cast<T>(2.0 * weights_[i] / nd)}, d);
      }
    }
    return v;
  }

  /// h = phi(x_t, t) + x_t, the estimate of x_0 (eq. 8, 10), all samples at time t.
  void denoise(const batch_type& x_t, double t, batch_type& h) {
    check_time(t, "SoftDiffusion::denoise");
    times_.assign(shape_of(x_t)[0], t);
    denoise(x_t, std::span<const double>(times_), h);
  }

  /// h = phi(x_t, t_n) + x_t with one time per sample.
  void denoise(const batch_type& x_t, std::span<const double> t, batch_type& h) {
    constexpr const char* where = "SoftDiffusion::denoise";
    check_batch(x_t, t, where);
    softdiff::detail::require(&x_t != &h, where, ": h must not alias x_t");
    net_.predict(x_t, t, h);
    softdiff::detail::require(shape_of(h) == shape_of(x_t), where, ": the network returned shape ",
                              to_string(shape_of(h)), " for x_t of shape ", to_string(shape_of(x_t)));
    B::map(h.data(), {static_cast<const T*>(h.data()), x_t.data()}, detail::add_rule<T>{}, h.size());
  }

  /// The score of eq. 10, s = (C_t h - x_t) / sigma_t^2, with h = phi(x_t, t) + x_t. Needs sigma_t > 0.
  void score(const batch_type& x_t, double t, batch_type& s) {
    constexpr const char* where = "SoftDiffusion::score";
    const double sg = sigma(t);
    softdiff::detail::require(sg > 0.0, where, ": sigma(t) = ", sg, " at t = ", t, "; the score needs sigma_t > 0");
    softdiff::detail::require(&x_t != &s, where, ": s must not alias x_t");
    denoise(x_t, t, h_);
    apply_operator(t, h_, s);
    B::map(s.data(), {static_cast<const T*>(s.data()), x_t.data()}, detail::score_rule<T>{static_cast<T>(1.0 / (sg * sg))},
           s.size());
  }

  /// `count` samples with `steps` steps on the uniform grid from t = 1 to t = 0.
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch_type sample(std::size_t count, std::size_t steps, std::uint64_t seed, S sampler = S{},
                                  OnStep on_step = {}) {
    return sample<S>(sample_range{0, count}, steps, seed, std::move(sampler), on_step);
  }

  /// Samples range.first .. range.first + range.count - 1 of `seed` on the uniform grid.
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch_type sample(sample_range range, std::size_t steps, std::uint64_t seed, S sampler = S{},
                                  OnStep on_step = {}) {
    const std::vector<double> grid = ::softdiff::sampler::uniform_grid(steps);
    return sample<S>(range, std::span<const double>(grid), seed, std::move(sampler), on_step);
  }

  /// Samples of `seed` on a user grid, from the final distribution taken at grid[0].
  template <class S, StepObserver OnStep = no_step_observer>
  [[nodiscard]] batch_type sample(sample_range range, std::span<const double> grid, std::uint64_t seed,
                                  S sampler = S{}, OnStep on_step = {}) {
    static_assert(Sampler<S, SoftDiffusion>, "S must model softdiff::Sampler for this SoftDiffusion (its backend too)");
    ::softdiff::sampler::validate_grid(grid);
    softdiff::detail::require(range.count > 0, "SoftDiffusion::sample: count must be > 0");
    softdiff::detail::require(final_.has_value(),
                              "SoftDiffusion::sample: no final distribution; call fit_final_distribution or "
                              "set_final_distribution, or start from your own x_1 with sample_from");
    const std::size_t c = final_->channels(), p = final_->height() * final_->width();
    const noise_source noise{seed, stream_for(stream_purpose::initial, 0), range.first * c * p};
    const std::vector<double> z = final_->colours(range.count, noise);
    colours_.resize(z.size());
    for (std::size_t i = 0; i < z.size(); ++i) colours_[i] = static_cast<T>(z[i]);
    colour_dev_.upload(colours_.data(), colours_.size());
    batch_type x(shape4{range.count, c, final_->height(), final_->width()});
    B::parallel_for(x.size(), detail::plane_fill_fn<T>{x.data(), colour_dev_.data(), p});
    dev_op_.apply(level(grid[0]), x.data(), x.data(), shape_of(x));  // C_1 applied to the constant images
    B::noisy_map(x.data(), {static_cast<const T*>(x.data())}, detail::add_scaled_noise<T>{static_cast<T>(sigma(grid[0]))},
                 x.size(), noise.seed, noise.stream, noise.offset);
    sample_from(x, grid, seed, sampler, on_step, range.first);
    return x;
  }

  /// Runs `sampler` over the grid from a given x at grid[0], in place (as on the CPU).
  template <class S, StepObserver OnStep = no_step_observer>
  void sample_from(batch_type& x, std::span<const double> grid, std::uint64_t seed, S& sampler, OnStep on_step = {},
                   std::size_t first_sample = 0) {
    static_assert(Sampler<S, SoftDiffusion>, "S must model softdiff::Sampler for this SoftDiffusion (its backend too)");
    ::softdiff::sampler::validate_grid(grid);
    softdiff::detail::require(x.size() > 0, "SoftDiffusion::sample_from: empty batch ", to_string(shape_of(x)));
    const std::uint64_t offset = static_cast<std::uint64_t>(first_sample) * (x.size() / shape_of(x)[0]);
    for (std::size_t k = 0; k + 1 < grid.size(); ++k) {
      sampler.step(*this, x, grid[k], grid[k + 1], noise_source{seed, stream_for(stream_purpose::sampler, k), offset});
      on_step(k + 1, grid.size() - 1);
    }
  }

private:
  void check_batch(const batch_type& x, std::span<const double> t, const char* where) const {
    softdiff::detail::require(x.size() > 0, where, ": empty batch ", to_string(shape_of(x)));
    softdiff::detail::require(t.size() == shape_of(x)[0], where, ": ", t.size(), " times for a batch of ",
                              shape_of(x)[0], " samples");
    for (std::size_t n = 0; n < t.size(); ++n)
      softdiff::detail::require(std::isfinite(t[n]) && t[n] >= 0.0 && t[n] <= 1.0, where, ": t[", n, "] = ", t[n],
                                " is outside [0, 1]");
  }

  op::backend_operator<B, Op> dev_op_;
  // workspaces, kept so that steady-state loops do not allocate
  batch_type xt_, phi_, u_, h_;
  backend::buffer<B, T> norms_dev_, colour_dev_;
  std::vector<T> norms_t_, colours_;
  std::vector<double> times_, weights_, norms_;
};

}  // namespace softdiff
