#pragma once
// Soft Score Matching (Soft Diffusion, eq. 12):
//
//   L = E_t w(t) E_{x_0, x_t} || C_t ( phi_theta(x_t, t) - r_t ) ||^2,   r_t = x_0 - x_t,
//   w(t) = 1  or  w(t) = 1 / sigma_t^2,
//
// whose gradient with respect to the network output is
//
//   dL/dphi = 2 w(t) C_t^T C_t (phi - r_t),
//
// so every operator must supply its exact adjoint. With C_t = I this is plain denoising
// score matching (see loss/baselines.hpp for the exact relation to eq. 7).
//
// Normalisation (like an MSE): for a batch of N samples of D = C * H * W elements each,
//   L_i = w_i || C_i (phi_i - r_i) ||^2,      loss = (1 / N) sum_i L_i / D,
//   dloss/dphi_i = (2 / (N D)) w_i C_i^T C_i (phi_i - r_i),
// where C_i = C(levels[i]): each sample carries its own time, hence its own level and weight.
// Sums are accumulated in double over fixed blocks, so the value does not depend on the
// number of threads.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/op/per_sample.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::loss {

/// w(t) of eq. 12: unit (w = 1) or inverse_sigma2 (w = 1 / sigma_t^2).
enum class weighting { unit, inverse_sigma2 };

/// The weight w(t) for a sample whose noise level is sigma; inverse_sigma2 needs 0 < sigma < inf.
[[nodiscard]] inline double weight(weighting w, double sigma) {
  if (w == weighting::unit) return 1.0;
  softdiff::detail::require(std::isfinite(sigma) && sigma > 0.0, "loss::weight(inverse_sigma2): sigma = ", sigma,
                            " must be finite and > 0");
  return 1.0 / (sigma * sigma);
}

/// out[i] = weight(w, sigmas[i]); the spans must have the same length.
inline void fill_weights(weighting w, std::span<const double> sigmas, std::span<double> out) {
  softdiff::detail::require(sigmas.size() == out.size(), "loss::fill_weights: ", sigmas.size(), " sigmas but ",
                            out.size(), " outputs");
  for (std::size_t i = 0; i < sigmas.size(); ++i) {
    softdiff::detail::require(std::isfinite(sigmas[i]) && sigmas[i] > 0.0, "loss::fill_weights: sigmas[", i,
                              "] = ", sigmas[i], " must be finite and > 0");
    out[i] = weight(w, sigmas[i]);
  }
}

/// A loss evaluated on one batch.
struct loss_value {
  double value = 0.0;       ///< (1 / (N D)) sum_i w_i ||e_i||^2, the quantity that is differentiated
  double unweighted = 0.0;  ///< (1 / (N D)) sum_i ||e_i||^2, for monitoring when w_i spans decades
};

