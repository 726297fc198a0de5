#pragma once
// The dense k x k convolution (k = 3 or 1; stride 1, padding (k - 1) / 2) of one sample in
// bfloat16 on tiles (tile_engines.hpp, precision.hpp); with the flipped weights it is also the
// dx of bf16 training:
//   y[o, i, j] = bias[o] + sum_{c, u, v} bf16(W[o, c, u, v]) bf16(m(x)[c, i + u - p, j + v - p])
// with products exact and sums in float32. As a GEMM per tap (u, v): output channels are the
// rows (A: 16 channels x kc input channels of the weights), output positions the columns.
// Positions run over the padded-width grid l = i Wp + j (Wp = W + k - 1; for k = 3 the columns
// j >= W are computed and cropped), so that tap (u, v) reads the zero-padded input at
// l + u Wp + v: a B tile is 16 consecutive positions of kc/2 channel-pair planes, the packed
// input storing each position's two channels side by side (the VNNI layout TDPBF16PS reads).
// Each step computes 32 output channels x 32 positions as four 16 x 16 C tiles (two output
// blocks, two position blocks; a last single output block as two).
// Applies to C and B multiples of 16; other layers stay float32 (conv2d decides).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "softdiff/nn/channel_affine.hpp"
#include "softdiff/nn/precision.hpp"
#include "softdiff/nn/tile_engines.hpp"

namespace softdiff::nn::detail {

/// Whether a k x k convolution (stride 1, padding (k - 1) / 2) of in -> out channels can run in
/// bf16 tiles.
[[nodiscard]] inline bool bf16_conv_applies(std::size_t in, std::size_t out, std::size_t k = 3) {
  return (k == 1 || k == 3) && in % 16 == 0 && out % 16 == 0 && in > 0 && out > 0;
}

/// Sizes of one sample's bf16 convolution (kernel k = 3 or 1).
struct bf16_conv_plan {
  std::size_t C, B, H, W, k, taps, Wp, kc, nkc, nob, grid, grid_pad, plane;
  bf16_conv_plan(std::size_t in, std::size_t out, std::size_t h, std::size_t w, std::size_t k_ = 3)
      : C(in), B(out), H(h), W(w), k(k_), taps(k_ * k_), Wp(w + k_ - 1), kc(in % 32 == 0 ? 32 : 16), nkc(in / kc),
        nob(out / 16), grid(h * Wp), grid_pad((grid + 31) / 32 * 32),
        plane((grid_pad + (k_ - 1) * (Wp + 1) + 15) / 16 * 16) {}  // the farthest tap read stays inside
  [[nodiscard]] std::size_t packed_input() const { return C / 2 * plane; }     // 32-bit pairs
  [[nodiscard]] std::size_t grid_output() const { return B * grid_pad; }       // floats
  [[nodiscard]] std::size_t packed_weights() const { return taps * B * C; }    // bf16
  [[nodiscard]] std::size_t row_scratch() const { return 2 * H * W; }          // floats: two mapped planes
};

/// wp[((tap nob + ob) nkc + kci) 16 kc + r kc + k] = bf16(W[16 ob + r, kc kci + k, u, v]), tap = k u + v:
/// the A tile of (tap, output block, K step), 16 rows of kc values. `flipped`: w holds the
/// weights of the transposed convolution, [p.C, p.B, k, k], and W[o, c, u, v] is
/// w[c, o, k - 1 - u, k - 1 - v] (the kernel W~ of dx = conv(dy, W~), conv2d.hpp).
inline void pack_bf16_weights(const float* w, const bf16_conv_plan& p, std::uint16_t* wp, bool flipped = false) {
  const std::size_t T = p.taps;
  for (std::size_t tap = 0; tap < T; ++tap)
    for (std::size_t ob = 0; ob < p.nob; ++ob)
      for (std::size_t kci = 0; kci < p.nkc; ++kci) {
        std::uint16_t* t = wp + ((tap * p.nob + ob) * p.nkc + kci) * 16 * p.kc;
        for (std::size_t r = 0; r < 16; ++r)
          for (std::size_t k = 0; k < p.kc; ++k) {
            const std::size_t o = 16 * ob + r, c = p.kc * kci + k;
            t[r * p.kc + k] = to_bf16(flipped ? w[(c * p.B + o) * T + T - 1 - tap] : w[(o * p.C + c) * T + tap]);
          }
      }
}

#if defined(__AVX512F__)
/// to_bf16 of 16 floats at once: the bf16 bits in the upper half of each 32-bit lane.
inline __m512i bf16_upper(__m512i u) {
  const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), abs = _mm512_set1_epi32(0x7fffffff);
  const __m512i inf = _mm512_set1_epi32(0x7f800000), quiet = _mm512_set1_epi32(0x40 << 16);
  const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs), inf);
  return _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(u, quiet));
}
[[nodiscard]] inline __mmask16 tail_mask(std::size_t left) {
  return static_cast<__mmask16>(left >= 16 ? 0xffffu : (1u << left) - 1u);
}
#endif

