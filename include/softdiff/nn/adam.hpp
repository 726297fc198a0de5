#pragma once
// Adam (Kingma & Ba) over one flat parameter span, with PyTorch's semantics
// (torch.optim.Adam, no weight decay):
//   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
//   p <- p - lr_k * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps),
// plus the two training aids of issue 3: a linear learning-rate warm-up
// lr_k = lr * min(1, k / warmup) and global gradient-norm clipping at max_norm
// (torch.nn.utils.clip_grad_norm_: g <- g * min(1, max_norm / (||g|| + 1e-6))).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"

namespace softdiff::nn {

struct adam_config {
  double lr = 2e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  std::int64_t warmup_steps = 5000;  // 0 disables warm-up
  double max_grad_norm = 1.0;        // <= 0 disables clipping
};

/// Global L2 norm of a gradient span, accumulated in double: 64 contiguous blocks (fixed, not
/// one per thread) summed in parallel, then added in block order, so the norm (and the clipping
/// it decides) is bitwise the same for any thread count.
template <class T>
[[nodiscard]] double global_norm(std::span<const T> g) {
  constexpr std::size_t blocks = 64;
  const T* p = g.data();
  const std::size_t n = g.size();
  std::array<double, blocks> part{};
  const auto count = static_cast<std::ptrdiff_t>(blocks);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::ptrdiff_t b = 0; b < count; ++b) {
    const std::size_t i0 = n * static_cast<std::size_t>(b) / blocks, i1 = n * static_cast<std::size_t>(b + 1) / blocks;
    double s = 0;
    for (std::size_t i = i0; i < i1; ++i) s += static_cast<double>(p[i]) * p[i];
    part[static_cast<std::size_t>(b)] = s;
  }
  double s = 0;
  for (double v : part) s += v;
  return std::sqrt(s);
}

/// Scales g in place so that its global norm is at most max_norm; returns the norm before clipping.
template <class T>
double clip_grad_norm(std::span<T> g, double max_norm) {
  const double norm = global_norm<T>(g);
  if (max_norm > 0 && norm > max_norm) {
    const T c = static_cast<T>(max_norm / (norm + 1e-6));
    T* p = g.data();
    backend::cpu::parallel_for(g.size(), [=](std::size_t i) { p[i] *= c; });
  }
  return norm;
}

template <class T = float>
class adam {
public:
  adam() = default;
  adam(std::size_t parameter_count, adam_config cfg) : cfg_(cfg), m_(parameter_count, T(0)), v_(parameter_count, T(0)) {
    softdiff::detail::require(cfg.lr > 0 && std::isfinite(cfg.lr), "adam: learning rate must be positive, got ", cfg.lr);
    softdiff::detail::require(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1,
                    "adam: betas must lie in [0, 1), got ", cfg.beta1, ", ", cfg.beta2);
    softdiff::detail::require(cfg.eps > 0, "adam: eps must be positive, got ", cfg.eps);
    softdiff::detail::require(cfg.warmup_steps >= 0, "adam: warm-up steps must be >= 0, got ", cfg.warmup_steps);
  }

  /// The learning rate used at step k (1-based) under the linear warm-up.
  [[nodiscard]] double learning_rate(std::int64_t k) const {
    if (cfg_.warmup_steps <= 0) return cfg_.lr;
    return cfg_.lr * std::min(1.0, static_cast<double>(k) / static_cast<double>(cfg_.warmup_steps));
  }

  /// Clips `grads` (in place) and applies one Adam update to `params`. Returns the gradient
  /// norm before clipping. Throws if the gradient is not finite (nothing is updated then).
  double step(std::span<T> params, std::span<T> grads) {
    softdiff::detail::require(params.size() == m_.size() && grads.size() == m_.size(), "adam: expected ", m_.size(),
                    " parameters and gradients, got ", params.size(), " and ", grads.size());
    const double norm = clip_grad_norm<T>(grads, cfg_.max_grad_norm);
    softdiff::detail::require(std::isfinite(norm), "adam: non-finite gradient norm at step ", step_ + 1);
    ++step_;
    const double lr = learning_rate(step_);
    const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(step_));
    const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(step_));
    // p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), as PyTorch computes it
    const T b1 = static_cast<T>(cfg_.beta1), b2 = static_cast<T>(cfg_.beta2);
    const T step_size = static_cast<T>(lr / bc1), inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
    const T eps = static_cast<T>(cfg_.eps);
    T *p = params.data(), *g = grads.data(), *m = m_.data(), *v = v_.data();
    backend::cpu::parallel_for(m_.size(), [=](std::size_t i) {
      m[i] = b1 * m[i] + (T(1) - b1) * g[i];
      v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    });
    return norm;
  }

  [[nodiscard]] std::int64_t steps_taken() const { return step_; }
  [[nodiscard]] const adam_config& config() const { return cfg_; }
  [[nodiscard]] std::span<T> first_moment() { return m_; }
  [[nodiscard]] std::span<T> second_moment() { return v_; }
  [[nodiscard]] std::span<const T> first_moment() const { return m_; }
  [[nodiscard]] std::span<const T> second_moment() const { return v_; }
  /// Restores the step counter (the moments are restored through first_moment()/second_moment()).
  void set_steps_taken(std::int64_t k) {
    softdiff::detail::require(k >= 0, "adam: step counter must be >= 0, got ", k);
    step_ = k;
  }

private:
  adam_config cfg_{};
  std::vector<T> m_, v_;
  std::int64_t step_ = 0;
};

}  // namespace softdiff::nn
