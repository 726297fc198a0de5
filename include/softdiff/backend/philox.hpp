#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11): a counter-based generator. The normal deviate at flat index i of
// stream s under seed k is a pure function of (k, s, i), so every backend and
// every thread count produces the same noise for the same seed.
//
// Counter = (block lo, block hi, stream lo, stream hi), key = (seed lo, seed hi).
// float:  one Philox block gives 4 uniforms with 24-bit mantissas, i.e. 4 normals
//         (two Box-Muller pairs) at indices 4b..4b+3.
// double: one block gives 2 uniforms with 53-bit mantissas, i.e. 2 normals at 2b, 2b+1.
#include <bit>
#include <cmath>
#include <cstdint>

#include "softdiff/backend/host_device.hpp"

namespace softdiff::backend {

struct philox_block {
  std::uint32_t v[4];
};

SOFTDIFF_HOST_DEVICE inline philox_block philox4x32_10(std::uint64_t block, std::uint64_t stream,
                                                       std::uint64_t seed) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(block), c1 = static_cast<std::uint32_t>(block >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(stream), c3 = static_cast<std::uint32_t>(stream >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(M0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(M1) * c2;
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return {{c0, c1, c2, c3}};
}

namespace detail {

// Uniform in (0, 1), never 0 (so log is finite) and never 1.
SOFTDIFF_HOST_DEVICE inline float uniform24(std::uint32_t x) {
  return (static_cast<float>(x >> 8) + 0.5f) * 5.9604644775390625e-8f;  // 2^-24
}
SOFTDIFF_HOST_DEVICE inline double uniform53(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t m = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
  return (static_cast<double>(m) + 0.5) * 1.1102230246251565e-16;  // 2^-53
}

// Branch-free float log for u in (0, 1]: u = m 2^e with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716; the series to s^9
// leaves an error below 4e-10, under float rounding. Written so loops over it vectorise.
SOFTDIFF_HOST_DEVICE inline float log_unit(float u) {
  const std::int32_t ix = std::bit_cast<std::int32_t>(u) - 0x3f3504f3;
  const int e = ix >> 23;  // arithmetic shift (defined since C++20): the exponent after re-centring
  const float m = std::bit_cast<float>((ix & 0x007fffff) + 0x3f3504f3);
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float poly = 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9)))));
  return static_cast<float>(e) * 0.69314718055994531f + poly;
}

// sin and cos of 2 pi u for u in [0, 1), by quadrant reduction to |r| <= pi/4
// and minimax-quality Taylor polynomials (error < 1e-7 there).
SOFTDIFF_HOST_DEVICE inline void sincos_2pi(float u, float& s, float& c) {
  const float a = 4.0f * u;                       // quarter turns in [0, 4)
  const float k = std::floor(a + 0.5f);           // nearest quadrant 0..4
  const float r = (a - k) * 1.57079632679489662f; // |r| <= pi/4
  const float r2 = r * r;
  const float sr = r * (1.0f + r2 * (-1.0f / 6 + r2 * (1.0f / 120 + r2 * (-1.0f / 5040 + r2 * (1.0f / 362880)))));
  const float cr = 1.0f + r2 * (-0.5f + r2 * (1.0f / 24 + r2 * (-1.0f / 720 + r2 * (1.0f / 40320))));
  const int q = static_cast<int>(k) & 3;
  // rotate (cr, sr) by q quarter turns
  const float cs[4] = {cr, -sr, -cr, sr};
  const float sn[4] = {sr, cr, -sr, -cr};
  c = cs[q];
  s = sn[q];
}

}  // namespace detail

/// Four standard normals for block `block` (float layout).
SOFTDIFF_HOST_DEVICE inline void normal4(std::uint64_t block, std::uint64_t stream, std::uint64_t seed,
                                         float out[4]) {
  const philox_block r = philox4x32_10(block, stream, seed);
  for (int p = 0; p < 2; ++p) {
    const float u1 = detail::uniform24(r.v[2 * p]);
    const float u2 = detail::uniform24(r.v[2 * p + 1]);
    const float rad = std::sqrt(-2.0f * detail::log_unit(u1));
    float s, c;
    detail::sincos_2pi(u2, s, c);
    out[2 * p] = rad * c;
    out[2 * p + 1] = rad * s;
  }
}

/// Two standard normals for block `block` (double layout), with libm accuracy.
SOFTDIFF_HOST_DEVICE inline void normal2(std::uint64_t block, std::uint64_t stream, std::uint64_t seed,
                                         double out[2]) {
  const philox_block r = philox4x32_10(block, stream, seed);
  const double u1 = detail::uniform53(r.v[0], r.v[1]);
  const double u2 = detail::uniform53(r.v[2], r.v[3]);
  const double rad = std::sqrt(-2.0 * std::log(u1));
  const double th = 6.283185307179586476925 * u2;
  out[0] = rad * std::cos(th);
  out[1] = rad * std::sin(th);
}

/// A uniform double in (0, 1) at `index` of `stream`, for draws that are not noise (t, colours, choices).
SOFTDIFF_HOST_DEVICE inline double uniform_at(std::uint64_t index, std::uint64_t stream, std::uint64_t seed) {
  const philox_block r = philox4x32_10(index, stream, seed);
  return detail::uniform53(r.v[0], r.v[1]);
}

}  // namespace softdiff::backend