/// d[j] = bf16(r0[j]) | bf16(r1[j]) << 16 for j < n (rounded to nearest even; NaN stays NaN).
inline void pack_bf16_pairs(const float* r0, const float* r1, std::size_t n, std::uint32_t* d) {
  std::size_t j = 0;
#if defined(__AVX512F__)
  for (; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m512i lo = _mm512_srli_epi32(bf16_upper(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, r0 + j))), 16);
    const __m512i hi = _mm512_and_si512(bf16_upper(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, r1 + j))),
                                        _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
    _mm512_mask_storeu_epi32(d + j, m, _mm512_or_si512(lo, hi));
  }
#endif
  for (; j < n; ++j)
    d[j] = static_cast<std::uint32_t>(to_bf16(r0[j])) | (static_cast<std::uint32_t>(to_bf16(r1[j])) << 16);
}

/// d[j] = bf16(r[j]) for j < n.
inline void to_bf16_row(const float* r, std::size_t n, std::uint16_t* d) {
  std::size_t j = 0;
#if defined(__AVX512F__)
  for (; j < n; j += 16) {  // the tail by masked load and masked narrowing store (rows of 28)
    const __mmask16 m = tail_mask(n - j);
    _mm512_mask_cvtepi32_storeu_epi16(
        d + j, m, _mm512_srli_epi32(bf16_upper(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, r + j))), 16));
  }
#endif
  for (; j < n; ++j) d[j] = to_bf16(r[j]);
}

/// q: plane c/2 holds at position (i + p) Wp + j + p (p = (k - 1) / 2) the pair bf16(m(x)[c, i, j])
/// (low half) and bf16(m(x)[c + 1, i, j]) (high half); zero elsewhere. m is one sample's map (or
/// empty); `planes` is scratch for two mapped channels (row_scratch).
inline void pack_bf16_input(const float* x, const channel_affine<float>& m, const bf16_conv_plan& p,
                            std::uint32_t* q, float* planes) {
  const std::size_t H = p.H, W = p.W, Wp = p.Wp, HW = H * W;
  for (std::size_t c = 0; c < p.C; c += 2) {
    const float *x0 = x + c * HW, *x1 = x0 + HW;
    if (!m.empty()) {  // whole planes at once: rows of W would leave a scalar tail each
      affine_silu_row(x0, HW, m.scale[c], m.shift[c], planes);
      affine_silu_row(x1, HW, m.scale[c + 1], m.shift[c + 1], planes + HW);
      x0 = planes, x1 = planes + HW;
    }
    std::uint32_t* plane = q + c / 2 * p.plane;
    if (p.k == 1) {  // no padding: the plane is the image's rows one after another
      pack_bf16_pairs(x0, x1, HW, plane);
      std::fill(plane + HW, plane + p.plane, 0u);
      continue;
    }
    std::fill(plane, plane + Wp + 1, 0u);  // the top padding row and the first left padding
    for (std::size_t i = 0; i < H; ++i) {
      std::uint32_t* d = plane + (i + 1) * Wp + 1;
      pack_bf16_pairs(x0 + i * W, x1 + i * W, W, d);
      d[W] = 0u;      // right padding of this row
      d[W + 1] = 0u;  // left padding of the next (or the bottom row)
    }
    std::fill(plane + (H + 1) * Wp + 1, plane + p.plane, 0u);  // the bottom row and the slack
  }
}

