#pragma once
// Element functors written once for every backend: each has a SOFTDIFF_HOST_DEVICE
// operator()(std::size_t) and runs under backend::cpu::parallel_for (OpenMP) and
// backend::cuda::parallel_for (a CUDA kernel) alike. They take raw pointers and extents.
//
// Functors that draw noise work on one Philox block per index: block b covers the flat
// elements [P b, P b + P), P = 4 for float and 2 for double (backend/philox.hpp), so a
// deviate at flat index i is the one backend::cpu::fill_normal writes at i, on any backend.
// The sampler functors evaluate the update rules of sampler/update_rules.hpp, the very
// expressions the CPU samplers of include/softdiff/sampler/ evaluate, so that a backend
// reproduces the CPU samplers to rounding.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "softdiff/backend/host_device.hpp"
#include "softdiff/backend/philox.hpp"
#include "softdiff/sampler/update_rules.hpp"

namespace softdiff::backend::kernels {

/// Normals per Philox block for T (4 for float, 2 for double).
template <class T>
inline constexpr std::size_t normals_per_block = std::is_same_v<T, float> ? 4 : 2;

/// Philox blocks that cover n elements.
template <class T>
[[nodiscard]] constexpr std::size_t blocks_for(std::size_t n) {
  return (n + normals_per_block<T> - 1) / normals_per_block<T>;
}

namespace detail {

template <class T>
SOFTDIFF_HOST_DEVICE inline void normals(std::uint64_t block, std::uint64_t stream, std::uint64_t seed, T* out) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "noise is float or double");
  if constexpr (std::is_same_v<T, float>)
    normal4(block, stream, seed, out);
  else
    normal2(block, stream, seed, out);
}

// One Philox block of P elements at p: a single 16-byte access on the device when p is
// 16-byte aligned (a float4 or double2), element by element otherwise and on the host.
template <class T>
SOFTDIFF_HOST_DEVICE inline bool vector_ready(const T* p) {
#if defined(__CUDA_ARCH__)
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
#else
  (void)p;
  return false;
#endif
}

template <class T>
SOFTDIFF_HOST_DEVICE inline void load_block(const T* p, T* v) {
#if defined(__CUDA_ARCH__)
  if (vector_ready(p)) {
    if constexpr (std::is_same_v<T, float>) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      const double2 q = *reinterpret_cast<const double2*>(p);
      v[0] = q.x, v[1] = q.y;
    }
    return;
  }
#endif
  for (std::size_t k = 0; k < normals_per_block<T>; ++k) v[k] = p[k];
}

template <class T>
SOFTDIFF_HOST_DEVICE inline void store_block(T* p, const T* v) {
#if defined(__CUDA_ARCH__)
  if (vector_ready(p)) {
    if constexpr (std::is_same_v<T, float>)
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else
      *reinterpret_cast<double2*>(p) = make_double2(v[0], v[1]);
    return;
  }
#endif
  for (std::size_t k = 0; k < normals_per_block<T>; ++k) p[k] = v[k];
}

}  // namespace detail

/// out[i] = the standard normal at flat index offset + i of (seed, stream), for i < n;
/// index b covers Philox block first_block + b (first_block = offset / P).
template <class T>
struct fill_normal_fn {
  T* out;
  std::size_t n;
  std::uint64_t offset, seed, stream;

  [[nodiscard]] std::size_t blocks() const {
    constexpr std::uint64_t p = normals_per_block<T>;
    return n == 0 ? 0 : static_cast<std::size_t>((offset + n + p - 1) / p - offset / p);
  }
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t b) const {
    constexpr std::uint64_t p = normals_per_block<T>;
    const std::uint64_t block = offset / p + b;
    T v[p];
    detail::normals<T>(block, stream, seed, v);
    const std::uint64_t g0 = block * p;
    if (g0 >= offset && g0 + p <= offset + n) {  // the whole block is inside [offset, offset + n)
      detail::store_block(out + (g0 - offset), v);
      return;
    }
    for (std::uint64_t k = 0; k < p; ++k) {
      const std::uint64_t g = g0 + k;
      if (g >= offset && g < offset + n) out[g - offset] = v[k];
    }
  }
};

/// Momentum Sampler, Algorithm 2 / eq. 17 (sampler::rules::momentum), y = C_t x0, c = C_{t'} x0,
/// a and b from rules::momentum_coefficients_for; x updated in place. Index: a Philox block.
template <class T>
struct momentum_fn {
  T* x;
  const T* y;
  const T* c;
  T a, b;
  std::size_t n;
  std::uint64_t seed, stream;

