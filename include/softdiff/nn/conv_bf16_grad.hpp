#pragma once
// The weight gradient of the dense k x k convolution (k = 3 or 1; stride 1, padding
// p = (k - 1) / 2) of one sample in bfloat16 tiles (tile_engines.hpp), for bf16 training
// (precision.hpp). conv2d.hpp's rule dW^T = cols g^T, per tap (u, v) and with tap = k u + v:
//   dW^T[k^2 c + tap, o] (+)= sum_{i, j} bf16(m(x)[c, i + u - p, j + v - p]) bf16(dy[o, i, j]),
// products exact, sums float32. As a GEMM per tap: input channels are the rows (A: 16 channels x
// 32 positions of the zero-padded input at the tap's shift, plain bf16 rows), output channels
// the columns, output positions the K dimension. Positions run over the padded-width grid
// l = i Wp + j of conv_bf16.hpp (Wp = W + k - 1); dy is zero at the columns j >= W and past the
// grid, so those positions add nothing. B tiles hold dy transposed in VNNI pairs: row k of a
// tile is positions (l0 + 2k, l0 + 2k + 1) of 16 output channels. K steps start at even
// positions, so only dy needs the pair layout; the input is read at any shift as plain rows.
// dx of the same convolution is conv_bf16.hpp's forward program on dy with the flipped weights.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "softdiff/nn/channel_affine.hpp"
#include "softdiff/nn/conv_bf16.hpp"
#include "softdiff/nn/precision.hpp"
#include "softdiff/nn/tile_engines.hpp"