/// Output blocks ob0 .. ob0 + MO - 1 (MO = 1 or 2) over every 32 positions of the grid: g[o, l].
template <class E, int MO>
SOFTDIFF_AMX_TARGET void bf16_tile_rows(const bf16_conv_plan& p, const std::uint16_t* wp, const std::uint32_t* q,
                                        float* g, std::size_t ob0) {
  const std::size_t b_stride = p.plane * 4, a_stride = p.kc * 2, a_tile = 16 * p.kc, g_stride = p.grid_pad * 4;
  for (std::size_t l0 = 0; l0 < p.grid_pad; l0 += 32) {
    E::template zero<0>();
    E::template zero<1>();
    if constexpr (MO == 2) {
      E::template zero<2>();
      E::template zero<3>();
    }
    for (std::size_t u = 0; u < p.k; ++u)
      for (std::size_t v = 0; v < p.k; ++v) {
        const std::size_t tap = p.k * u + v, shift = u * p.Wp + v;
        for (std::size_t kci = 0; kci < p.nkc; ++kci) {
          const std::uint32_t* bq = q + kci * (p.kc / 2) * p.plane + l0 + shift;
          const std::uint16_t* a = wp + ((tap * p.nob + ob0) * p.nkc + kci) * a_tile;
          E::template load_b<0>(bq, b_stride);
          E::template load_b<1>(bq + 16, b_stride);
          E::template load_a<0>(a, a_stride);
          E::template dp<0, 0, 0>();
          E::template dp<1, 0, 1>();
          if constexpr (MO == 2) {
            E::template load_a<1>(a + p.nkc * a_tile, a_stride);
            E::template dp<2, 1, 0>();
            E::template dp<3, 1, 1>();
          }
        }
      }
    float* g0 = g + ob0 * 16 * p.grid_pad + l0;
    E::template store<0>(g0, g_stride);
    E::template store<1>(g0 + 16, g_stride);
    if constexpr (MO == 2) {
      E::template store<2>(g0 + 16 * p.grid_pad, g_stride);
      E::template store<3>(g0 + 16 * p.grid_pad + 16, g_stride);
    }
  }
}

/// One sample: y [B, H, W] = conv(m(x)) + bias (+ residual [B, H, W] when given). Workspaces:
/// q (packed_input), g (grid_output), rows (row_scratch); wp from pack_bf16_weights.
template <class E>
void conv_bf16_sample(const bf16_conv_plan& p, const std::uint16_t* wp, const float* x,
                         const channel_affine<float>& m, const float* bias, const float* residual, float* y,
                         std::uint32_t* q, float* g, float* rows) {
  pack_bf16_input(x, m, p, q, rows);
  E::configure(static_cast<int>(p.kc));
  std::size_t ob = 0;
  for (; ob + 2 <= p.nob; ob += 2) bf16_tile_rows<E, 2>(p, wp, q, g, ob);
  if (ob < p.nob) bf16_tile_rows<E, 1>(p, wp, q, g, ob);
  E::release();
  const std::size_t H = p.H, W = p.W;
  for (std::size_t o = 0; o < p.B; ++o)
    for (std::size_t i = 0; i < H; ++i) {
      const float* gr = g + o * p.grid_pad + i * p.Wp;
      float* yr = y + (o * H + i) * W;
      const float b = bias[o];
      if (residual) {
        const float* rr = residual + (o * H + i) * W;
#pragma omp simd
        for (std::size_t j = 0; j < W; ++j) yr[j] = gr[j] + b + rr[j];
      } else {
#pragma omp simd
        for (std::size_t j = 0; j < W; ++j) yr[j] = gr[j] + b;
      }
    }
}

/// conv_bf16_sample on `engine`'s tiles (the emulation where this build has no AMX code;
/// conv2d checks the engine can run before it calls this).
inline void conv_bf16_sample_on(bf16_engine engine, const bf16_conv_plan& p, const std::uint16_t* wp,
                                   const float* x, const channel_affine<float>& m, const float* bias,
                                   const float* residual, float* y, std::uint32_t* q, float* g, float* rows) {
#if SOFTDIFF_AMX_CODE
  if (engine == bf16_engine::amx) return conv_bf16_sample<amx_tiles>(p, wp, x, m, bias, residual, y, q, g, rows);
#endif
  (void)engine;
  conv_bf16_sample<emulated_tiles>(p, wp, x, m, bias, residual, y, q, g, rows);
}

}  // namespace softdiff::nn::detail
