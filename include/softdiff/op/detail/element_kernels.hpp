#pragma once
// The element functors of the operators' algorithms (op/detail/algorithms.hpp), for parallel_for on
// any Backend: a SOFTDIFF_HOST_DEVICE operator()(std::size_t), raw pointers and extents.
#include <cstddef>

#include "softdiff/backend/host_device.hpp"

namespace softdiff::op::kernels {

/// y = alpha x (op::scale: C = alpha I, alpha = 1 - level). Index: an element.
template <class T>
struct scale_fn {
  const T* x;
  T* y;
  T alpha;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const { y[i] = alpha * x[i]; }
};

/// Zeroes columns [left, left + rw) of rows [top, top + rh) of every h x w plane of y (op::mask).
/// Index: (plane * rh + i, j) for the i-th masked row of a plane and the j-th masked column.
template <class T>
struct mask_rows_fn {
  T* y;
  std::size_t h, w, top, left, rh;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t row, std::size_t j) const {
    const std::size_t plane = row / rh, i = row % rh;
    y[(plane * h + top + i) * w + left + j] = T(0);
  }
};

/// f <- f K (or f conj(K) for the adjoint) on interleaved complex numbers; one spectrum K of
/// `nc` entries shared by every plane. Index: (plane, complex entry q of the plane).
template <class T>
struct spectrum_multiply_fn {
  T* f;
  const T* k;
  std::size_t nc;
  bool conjugate;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t plane, std::size_t q) const {
    const std::size_t i = plane * nc + q;
    const T a = f[2 * i], b = f[2 * i + 1], c = k[2 * q], d = conjugate ? -k[2 * q + 1] : k[2 * q + 1];
    f[2 * i] = a * c - b * d;
    f[2 * i + 1] = a * d + b * c;
  }
};

}  // namespace softdiff::op::kernels