namespace detail {

/// Elements per block of the per-sample reductions; fixed so sums do not depend on thread count.
inline constexpr std::size_t reduction_block = 4096;

/// out[i] = sum over sample i of u^2, in double, blocked; `partial` is the caller's workspace.
template <class T>
void per_sample_squared_norms(const batch<T>& u, std::span<double> out, std::vector<double>& partial) {
  const std::size_t n = u.shape()[0], d = u.size() / std::max<std::size_t>(n, 1);
  const std::size_t blocks = (d + reduction_block - 1) / reduction_block;
  partial.resize(n * blocks);
  const T* p = u.data();
  double* part = partial.data();
  const auto total = static_cast<std::int64_t>(n * blocks);
#pragma omp parallel for schedule(static) if (total > 1)
  for (std::int64_t b = 0; b < total; ++b) {
    const std::size_t i = static_cast<std::size_t>(b) / blocks, k = static_cast<std::size_t>(b) % blocks;
    const std::size_t begin = i * d + k * reduction_block, end = i * d + std::min(d, (k + 1) * reduction_block);
    double s = 0.0;
    for (std::size_t j = begin; j < end; ++j) s += static_cast<double>(p[j]) * static_cast<double>(p[j]);
    part[b] = s;
  }
  for (std::size_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (std::size_t k = 0; k < blocks; ++k) s += part[i * blocks + k];
    out[i] = s;
  }
}

/// g_i *= coefficient[i] for every sample i.
template <class T>
void scale_per_sample(batch<T>& g, std::span<const double> coefficient) {
  const std::size_t n = g.shape()[0], d = g.size() / std::max<std::size_t>(n, 1);
  T* p = g.data();
  for (std::size_t i = 0; i < n; ++i) {
    const T c = static_cast<T>(coefficient[i]);
    T* gi = p + i * d;
    backend::cpu::parallel_for(d, [=](std::size_t j) { gi[j] *= c; });
  }
}

/// out = a - b, element-wise.
template <class T>
void subtract(const batch<T>& a, const batch<T>& b, batch<T>& out) {
  ensure_shape(out, shape_of(a));
  const T* pa = a.data();
  const T* pb = b.data();
  T* po = out.data();
  backend::cpu::parallel_for(a.size(), [=](std::size_t j) { po[j] = pa[j] - pb[j]; });
}

/// Checks shared by every loss: `x` (named by `what`, e.g. "soft_score_matching: r") has the
/// reference's shape and finite entries.
template <class T>
void check_batch(const char* what, const batch<T>& x, const batch<T>& reference) {
  check_same_shape(x, reference, what);
  check_finite(x, what);
}

inline void check_weights(const char* where, std::span<const double> weights, std::size_t n) {
  softdiff::detail::require(weights.size() == n, where, ": weights has ", weights.size(),
                            " entries, but the batch has N = ", n, " samples");
  for (std::size_t i = 0; i < n; ++i)
    softdiff::detail::require(std::isfinite(weights[i]) && weights[i] >= 0.0, where, ": weights[", i,
                              "] = ", weights[i], " must be finite and >= 0");
}

template <CorruptionOperator Op>
void check_levels(const char* where, const Op& op, std::span<const double> levels, std::size_t n) {
  softdiff::detail::require(levels.size() == n, where, ": levels has ", levels.size(),
                            " entries, but the batch has N = ", n, " samples");
  for (std::size_t i = 0; i < n; ++i)
    softdiff::detail::require(std::isfinite(levels[i]) && levels[i] >= op.min_level() && levels[i] <= op.max_level(),
                              where, ": levels[", i, "] = ", levels[i], " is outside the range [", op.min_level(),
                              ", ", op.max_level(), "] of operator ", op.name());
}

template <class T>
void check_nonempty(const char* where, const batch<T>& phi) {
  softdiff::detail::require(phi.size() > 0, where, ": empty batch ", to_string(shape_of(phi)));
}

/// N of the 1 / (N D) normalisation: the batch's own size, or `whole` when the batch is a shard
/// of a larger one (data-parallel training: each process holds part of the batch).
[[nodiscard]] inline std::size_t normaliser(std::size_t n, std::size_t whole) {
  softdiff::detail::require(whole == 0 || whole >= n, "loss: the whole batch (", whole, " samples) is smaller than this shard (", n, ")");
  return whole == 0 ? n : whole;
}

/// loss_value from per-sample squared norms and weights, with the 1 / (N D) normalisation
/// (N = normaliser(norms.size(), whole)).
inline loss_value reduce(std::span<const double> norms, std::span<const double> weights, std::size_t d,
                         std::size_t whole = 0) {
  loss_value v;
  for (std::size_t i = 0; i < norms.size(); ++i) {
    v.value += weights[i] * norms[i];
    v.unweighted += norms[i];
  }
  const double nd = static_cast<double>(normaliser(norms.size(), whole)) * static_cast<double>(d);
  v.value /= nd;
  v.unweighted /= nd;
  return v;
}

}  // namespace detail

/// Eq. 12 with its workspaces kept between calls (no allocation once shapes are stable).
template <CorruptionOperator Op>
class soft_score_matching_loss {
public:
  using T = typename Op::scalar_type;

  /// loss = (1/(N D)) sum_i w_i ||C_i (phi_i - r_i)||^2, r = x_0 - x_t. If grad_phi is not null it
  /// receives (2/(N D)) w_i C_i^T C_i (phi_i - r_i); it may alias phi or r. N is the batch's size,
  /// or `whole` when this batch is a shard of a batch of `whole` samples (the shards' values add up).
  loss_value operator()(const Op& op, std::span<const double> levels, std::span<const double> weights,
                        const batch<T>& phi, const batch<T>& r, batch<T>* grad_phi = nullptr, std::size_t whole = 0) {
    constexpr const char* where = "soft_score_matching";
    detail::check_nonempty(where, phi);
    detail::check_batch("soft_score_matching: phi", phi, phi);
    detail::check_batch("soft_score_matching: r (vs phi)", r, phi);
    const std::size_t n = phi.shape()[0], d = phi.size() / n;
    detail::check_levels(where, op, levels, n);
    detail::check_weights(where, weights, n);

    detail::subtract(phi, r, diff_);                          // phi - r
    op::apply_per_sample(op, levels, diff_, corrupted_);      // e_i = C_i (phi_i - r_i)
    norms_.resize(n);
    detail::per_sample_squared_norms(corrupted_, std::span<double>(norms_), partial_);
    const loss_value v = detail::reduce(norms_, weights, d, whole);

    if (grad_phi != nullptr) {
      op::apply_per_sample(op, levels, corrupted_, *grad_phi, true);  // C_i^T e_i
      coefficient_.resize(n);
      const double nd = static_cast<double>(detail::normaliser(n, whole)) * static_cast<double>(d);
      for (std::size_t i = 0; i < n; ++i) coefficient_[i] = 2.0 * weights[i] / nd;
      detail::scale_per_sample(*grad_phi, coefficient_);
    }
    return v;
  }

private:
  batch<T> diff_, corrupted_;
  std::vector<double> norms_, partial_, coefficient_;
};

/// One-off evaluation of eq. 12 (allocates its workspaces; keep a soft_score_matching_loss in loops).
template <CorruptionOperator Op>
loss_value soft_score_matching(const Op& op, std::span<const double> levels, std::span<const double> weights,
                               const batch<typename Op::scalar_type>& phi, const batch<typename Op::scalar_type>& r,
                               batch<typename Op::scalar_type>* grad_phi = nullptr) {
  soft_score_matching_loss<Op> loss;
  return loss(op, levels, weights, phi, r, grad_phi);
}

}  // namespace softdiff::loss
