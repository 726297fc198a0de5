#pragma once
// The reverse-step update rules of Soft Diffusion, once: their per-step coefficients (host,
// double) and their per-element formulas (SOFTDIFF_HOST_DEVICE, so that the CPU samplers of
// sampler/ and the backend element functors of backend/elementwise.hpp, CUDA kernels included,
// evaluate the very same expression in the same order), and the argument checks every step
// shares. Notation: s = sigma_t, s' = sigma_{t'}, h = x0 = phi(x_t, t) + x_t, y = C_t h,
// c = C_{t'} h, eta a standard normal.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "softdiff/backend/host_device.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler::rules {

// ---- argument checks (host) ----

/// The checks of one reverse step t -> t': finite times with 0 <= t' < t <= 1, sigma_t > 0,
/// 0 <= sigma_{t'} <= sigma_t, and a non-empty batch.
inline void check_step(const char* where, const shape4& shape, double t, double t_next, double s, double s_next) {
  softdiff::detail::require(std::isfinite(t) && std::isfinite(t_next) && t <= 1.0 && t_next >= 0.0 && t_next < t,
                            where, ": a reverse step needs 0 <= t' < t <= 1, got t = ", t, ", t' = ", t_next);
  softdiff::detail::require(std::isfinite(s) && s > 0.0, where, ": sigma(t) must be > 0 at t = ", t, ", got ", s);
  softdiff::detail::require(std::isfinite(s_next) && s_next >= 0.0 && s_next <= s, where,
                            ": need 0 <= sigma(t') <= sigma(t), got sigma(", t_next, ") = ", s_next, " and sigma(",
                            t, ") = ", s);
  softdiff::detail::require(shape[0] * shape[1] * shape[2] * shape[3] > 0, where, ": empty batch ", to_string(shape));
}

/// k = k_ratio s' must satisfy 0 <= k <= s' on every step: k_ratio in [0, 1].
inline void check_k_ratio(const char* where, double k_ratio) {
  softdiff::detail::require(std::isfinite(k_ratio) && k_ratio >= 0.0 && k_ratio <= 1.0, where,
                            ": k_ratio = k / sigma_{t'} must lie in [0, 1], got ", k_ratio);
}

// ---- the rules: a small struct per equation, its coefficients set once per step by at(...)
// (host, in double, then rounded to T), its formula evaluated per element by operator() ----

/// Algorithm 1 (naive): x_{t'} = C_{t'} h + s' eta.
template <class T>
struct naive {
  T s_next;
  [[nodiscard]] static naive at(double s_next) { return {static_cast<T>(s_next)}; }
  SOFTDIFF_HOST_DEVICE T operator()(T c, T eta) const { return c + s_next * eta; }
};

/// Algorithm 2 / eq. 17 (momentum):
///   e = y - x_t;  z = x_t - ((s'^2 - s^2) / s^2) e + sqrt(s^2 - s'^2) eta;  x_{t'} = z + (c - y).
template <class T>
struct momentum {
  T a;  // (s'^2 - s^2) / s^2
  T b;  // sqrt(s^2 - s'^2)
  [[nodiscard]] static momentum at(double s, double s_next) {
    return {static_cast<T>((s_next * s_next - s * s) / (s * s)), static_cast<T>(std::sqrt(s * s - s_next * s_next))};
  }
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y, T c, T eta) const {
    const T e = y - x;
    const T z = x - a * e + b * eta;
    return z + (c - y);
  }
};

/// Eq. 51 (probability-flow momentum): x_{t'} = x_t - (1/2) ((s'^2 - s^2) / s^2) (y - x_t) + (c - y).
template <class T>
struct pf_momentum {
  T half_a;  // (1/2) (s'^2 - s^2) / s^2
  [[nodiscard]] static pf_momentum at(double s, double s_next) {
    return {static_cast<T>(0.5 * (s_next * s_next - s * s) / (s * s))};
  }
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y, T c) const {
    const T e = y - x;
    return x - half_a * e + (c - y);
  }
};

/// The predictor-corrector's corrector: eq. 51 with hb = (h + h~) / 2, so that
/// C hb = (C h + C h~) / 2; y1, c1 = C_t h, C_{t'} h and y2, c2 = C_t h~, C_{t'} h~.
template <class T>
struct corrector {
  T half_a;  // as in eq. 51
  [[nodiscard]] static corrector at(double s, double s_next) { return {pf_momentum<T>::at(s, s_next).half_a}; }
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y1, T c1, T y2, T c2) const {
    const T yb = T(0.5) * (y1 + y2);
    const T cb = T(0.5) * (c1 + c2);
    return x - half_a * (yb - x) + (cb - yb);
  }
};

/// Eq. 52 (DDIM-type): x_{t'} = c + sqrt(s'^2 - k^2) (x_t - y) / s + k eta, k = k_ratio s'.
/// The three-argument form is the deterministic step (k = 0), which draws no noise.
template <class T>
struct ddim {
  T r;  // sqrt(s'^2 - k^2) / s
  T k;
  bool noisy;  // k > 0
  [[nodiscard]] static ddim at(double s, double s_next, double k_ratio) {
    const double k = k_ratio * s_next;
    return {static_cast<T>(std::sqrt(std::max(0.0, s_next * s_next - k * k)) / s), static_cast<T>(k), k != 0.0};
  }
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y, T c) const { return c + r * (x - y); }
  SOFTDIFF_HOST_DEVICE T operator()(T x, T y, T c, T eta) const { return c + r * (x - y) + k * eta; }
};

}  // namespace softdiff::sampler::rules
