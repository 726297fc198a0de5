#pragma once
// Host-side array types at softdiff's public interface and the checks shared
// by every operator, sampler and network: batches are NCHW, contiguous, row-major.
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>

#include <xtensor/xtensor.hpp>

#include "softdiff/error.hpp"

namespace softdiff {

/// A batch of images, shape [N, C, H, W], contiguous row-major.
template <class T>
using batch = xt::xtensor<T, 4>;

using shape4 = std::array<std::size_t, 4>;

template <class T>
[[nodiscard]] shape4 shape_of(const batch<T>& x) {
  return {x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]};
}

[[nodiscard]] inline std::string to_string(const shape4& s) {
  return detail::concat("[", s[0], ", ", s[1], ", ", s[2], ", ", s[3], "]");
}

/// Resizes `y` to `s` unless it already has that shape (no allocation then).
template <class T>
void ensure_shape(batch<T>& y, const shape4& s) {
  if (shape_of(y) != s) y.resize(s);
}

/// Throws softdiff::error naming `what` unless `a` and `b` have the same shape.
template <class T, class U>
void check_same_shape(const batch<T>& a, const batch<U>& b, const char* what) {
  detail::require(shape_of(a) == shape_of(b), what, ": shape mismatch ", to_string(shape_of(a)),
                  " vs ", to_string(shape_of(b)));
}

/// Throws softdiff::error naming `what` and the first bad index if any element is NaN or infinite.
template <class T>
void check_finite(std::span<const T> x, const char* what) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i]))
      throw error(detail::concat(what, ": non-finite value ", x[i], " at flat index ", i));
}

template <class T>
void check_finite(const batch<T>& x, const char* what) {
  check_finite(std::span<const T>(x.data(), x.size()), what);
}

/// A level or time must be a finite number.
inline void check_finite_scalar(double v, const char* what) {
  detail::require(std::isfinite(v), what, ": non-finite value ", v);
}

}  // namespace softdiff
