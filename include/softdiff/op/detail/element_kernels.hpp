#pragma once
// The element functors of the operators on a backend (op/on_backend.hpp), for parallel_for on
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

/// y = x outside the rectangle rows [top, top + rh), columns [left, left + rw) of every h x w
/// plane, 0 inside (op::mask). Index: an element.
template <class T>
struct mask_fn {
  const T* x;
  T* y;
  std::size_t h, w, top, left, rh, rw;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t col = i % w, row = (i / w) % h;
    const bool removed = row >= top && row < top + rh && col >= left && col < left + rw;
    y[i] = removed ? T(0) : x[i];
  }
};

/// Embeds every h x w plane of x in the top-left corner of a ph x pw plane of zeros (op::fft_conv's
/// zero padding). Index: an element of the padded batch.
template <class T>
struct zero_pad_fn {
  const T* x;
  T* padded;
  std::size_t h, w, ph, pw;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t j = i % pw, r = (i / pw) % ph, plane = i / (pw * ph);
    padded[i] = (r < h && j < w) ? x[(plane * h + r) * w + j] : T(0);
  }
};

/// The top-left h x w corner of every ph x pw plane. Index: an element of y.
template <class T>
struct crop_fn {
  const T* padded;
  T* y;
  std::size_t h, w, ph, pw;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t j = i % w, r = (i / w) % h, plane = i / (w * h);
    y[i] = padded[(plane * ph + r) * pw + j];
  }
};

/// f <- f K (or f conj(K) for the adjoint) on interleaved complex numbers; one spectrum K of
/// `nc` entries shared by every plane. Index: a complex entry of the batch.
template <class T>
struct spectrum_multiply_fn {
  T* f;
  const T* k;
  std::size_t nc;
  bool conjugate;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t q = i % nc;
    const T a = f[2 * i], b = f[2 * i + 1], c = k[2 * q], d = conjugate ? -k[2 * q + 1] : k[2 * q + 1];
    f[2 * i] = a * c - b * d;
    f[2 * i + 1] = a * d + b * c;
  }
};

}  // namespace softdiff::op::kernels
