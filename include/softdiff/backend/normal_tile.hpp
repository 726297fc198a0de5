#pragma once
// Host-side Philox normals a tile at a time: the float deviates of backend::normal4 for 64
// consecutive Philox blocks, computed one stage at a time across the tile so that each stage
// vectorises (about 6x the scalar normal4 loop). backend::cpu::fill_normal and the samplers'
// fused noise passes (sampler/step_support.hpp) draw their float noise through it; the values
// are those of backend::normal4 bit for bit (tests/test_sampler_steps.cpp, test_philox.cpp).
#include <cmath>
#include <cstddef>
#include <cstdint>

#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "softdiff/backend/philox.hpp"

namespace softdiff::backend::detail {

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
/// for bit to backend::normal4 (the scalar form, which the CUDA kernels use), computed a stage at a time
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
    rad[j] = -2.0f * log_unit(uniform24(r0[j]));
    rad[n + j] = -2.0f * log_unit(uniform24(r2[j]));
    sincos_2pi_select(uniform24(r1[j]), sn[j], cs[j]);
    sincos_2pi_select(uniform24(r3[j]), sn[n + j], cs[n + j]);
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

}  // namespace softdiff::backend::detail
