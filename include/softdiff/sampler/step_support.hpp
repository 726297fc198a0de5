#pragma once
// What every sampler step shares: the argument checks, the final-step convention,
// a model archetype for the Sampler static_asserts, and the fused noise pass.
//
// Final-step convention (every sampler in sampler/): when sigma_{t'} = 0 (t' = 0,
// where C_0 = I and sigma_0 = 0) the step returns h = phi(x_t, t) + x_t, the
// estimate of x_0, instead of evaluating its update rule. The update rules would
// otherwise keep terms that vanish only in expectation (the momentum rule gives
// h + sigma_t eta at t' = 0) or divide by sigma_{t'}.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/philox.hpp"
#include "softdiff/error.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler::detail {

/// Least elements per thread in element-wise passes: smaller batches run on one thread, where a
/// parallel region would cost more than it saves (and far more on an oversubscribed machine).
inline constexpr std::size_t elementwise_grain = std::size_t{1} << 16;

/// The checks of one reverse step t -> t': finite times with 0 <= t' < t <= 1, sigma_t > 0,
/// 0 <= sigma_{t'} <= sigma_t, a non-empty batch. Finiteness of x is checked by the model's
/// denoise (SoftDiffusion::denoise), which every step calls first.
template <class T>
void check_step(const char* where, const batch<T>& x, double t, double t_next, double s, double s_next) {
  softdiff::detail::require(std::isfinite(t) && std::isfinite(t_next) && t <= 1.0 && t_next >= 0.0 && t_next < t,
                            where, ": a reverse step needs 0 <= t' < t <= 1, got t = ", t, ", t' = ", t_next);
  softdiff::detail::require(std::isfinite(s) && s > 0.0, where, ": sigma(t) must be > 0 at t = ", t, ", got ", s);
  softdiff::detail::require(std::isfinite(s_next) && s_next >= 0.0 && s_next <= s, where,
                            ": need 0 <= sigma(t') <= sigma(t), got sigma(", t_next, ") = ", s_next, " and sigma(",
                            t, ") = ", s);
  softdiff::detail::require(x.size() > 0, where, ": empty batch ", to_string(shape_of(x)));
}

/// dst = src (dst takes src's shape; no allocation when it already has it).
template <class T>
void copy_into(const batch<T>& src, batch<T>& dst) {
  ensure_shape(dst, shape_of(src));
  const T* s = src.data();
  T* d = dst.data();
  backend::cpu::parallel_chunks(src.size(), elementwise_grain,
                                [=](std::size_t b, std::size_t e) { std::copy(s + b, s + e, d + b); });
}

/// The least a SamplingModel offers, for `static_assert(Sampler<S, model_archetype<T>>)`.
template <class T>
struct model_archetype {
  using scalar_type = T;
  void denoise(const batch<T>& x, double t, batch<T>& out);
  void apply_operator(double t, const batch<T>& x, batch<T>& out);
  double sigma(double t) const;
};

/// sqrt of n floats in place (n a multiple of 16, v 64-byte aligned). Spelled with intrinsics
/// where available because std::sqrt does not vectorise under -fmath-errno (GCC's default);
/// vsqrtps is correctly rounded, so the values equal std::sqrt's.
inline void sqrt_in_place(float* v, std::size_t n) {
#if defined(__AVX512F__)
  for (std::size_t i = 0; i < n; i += 16) _mm512_store_ps(v + i, _mm512_sqrt_ps(_mm512_load_ps(v + i)));
#elif defined(__AVX__)
  for (std::size_t i = 0; i < n; i += 8) _mm256_store_ps(v + i, _mm256_sqrt_ps(_mm256_load_ps(v + i)));
#else
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sqrt(v[i]);
#endif
}

/// backend::detail::sincos_2pi, value for value, in a form that vectorises: floor(a + 1/2) as a
/// truncation (a + 1/2 > 0 for u in (0, 1)) and the quadrant rotation as selects, not a table.
inline void sincos_2pi_select(float u, float& s, float& c) {
  const float a = 4.0f * u;
  const float k = static_cast<float>(static_cast<int>(a + 0.5f));
  const float r = (a - k) * 1.57079632679489662f;
  const float r2 = r * r;
  const float sr = r * (1.0f + r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880)))));
  const float cr = 1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320))));
  const int q = static_cast<int>(k) & 3;  // rotate (cr, sr) by q quarter turns
  const float bc = (q & 1) ? sr : cr, bs = (q & 1) ? cr : sr;
  c = (q == 1 || q == 2) ? -bc : bc;
  s = (q & 2) ? -bs : bs;
}

inline constexpr std::size_t normal_tile = 64;  // Philox blocks per tile

