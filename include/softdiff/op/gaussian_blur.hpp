#pragma once
// The paper's Gaussian blur, exactly: C(level) X = B_H X B_W^T on every H x W plane of an
// NCHW batch, level = the blur's standard deviation s in pixels.
//
// Appendix G (docs/equations.md): a Gaussian kernel truncated to (2*80+1)^2
// (CelebA-64) or (2*32+1)^2 (CIFAR-10), normalised to sum 1, applied with zero padding; blur std
// from 0.01 to 23 (CelebA) or 18 (CIFAR). half_size is the 80 or 32. The separable 1-D kernel is
//     g_k = exp(-k^2 / (2 s^2)) / Z,  Z = sum_{|k| <= half_size} exp(-k^2 / (2 s^2)),  |k| <= half_size,
// so along an axis of length n the blur is the symmetric n x n matrix B_ij = g_{i-j}
// (0 where |i - j| > half_size; pixels outside the image are zero), and an image X is
// mapped to B_H X B_W^T. C is symmetric, so C^T = C (self_adjoint); level 0 is the identity.
//
// The operator states its axis matrices (axes(level): Toeplitz taps) and applies them by the
// backend's separable primitive (op/detail/algorithms.hpp, backend/separable.hpp); this class is
// that algorithm on backend::cpu, op::backend_operator the same on any backend. On the CPU the
// result is exact to the rounding of T (backend/cpu_separable.hpp: band, folded or low-rank axes,
// every output pixel within about 2.4e-9 max|x| in float, 4.4e-18 in double, of the exact
// zero-padded blur). tests/test_op_gaussian_blur.cpp compares against a direct dense 2-D
// zero-padded convolution in float64 (to 1e-6 relative in float, 1e-12 in double).
//
// Performance: per-(level, H, W) plans are built once (eigen-decompositions in double) and
// cached by the engine; planes are spread over OpenMP threads; steady-state calls do not allocate.
// Thread-safety: apply may be called concurrently on one object from several threads. Copies of
// an operator share its engine and so its plan cache.
// Input: a non-finite value in x raises softdiff::error naming the plane, after the call has run;
// y (and x, when y aliases x) then holds unspecified values.
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/separable.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/algorithms.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {
namespace detail {

/// Appendix G: g_k = exp(-k^2 / (2 s^2)) for k in [-half_size, half_size], normalised so
/// that the 2 * half_size + 1 taps sum to 1. Returns the one-sided taps g_0..g_{half_size}.
inline std::vector<double> gaussian_taps(double s, int half_size) {
  std::vector<double> g(static_cast<std::size_t>(half_size) + 1, 0.0);
  const double inv = 1.0 / (2.0 * s * s);  // s*s overflowing to inf gives the box filter
  g[0] = 1.0;
  double z = 1.0;
  for (int k = 1; k <= half_size; ++k) {
    g[k] = std::exp(-static_cast<double>(k) * k * inv);
    z += 2 * g[k];
  }
  for (double& v : g) v /= z;
  return g;
}

}  // namespace detail

template <class T = float>
class gaussian_blur {
public:
  using scalar_type = T;
  static constexpr bool self_adjoint = true;

  /// half_size: the kernel spans 2 * half_size + 1 taps per axis (80 for CelebA-64, 32 for CIFAR-10).
  explicit gaussian_blur(int half_size = 80)
      : half_size_(half_size), engine_(std::make_shared<backend::cpu_separable<T>>()) {
    softdiff::detail::require(half_size >= 1, "gaussian_blur: half_size must be at least 1, got ", half_size);
  }

  /// y = C(level) x; y may alias x.
  void apply(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, "gaussian_blur::apply"); }
  /// y = C(level)^T x = C(level) x (B_H and B_W are symmetric).
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const {
    run(level, x, y, "gaussian_blur::apply_adjoint");
  }

  /// y = C(level) x with each axis in the given form of the CPU engine (tests and benchmarks;
  /// builds an uncached plan).
  void apply_using(backend::detail::axis_kind rows, backend::detail::axis_kind cols, double level, const batch<T>& x,
                   batch<T>& y) const {
    check_level(*this, level, "gaussian_blur::apply_using");
    const shape4 s = shape_of(x);
    if (level == 0 || s[2] == 0 || s[3] == 0) {
      run(level, x, y, "gaussian_blur::apply_using");
      return;
    }
    if (&x != &y) ensure_shape(y, s);
    const std::size_t planes = s[0] * s[1];
    const std::size_t bad = engine_->apply_forms(rows, cols, axes(level), x.data(), y.data(), planes, s[2], s[3]);
    softdiff::detail::require(bad >= planes, "gaussian_blur::apply_using: non-finite value (NaN or inf) in input plane ",
                              bad, " of shape ", to_string(s));
  }

  /// The forms chosen for an h x w plane at `level`, e.g. "rows (H=64): folded-dense(32+32), ...".
  [[nodiscard]] std::string describe(double level, int h, int w) const {
    check_level(*this, level, "gaussian_blur::describe");
    if (level == 0) return "identity";
    return engine_->describe(axes(level), static_cast<std::size_t>(h), static_cast<std::size_t>(w));
  }

  /// The paper's one-sided taps g_0..g_half_size at `level` (appendix G), in double.
  [[nodiscard]] std::vector<double> kernel(double level) const {
    check_level(*this, level, "gaussian_blur::kernel");
    if (level == 0) {
      std::vector<double> g(half_size_ + 1, 0.0);
      g[0] = 1.0;
      return g;
    }
    return detail::gaussian_taps(level, half_size_);
  }

  /// C(level) as the backends' separable primitive takes it: B_H and B_W from the same taps.
  [[nodiscard]] backend::separable_spec axes(double level) const {
    std::vector<double> g = kernel(level);
    return {backend::separable_form::toeplitz, g, g};
  }

  [[nodiscard]] int half_size() const { return half_size_; }
  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return std::numeric_limits<double>::max(); }
  [[nodiscard]] std::string name() const { return "gaussian-blur"; }

private:
  void run(double level, const batch<T>& x, batch<T>& y, const char* where) const {
    check_level(*this, level, where);
    const shape4 s = shape_of(x);
    if (&x != &y) ensure_shape(y, s);
    separable_operator_apply<backend::cpu>(*engine_, where, level, [&] { return axes(level); }, x.data(), y.data(), s);
  }

  int half_size_;
  std::shared_ptr<backend::cpu_separable<T>> engine_;
};

static_assert(CorruptionOperator<gaussian_blur<float>>);
static_assert(CorruptionOperator<gaussian_blur<double>>);

}  // namespace softdiff::op