namespace softdiff::nn::detail {

/// Sizes of one sample's bf16 weight gradient (C input, B output channels, H x W, kernel k = 3 or 1).
struct bf16_grad_plan {
  std::size_t C, B, H, W, k, taps, Wp, grid, grid_pad, row;
  bf16_grad_plan(std::size_t in, std::size_t out, std::size_t h, std::size_t w, std::size_t k_ = 3)
      : C(in), B(out), H(h), W(w), k(k_), taps(k_ * k_), Wp(w + k_ - 1), grid(h * Wp), grid_pad((grid + 31) / 32 * 32),
        row((grid_pad + (k_ - 1) * (Wp + 1) + 31) / 32 * 32) {}  // the farthest tap read stays inside a row
  [[nodiscard]] std::size_t packed_input() const { return C * row; }        // bf16
  [[nodiscard]] std::size_t packed_dy() const { return grid_pad / 2 * B; }  // 32-bit pairs
  [[nodiscard]] std::size_t scratch() const { return H * W; }               // floats: one mapped plane
  [[nodiscard]] std::size_t dy_block() const { return 16 * grid_pad; }      // bf16: 16 padded dy planes
};

/// xb[c row + (i + p) Wp + j + p] = bf16(m(x)[c, i, j]) (p = (k - 1) / 2); zero elsewhere (padding
/// and slack).
/// `plane` is scratch for one mapped channel.
inline void pack_bf16_planes(const float* x, const channel_affine<float>& m, const bf16_grad_plan& p,
                             std::uint16_t* xb, float* plane) {
  const std::size_t H = p.H, W = p.W, Wp = p.Wp, HW = H * W;
  for (std::size_t c = 0; c < p.C; ++c) {
    const float* xc = x + c * HW;
    if (!m.empty()) {
      affine_silu_row(xc, HW, m.scale[c], m.shift[c], plane);
      xc = plane;
    }
    std::uint16_t* d = xb + c * p.row;
    if (p.k == 1) {  // no padding: the image's rows one after another
      to_bf16_row(xc, HW, d);
      std::fill(d + HW, d + p.row, std::uint16_t{0});
      continue;
    }
    std::fill(d, d + Wp + 1, std::uint16_t{0});
    for (std::size_t i = 0; i < H; ++i) {
      std::uint16_t* r = d + (i + 1) * Wp + 1;
      to_bf16_row(xc + i * W, W, r);
      r[W] = r[W + 1] = 0;  // right padding of this row, left padding of the next
    }
    std::fill(d + (H + 1) * Wp + 1, d + p.row, std::uint16_t{0});
  }
}

/// out[q out_stride + k] = in[k in_stride + q] for k < 16, q < n (n a multiple of 16): 32-bit
/// words, 16 x 16 blocks (under AVX-512 one block is 16 loads, 64 in-register shuffles and 16
/// stores; the scalar loop is the same map).
inline void transpose_words16(const std::uint32_t* in, std::size_t in_stride, std::size_t n, std::uint32_t* out,
                              std::size_t out_stride) {
#if defined(__AVX512F__)
  for (std::size_t q0 = 0; q0 < n; q0 += 16) {
    __m512i r[16], t[16];
    for (std::size_t k = 0; k < 16; ++k) r[k] = _mm512_loadu_si512(in + k * in_stride + q0);
    for (std::size_t k = 0; k < 16; k += 2) {  // per 128-bit lane: pairs of rows interleaved
      t[k] = _mm512_unpacklo_epi32(r[k], r[k + 1]);
      t[k + 1] = _mm512_unpackhi_epi32(r[k], r[k + 1]);
    }
    for (std::size_t b = 0; b < 16; b += 4) {  // r[b + c], lane L: column 4L + c of rows b .. b + 3
      r[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
      r[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
      r[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
      r[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    for (std::size_t c = 0; c < 4; ++c) {  // gather lane L of r[c], r[4 + c], r[8 + c], r[12 + c]
      const __m512i v = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x88), w = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xdd);
      const __m512i v2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x88);
      const __m512i w2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xdd);
      std::uint32_t* o = out + (q0 + c) * out_stride;
      _mm512_storeu_si512(o, _mm512_shuffle_i32x4(v, v2, 0x88));                   // column c
      _mm512_storeu_si512(o + 4 * out_stride, _mm512_shuffle_i32x4(w, w2, 0x88));  // 4 + c
      _mm512_storeu_si512(o + 8 * out_stride, _mm512_shuffle_i32x4(v, v2, 0xdd));  // 8 + c
      _mm512_storeu_si512(o + 12 * out_stride, _mm512_shuffle_i32x4(w, w2, 0xdd));  // 12 + c
    }
  }
#else
  for (std::size_t q0 = 0; q0 < n; q0 += 16)
    for (std::size_t k = 0; k < 16; ++k)
      for (std::size_t q = q0; q < q0 + 16; ++q) out[q * out_stride + k] = in[k * in_stride + q];
#endif
}

/// dyT[(l / 2) B + o] holds bf16(dy[o, l]) in its low (l even) or high (l odd) half, for grid
/// positions l = i Wp + j; zero at j >= W and past the grid. Per 16 output channels: their
/// padded bf16 planes into `block` (dy_block()), then one transpose of their 32-bit pairs.
inline void pack_bf16_dy_pairs(const float* dy, const bf16_grad_plan& p, std::uint32_t* dyT, std::uint32_t* block) {
  const std::size_t H = p.H, W = p.W, Wp = p.Wp, HW = H * W, pairs = p.grid_pad / 2;
  auto* planes = reinterpret_cast<std::uint16_t*>(block);  // plane k: block[k pairs ..], l at half l
  for (std::size_t o0 = 0; o0 < p.B; o0 += 16) {
    for (std::size_t k = 0; k < 16; ++k) {
      std::uint16_t* d = planes + k * p.grid_pad;
      const float* src = dy + (o0 + k) * HW;
      if (Wp == W) {  // k = 1: the rows are contiguous
        to_bf16_row(src, H * W, d);
      } else {
        for (std::size_t i = 0; i < H; ++i) {
          to_bf16_row(src + i * W, W, d + i * Wp);
          d[i * Wp + W] = d[i * Wp + W + 1] = 0;
        }
      }
      std::fill(d + p.grid, d + p.grid_pad, std::uint16_t{0});
    }
    transpose_words16(block, pairs, pairs, dyT + o0, p.B);
  }
}

/// C tile t = 2 mc + mo of the program below: zeroed, or loaded to accumulate.
template <class E, int T>
SOFTDIFF_AMX_TARGET void bf16_grad_begin(const float* c, std::size_t stride, bool accumulate) {
  if (accumulate)
    E::template load_c<T>(c, stride);
  else
    E::template zero<T>();
}

/// Input channels c0 .. c0 + 16 MC - 1 x output channels o0 .. o0 + 16 MO - 1, every tap:
/// dwT rows k^2 c + tap, columns o (row stride B).
template <class E, int MC, int MO>
SOFTDIFF_AMX_TARGET void bf16_grad_tiles(const bf16_grad_plan& p, const std::uint16_t* xb, const std::uint32_t* dyT,
                                         float* dwT, std::size_t c0, std::size_t o0, bool accumulate) {
  const std::size_t T = p.taps, a_stride = p.row * 2, b_stride = p.B * 4, c_stride = T * p.B * 4,
                    c_block = 16 * T * p.B;
  for (std::size_t tap = 0; tap < T; ++tap) {
    const std::size_t shift = (tap / p.k) * p.Wp + tap % p.k;
    float* c = dwT + (T * c0 + tap) * p.B + o0;
    bf16_grad_begin<E, 0>(c, c_stride, accumulate);
    if constexpr (MO == 2) bf16_grad_begin<E, 1>(c + 16, c_stride, accumulate);
    if constexpr (MC == 2) bf16_grad_begin<E, 2>(c + c_block, c_stride, accumulate);
    if constexpr (MC == 2 && MO == 2) bf16_grad_begin<E, 3>(c + c_block + 16, c_stride, accumulate);
    for (std::size_t l0 = 0; l0 < p.grid_pad; l0 += 32) {
      const std::uint16_t* a = xb + c0 * p.row + l0 + shift;
      const std::uint32_t* b = dyT + l0 / 2 * p.B + o0;
      E::template load_b<0>(b, b_stride);
      if constexpr (MO == 2) E::template load_b<1>(b + 16, b_stride);
      E::template load_a<0>(a, a_stride);
      E::template dp<0, 0, 0>();
      if constexpr (MO == 2) E::template dp<1, 0, 1>();
      if constexpr (MC == 2) {
        E::template load_a<1>(a + 16 * p.row, a_stride);
        E::template dp<2, 1, 0>();
        if constexpr (MO == 2) E::template dp<3, 1, 1>();
      }
    }
    E::template store<0>(c, c_stride);
    if constexpr (MO == 2) E::template store<1>(c + 16, c_stride);
    if constexpr (MC == 2) E::template store<2>(c + c_block, c_stride);
    if constexpr (MC == 2 && MO == 2) E::template store<3>(c + c_block + 16, c_stride);
  }
}

/// One sample: dwT [k^2 C, B] = (accumulate ? dwT : 0) + its weight gradient (above). Workspaces:
/// xb (packed_input), dyT (packed_dy), plane (scratch floats), block (dy_block bf16, as words).
template <class E>
void conv_bf16_grad_sample(const bf16_grad_plan& p, const float* x, const channel_affine<float>& m,
                              const float* dy, float* dwT, bool accumulate, std::uint16_t* xb, std::uint32_t* dyT,
                              float* plane, std::uint32_t* block) {
  pack_bf16_planes(x, m, p, xb, plane);
  pack_bf16_dy_pairs(dy, p, dyT, block);
  E::configure(32);  // A and B rows of 64 bytes: 32 positions, 16 channel pairs
  for (std::size_t c0 = 0; c0 < p.C; c0 += 32)
    for (std::size_t o0 = 0; o0 < p.B; o0 += 32) {
      const bool two_c = c0 + 32 <= p.C, two_o = o0 + 32 <= p.B;
      if (two_c && two_o)
        bf16_grad_tiles<E, 2, 2>(p, xb, dyT, dwT, c0, o0, accumulate);
      else if (two_c)
        bf16_grad_tiles<E, 2, 1>(p, xb, dyT, dwT, c0, o0, accumulate);
      else if (two_o)
        bf16_grad_tiles<E, 1, 2>(p, xb, dyT, dwT, c0, o0, accumulate);
      else
        bf16_grad_tiles<E, 1, 1>(p, xb, dyT, dwT, c0, o0, accumulate);
    }
  E::release();
}

/// conv_bf16_grad_sample on `engine`'s tiles (the emulation where this build has no AMX code).
inline void conv_bf16_grad_sample_on(bf16_engine engine, const bf16_grad_plan& p, const float* x,
                                        const channel_affine<float>& m, const float* dy, float* dwT, bool accumulate,
                                        std::uint16_t* xb, std::uint32_t* dyT, float* plane, std::uint32_t* block) {
#if SOFTDIFF_AMX_CODE
  if (engine == bf16_engine::amx)
    return conv_bf16_grad_sample<amx_tiles>(p, x, m, dy, dwT, accumulate, xb, dyT, plane, block);
#endif
  (void)engine;
  conv_bf16_grad_sample<emulated_tiles>(p, x, m, dy, dwT, accumulate, xb, dyT, plane, block);
}

}  // namespace softdiff::nn::detail