  SOFTDIFF_HOST_DEVICE void operator()(std::size_t blk) const {
    constexpr std::size_t p = normals_per_block<T>;
    T eta[p];
    detail::normals<T>(blk, stream, seed, eta);
    const std::size_t i0 = blk * p;
    if (i0 + p <= n) {
      T xv[p], yv[p], cv[p];
      detail::load_block(x + i0, xv);
      detail::load_block(y + i0, yv);
      detail::load_block(c + i0, cv);
      for (std::size_t k = 0; k < p; ++k) xv[k] = sampler::rules::momentum(xv[k], yv[k], cv[k], a, b, eta[k]);
      detail::store_block(x + i0, xv);
      return;
    }
    for (std::size_t k = 0; i0 + k < n; ++k)
      x[i0 + k] = sampler::rules::momentum(x[i0 + k], y[i0 + k], c[i0 + k], a, b, eta[k]);
  }
};

/// Naive sampler, Algorithm 1 (sampler::rules::naive): x_{t'} = C_{t'} h + sigma_{t'} eta, c = C_{t'} h.
/// Index: a Philox block.
template <class T>
struct naive_fn {
  T* x;
  const T* c;
  T s_next;
  std::size_t n;
  std::uint64_t seed, stream;

  SOFTDIFF_HOST_DEVICE void operator()(std::size_t blk) const {
    constexpr std::size_t p = normals_per_block<T>;
    T eta[p];
    detail::normals<T>(blk, stream, seed, eta);
    const std::size_t i0 = blk * p;
    if (i0 + p <= n) {
      T cv[p];
      detail::load_block(c + i0, cv);
      for (std::size_t k = 0; k < p; ++k) cv[k] = sampler::rules::naive(cv[k], s_next, eta[k]);
      detail::store_block(x + i0, cv);
      return;
    }
    for (std::size_t k = 0; i0 + k < n; ++k) x[i0 + k] = sampler::rules::naive(c[i0 + k], s_next, eta[k]);
  }
};

/// DDIM-type step, eq. 52 (sampler::rules::ddim): out = C_{t'} h + sqrt(s'^2 - k^2) (x_t - C_t h) / s + k eta,
/// r = sqrt(s'^2 - k^2) / s, y = C_t h, c = C_{t'} h; out may be x. Index: a Philox block.
template <class T>
struct ddim_noise_fn {
  const T* x;
  T* out;
  const T* y;
  const T* c;
  T r, k;
  std::size_t n;
  std::uint64_t seed, stream;

  SOFTDIFF_HOST_DEVICE void operator()(std::size_t blk) const {
    constexpr std::size_t p = normals_per_block<T>;
    T eta[p];
    detail::normals<T>(blk, stream, seed, eta);
    const std::size_t i0 = blk * p;
    if (i0 + p <= n) {
      T xv[p], yv[p], cv[p];
      detail::load_block(x + i0, xv);
      detail::load_block(y + i0, yv);
      detail::load_block(c + i0, cv);
      for (std::size_t q = 0; q < p; ++q) xv[q] = sampler::rules::ddim(xv[q], yv[q], cv[q], r, k, eta[q]);
      detail::store_block(out + i0, xv);
      return;
    }
    for (std::size_t q = 0; i0 + q < n; ++q)
      out[i0 + q] = sampler::rules::ddim(x[i0 + q], y[i0 + q], c[i0 + q], r, k, eta[q]);
  }
};

/// Eq. 52 with k = 0 (deterministic DDIM): out = C_{t'} h + (s' / s) (x_t - C_t h). Index: an element.
template <class T>
struct ddim_fn {
  const T* x;
  T* out;
  const T* y;
  const T* c;
  T r;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const { out[i] = sampler::rules::ddim(x[i], y[i], c[i], r); }
};

/// Probability-flow Momentum Sampler, eq. 51 (sampler::rules::pf_momentum):
///   x_{t'} = x_t - (1/2) ((s'^2 - s^2) / s^2) (y_t - x_t) + (C_{t'} x0 - y_t). Index: an element.
template <class T>
struct pf_momentum_fn {
  T* x;
  const T* y;
  const T* c;
  T half_a;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const { x[i] = sampler::rules::pf_momentum(x[i], y[i], c[i], half_a); }
};

/// Predictor-corrector, corrector step (sampler::rules::corrector, eq. 51 with hb = (h + h~) / 2).
/// Index: an element.
template <class T>
struct corrector_fn {
  T* x;
  const T* y1;
  const T* c1;
  const T* y2;
  const T* c2;
  T half_a;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    x[i] = sampler::rules::corrector(x[i], y1[i], c1[i], y2[i], c2[i], half_a);
  }
};

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

}  // namespace softdiff::backend::kernels