/// The 4 * normal_tile float normals of Philox blocks first .. first + normal_tile - 1, equal bit
/// for bit to backend::normal4 (which backend::cpu::fill_normal uses), computed a stage at a time
/// over the tile so that each stage vectorises: Philox4x32-10 in 64-bit lanes, the uniforms,
/// -2 log u1 and sincos(2 pi u2), the square roots, then the products (Box-Muller).
inline void normal4_tile(std::uint64_t first, std::uint64_t stream, std::uint64_t seed, float* out) {
  constexpr std::uint64_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  constexpr std::uint64_t low = 0xffffffffu;
  constexpr std::size_t n = normal_tile;
  alignas(64) std::uint32_t r0[n], r1[n], r2[n], r3[n];
  alignas(64) float rad[2 * n], cs[2 * n], sn[2 * n];
  const std::uint64_t s_lo = stream & low, s_hi = stream >> 32, k0_in = seed & low, k1_in = seed >> 32;
#pragma omp simd
  for (std::size_t j = 0; j < n; ++j) {  // backend::philox4x32_10 with every word in a 64-bit lane
    const std::uint64_t block = first + j;
    std::uint64_t c0 = block & low, c1 = block >> 32, c2 = s_lo, c3 = s_hi, k0 = k0_in, k1 = k1_in;
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = M0 * c0, p1 = M1 * c2;
      const std::uint64_t n0 = ((p1 >> 32) ^ c1 ^ k0) & low, n2 = ((p0 >> 32) ^ c3 ^ k1) & low;
      c1 = p1 & low;
      c3 = p0 & low;
      c0 = n0;
      c2 = n2;
      k0 = (k0 + W0) & low;
      k1 = (k1 + W1) & low;
    }
    r0[j] = static_cast<std::uint32_t>(c0);
    r1[j] = static_cast<std::uint32_t>(c1);
    r2[j] = static_cast<std::uint32_t>(c2);
    r3[j] = static_cast<std::uint32_t>(c3);
  }
#pragma omp simd
  for (std::size_t j = 0; j < n; ++j) {  // two Box-Muller pairs per block: (r0, r1) and (r2, r3)
    rad[j] = -2.0f * backend::detail::log_unit(backend::detail::uniform24(r0[j]));
    rad[n + j] = -2.0f * backend::detail::log_unit(backend::detail::uniform24(r2[j]));
    sincos_2pi_select(backend::detail::uniform24(r1[j]), sn[j], cs[j]);
    sincos_2pi_select(backend::detail::uniform24(r3[j]), sn[n + j], cs[n + j]);
  }
  sqrt_in_place(rad, 2 * n);
#pragma omp simd
  for (std::size_t j = 0; j < n; ++j) {
    out[4 * j] = rad[j] * cs[j];
    out[4 * j + 1] = rad[j] * sn[j];
    out[4 * j + 2] = rad[n + j] * cs[n + j];
    out[4 * j + 3] = rad[n + j] * sn[n + j];
  }
}

/// Calls f(begin, end, eta) over consecutive ranges covering [0, n), where eta[j] is the standard
/// normal that `noise.fill` writes at flat index offset + begin + j: the same Philox blocks,
/// generated a tile at a time on the stack (normal4_tile for float), so that a sampler's
/// element-wise update and its noise are one pass over memory. Chunks run in parallel; each
/// value is a pure function of its index, so the result depends neither on the thread count
/// nor on how a batch is split into offset ranges.
template <class T, class F>
void for_each_normal_chunk_at(const noise_source& noise, std::size_t offset, std::size_t n, F&& f) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (n == 0) return;
  constexpr std::size_t per_block = std::is_same_v<T, float> ? 4 : 2;
  constexpr std::size_t tile = normal_tile;
  const std::size_t first = offset / per_block, blocks = (offset + n + per_block - 1) / per_block - first;
  const std::uint64_t stream = noise.stream, seed = noise.seed;
  backend::cpu::parallel_chunks(blocks, elementwise_grain / (4 * per_block), [&](std::size_t b0, std::size_t b1) {
    alignas(64) T buf[tile * per_block];
    for (std::size_t b = b0; b < b1; b += tile) {
      const std::size_t nb = std::min(tile, b1 - b);
      if constexpr (std::is_same_v<T, float>) {
        normal4_tile(first + b, stream, seed, buf);
      } else {
        for (std::size_t j = 0; j < nb; ++j) backend::normal2(first + b + j, stream, seed, buf + 2 * j);
      }
      // the part of this tile's global indices [g0, g1) inside [offset, offset + n)
      const std::size_t g0 = (first + b) * per_block, g1 = g0 + nb * per_block;
      const std::size_t lo = std::max(g0, offset), hi = std::min(g1, offset + n);
      f(lo - offset, hi - offset, static_cast<const T*>(buf) + (lo - g0));
    }
  });
}

/// for_each_normal_chunk_at with offset 0.
template <class T, class F>
void for_each_normal_chunk(const noise_source& noise, std::size_t n, F&& f) {
  for_each_normal_chunk_at<T>(noise, 0, n, std::forward<F>(f));
}

}  // namespace softdiff::sampler::detail
