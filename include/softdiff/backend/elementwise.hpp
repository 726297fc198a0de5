#pragma once
// The element functors of the noise and map primitives on a device backend (backend::cuda's
// map, noisy_map and fill_normal launch them): each has a SOFTDIFF_HOST_DEVICE
// operator()(std::size_t) and takes raw pointers and extents.
//
// Functors that draw noise work on one Philox block per index: block b covers the flat
// elements [P b, P b + P), P = 4 for float and 2 for double (backend/philox.hpp), so a
// deviate at flat index i is the one backend::cpu::fill_normal writes at i, on any backend.
// philox_blocks is the block arithmetic of every noise walk (backend::cpu's tile walk too).
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "softdiff/backend/host_device.hpp"
#include "softdiff/backend/philox.hpp"

namespace softdiff::backend::kernels {

/// Embeds every h x w plane of x in the top-left corner of a ph x pw plane of zeros (the zero
/// padding of an FFT engine's r2c on a device). Index: an element of the padded batch.
template <class T>
struct pad_planes_fn {
  const T* x;
  T* padded;
  std::size_t h, w, ph, pw;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t j = i % pw, r = (i / pw) % ph, plane = i / (pw * ph);
    padded[i] = (r < h && j < w) ? x[(plane * h + r) * w + j] : T(0);
  }
};

/// The top-left h x w corner of every ph x pw plane (an FFT engine's cropped c2r on a device).
/// Index: an element of y.
template <class T>
struct crop_planes_fn {
  const T* padded;
  T* y;
  std::size_t h, w, ph, pw;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t j = i % w, r = (i / w) % h, plane = i / (w * h);
    y[i] = padded[(plane * ph + r) * pw + j];
  }
};

/// f(i / cols, i % cols) for a flat index i: a 2-D parallel_for on a backend that launches
/// flat index spaces (backend::cuda).
template <class F>
struct index_2d_fn {
  F f;
  std::size_t cols;
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t i) const { f(i / cols, i % cols); }
};

/// Normals per Philox block for T (4 for float, 2 for double).
template <class T>
inline constexpr std::size_t normals_per_block = std::is_same_v<T, float> ? 4 : 2;

/// The Philox blocks that hold flat indices [offset, offset + n): blocks first .. first + count - 1.
template <class T>
struct philox_blocks {
  std::uint64_t first = 0;
  std::size_t count = 0;
  SOFTDIFF_HOST_DEVICE static philox_blocks covering(std::uint64_t offset, std::size_t n) {
    constexpr std::uint64_t p = normals_per_block<T>;
    if (n == 0) return {offset / p, 0};
    return {offset / p, static_cast<std::size_t>((offset + n + p - 1) / p - offset / p)};
  }
};

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

  [[nodiscard]] std::size_t blocks() const { return philox_blocks<T>::covering(offset, n).count; }
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t b) const {
    constexpr std::uint64_t p = normals_per_block<T>;
    const std::uint64_t block = philox_blocks<T>::covering(offset, n).first + b;
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
/// index offset + i (the one backend::cpu::fill_normal writes there). Index b: Philox block
/// first + b of philox_blocks::covering(offset, n), read and written as single 16-byte accesses
/// on the device when it lies wholly inside and is aligned; out may be one of the inputs (each
/// element is read before it is written).
template <class T, class Rule, std::size_t K>
struct noisy_map_fn {
  T* out;
  const T* in[K];
  Rule rule;
  std::size_t n;
  std::uint64_t offset, seed, stream;

  [[nodiscard]] std::size_t blocks() const { return philox_blocks<T>::covering(offset, n).count; }
  SOFTDIFF_HOST_DEVICE void operator()(std::size_t b) const {
    constexpr std::size_t p = normals_per_block<T>;
    const std::uint64_t block = philox_blocks<T>::covering(offset, n).first + b;
    T eta[p];
    detail::normals<T>(block, stream, seed, eta);
    const std::uint64_t g0 = block * p;
    if (g0 >= offset && g0 + p <= offset + n) {  // the whole block is inside [offset, offset + n)
      const std::size_t i0 = static_cast<std::size_t>(g0 - offset);
      T v[K][p], r[p];
      for (std::size_t a = 0; a < K; ++a) detail::load_block(in[a] + i0, v[a]);
      for (std::size_t q = 0; q < p; ++q) r[q] = apply(v, q, eta[q], std::make_index_sequence<K>{});
      detail::store_block(out + i0, r);
      return;
    }
    for (std::size_t q = 0; q < p; ++q) {  // a block cut by either end of the range
      const std::uint64_t g = g0 + q;
      if (g < offset || g >= offset + n) continue;
      const std::size_t i = static_cast<std::size_t>(g - offset);
      T v[K][p];
      for (std::size_t a = 0; a < K; ++a) v[a][q] = in[a][i];
      out[i] = apply(v, q, eta[q], std::make_index_sequence<K>{});
    }
  }

private:
  template <std::size_t... A>
  SOFTDIFF_HOST_DEVICE T apply(const T (&v)[K][normals_per_block<T>], std::size_t q, T eta,
                               std::index_sequence<A...>) const {
    return rule(v[A][q]..., eta);
  }
};

/// out[i] = rule(in[0][i], ..., in[K-1][i]). Index: an element; out may be one of the inputs.
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

}  // namespace softdiff::backend::kernels
