#pragma once
// Element functors written once for every backend: each has a SOFTDIFF_HOST_DEVICE
// operator()(std::size_t) and runs under backend::cpu::parallel_for (OpenMP) and
// backend::cuda::parallel_for (a CUDA kernel) alike. They take raw pointers and extents.
//
// Functors that draw noise work on one Philox block per index: block b covers the flat
// elements [P b, P b + P), P = 4 for float and 2 for double (backend/philox.hpp), so a
// deviate at flat index i is the one backend::cpu::fill_normal writes at i, on any backend.
// The sampler steps run noisy_map_fn and map_fn with the rules of sampler/update_rules.hpp,
// the very expressions the CPU samplers of include/softdiff/sampler/ evaluate, so that a
// backend reproduces the CPU samplers to rounding.
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "softdiff/backend/host_device.hpp"
#include "softdiff/backend/philox.hpp"

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

/// out[i] = rule(in[0][i], ..., in[K-1][i], eta_i) for i < n, eta_i the standard normal at flat
/// index i (the one backend::cpu::fill_normal writes at i). The sampler steps with noise use it
/// with their rule of sampler/update_rules.hpp. Index: a Philox block of P elements, read and
/// written as single 16-byte accesses on the device when aligned; out may be one of the inputs
/// (each element is read before it is written).
template <class T, class Rule, std::size_t K>
struct noisy_map_fn {
  T* out;
  const T* in[K];
  Rule rule;
  std::size_t n;
  std::uint64_t seed, stream;

  SOFTDIFF_HOST_DEVICE void operator()(std::size_t blk) const {
    constexpr std::size_t p = normals_per_block<T>;
    T eta[p];
    detail::normals<T>(blk, stream, seed, eta);
    const std::size_t i0 = blk * p;
    if (i0 + p <= n) {
      T v[K][p], r[p];
      for (std::size_t a = 0; a < K; ++a) detail::load_block(in[a] + i0, v[a]);
      for (std::size_t q = 0; q < p; ++q) r[q] = apply(v, q, eta[q], std::make_index_sequence<K>{});
      detail::store_block(out + i0, r);
      return;
    }
    for (std::size_t q = 0; i0 + q < n; ++q) {  // the last, partial block
      T v[K][p];
      for (std::size_t a = 0; a < K; ++a) v[a][q] = in[a][i0 + q];
      out[i0 + q] = apply(v, q, eta[q], std::make_index_sequence<K>{});
    }
  }

private:
  template <std::size_t... A>
  SOFTDIFF_HOST_DEVICE T apply(const T (&v)[K][normals_per_block<T>], std::size_t q, T eta,
                               std::index_sequence<A...>) const {
    return rule(v[A][q]..., eta);
  }
};

/// out[i] = rule(in[0][i], ..., in[K-1][i]): the sampler steps without noise. Index: an element;
/// out may be one of the inputs.
template <class T, class Rule, std::size_t K>
struct map_fn {
  T* out;
  const T* in[K];
  Rule rule;

  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const { out[i] = apply(i, std::make_index_sequence<K>{}); }

private:
  template <std::size_t... A>
  SOFTDIFF_HOST_DEVICE T apply(std::size_t i, std::index_sequence<A...>) const {
    return rule(in[A][i]...);
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
