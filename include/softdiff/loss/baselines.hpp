#pragma once
// Baseline losses for the ablations of Soft Diffusion, with the normalisation of
// soft_score_matching.hpp (mean over the N D elements of the batch, per-sample weights w_i).
//
// 1. "Clean image" loss (Bansal et al., Cold Diffusion): regress x_0 without the operator,
//      L_i = w_i || phi_i - r_i ||^2 = w_i || h_i - x0_i ||^2,  h = phi + x_t,  r = x_0 - x_t,
//      dloss/dphi_i = (2 / (N D)) w_i (phi_i - r_i).
//
// 2. Denoising score matching, eq. 7:
//      L = E_t E || s_theta(x_t, t) - grad log q_t(x_t | x_0) ||^2,
//      grad log q_t(x_t | x_0) = -(x_t - C_t x_0) / sigma_t^2,
//    with the score parametrised as in eq. 10,
//      s_theta(x_t, t) = (C_t (phi + x_t) - x_t) / sigma_t^2.
//    Per sample: e_i = s_i - target_i,  L_i = w_i ||e_i||^2,
//      dloss/dphi_i = (2 / (N D)) (w_i / sigma_i^2) C_i^T e_i        (ds/dphi = C_t / sigma_t^2).
//    It is computed here in score space, as eq. 7 reads. Algebraically
//      s - target = (C_t (phi + x_t) - C_t x_0) / sigma_t^2 = C_t (phi - r) / sigma_t^2,
//    so DSM with weights w_i equals Soft Score Matching (eq. 12) with weights w_i / sigma_i^4,
//    for every C_t; with C_t = I, s - target = (phi - r) / sigma_t^2. test_loss.cpp checks it.
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/op/per_sample.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::loss {

/// The clean-image loss with its workspaces kept between calls.
template <class T = float>
class clean_image_loss {
public:
  /// loss = (1/(N D)) sum_i w_i ||phi_i - r_i||^2; grad_phi (may alias phi or r) receives
  /// (2/(N D)) w_i (phi_i - r_i).
  loss_value operator()(std::span<const double> weights, const batch<T>& phi, const batch<T>& r,
                        batch<T>* grad_phi = nullptr, std::size_t whole = 0) {
    constexpr const char* where = "clean_image";
    detail::check_nonempty(where, phi);
    detail::check_batch("clean_image: phi", phi, phi);
    detail::check_batch("clean_image: r (vs phi)", r, phi);
    const std::size_t n = phi.shape()[0], d = phi.size() / n;
    detail::check_weights(where, weights, n);

    // phi - r goes straight into the gradient buffer when there is one (element-wise, so aliasing is fine)
    batch<T>& diff = grad_phi != nullptr ? *grad_phi : diff_;
    detail::subtract(phi, r, diff);
    norms_.resize(n);
    detail::per_sample_squared_norms(diff, std::span<double>(norms_), partial_);
    const loss_value v = detail::reduce(norms_, weights, d, whole);
    if (grad_phi != nullptr) {
      coefficient_.resize(n);
      const double nd = static_cast<double>(detail::normaliser(n, whole)) * static_cast<double>(d);
      for (std::size_t i = 0; i < n; ++i) coefficient_[i] = 2.0 * weights[i] / nd;
      detail::scale_per_sample(*grad_phi, coefficient_);
    }
    return v;
  }

private:
  batch<T> diff_;
  std::vector<double> norms_, partial_, coefficient_;
};

template <class T>
loss_value clean_image(std::span<const double> weights, const batch<T>& phi, const batch<T>& r,
                       batch<T>* grad_phi = nullptr) {
  clean_image_loss<T> loss;
  return loss(weights, phi, r, grad_phi);
}

/// Denoising score matching (eq. 7) with the eq. 10 score, workspaces kept between calls.
template <CorruptionOperator Op>
class denoising_score_matching_loss {
public:
  using T = typename Op::scalar_type;

  /// e_i = (C_i (phi_i + x_t_i) - x_t_i) / sigma_i^2 - (C_i x0_i - x_t_i) / sigma_i^2;
  /// loss = (1/(N D)) sum_i w_i ||e_i||^2; grad_phi (may alias an input) receives
  /// (2/(N D)) (w_i / sigma_i^2) C_i^T e_i.
  loss_value operator()(const Op& op, std::span<const double> levels, std::span<const double> sigmas,
                        std::span<const double> weights, const batch<T>& phi, const batch<T>& x_t, const batch<T>& x0,
                        batch<T>* grad_phi = nullptr, std::size_t whole = 0) {
    constexpr const char* where = "denoising_score_matching";
    detail::check_nonempty(where, phi);
    detail::check_batch("denoising_score_matching: phi", phi, phi);
    detail::check_batch("denoising_score_matching: x_t (vs phi)", x_t, phi);
    detail::check_batch("denoising_score_matching: x0 (vs phi)", x0, phi);
    const std::size_t n = phi.shape()[0], d = phi.size() / n;
    detail::check_levels(where, op, levels, n);
    detail::check_weights(where, weights, n);
    softdiff::detail::require(sigmas.size() == n, where, ": sigmas has ", sigmas.size(),
                              " entries, but the batch has N = ", n, " samples");
    for (std::size_t i = 0; i < n; ++i)
      softdiff::detail::require(std::isfinite(sigmas[i]) && sigmas[i] > 0.0, where, ": sigmas[", i, "] = ",
                                sigmas[i], " must be finite and > 0 (the score divides by sigma_t^2)");

    ensure_shape(a_, shape_of(phi));
    {
      const T* pp = phi.data();
      const T* px = x_t.data();
      T* pa = a_.data();
      backend::cpu::parallel_for(phi.size(), [=](std::size_t j) { pa[j] = pp[j] + px[j]; });  // h = phi + x_t
    }
    op::apply_per_sample(op, levels, a_, score_);  // C_t h
    op::apply_per_sample(op, levels, x0, a_);      // C_t x0
    for (std::size_t i = 0; i < n; ++i) {
      const T inv = static_cast<T>(1.0 / (sigmas[i] * sigmas[i]));
      const T* px = x_t.data() + i * d;
      const T* pc = a_.data() + i * d;
      T* ps = score_.data() + i * d;
      // s = (C_t h - x_t) / sigma^2, target = (C_t x0 - x_t) / sigma^2, e = s - target
      backend::cpu::parallel_for(d, [=](std::size_t j) { ps[j] = (ps[j] - px[j]) * inv - (pc[j] - px[j]) * inv; });
    }
    norms_.resize(n);
    detail::per_sample_squared_norms(score_, std::span<double>(norms_), partial_);
    const loss_value v = detail::reduce(norms_, weights, d, whole);
    if (grad_phi != nullptr) {
      op::apply_per_sample(op, levels, score_, *grad_phi, true);  // C_t^T e
      coefficient_.resize(n);
      const double nd = static_cast<double>(detail::normaliser(n, whole)) * static_cast<double>(d);
      for (std::size_t i = 0; i < n; ++i) coefficient_[i] = 2.0 * weights[i] / (nd * sigmas[i] * sigmas[i]);
      detail::scale_per_sample(*grad_phi, coefficient_);
    }
    return v;
  }

private:
  batch<T> a_, score_;
  std::vector<double> norms_, partial_, coefficient_;
};

template <CorruptionOperator Op>
loss_value denoising_score_matching(const Op& op, std::span<const double> levels, std::span<const double> sigmas,
                                    std::span<const double> weights, const batch<typename Op::scalar_type>& phi,
                                    const batch<typename Op::scalar_type>& x_t,
                                    const batch<typename Op::scalar_type>& x0,
                                    batch<typename Op::scalar_type>* grad_phi = nullptr) {
  denoising_score_matching_loss<Op> loss;
  return loss(op, levels, sigmas, weights, phi, x_t, x0, grad_phi);
}

}  // namespace softdiff::loss
