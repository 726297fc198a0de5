#pragma once
// How a convolution becomes a GEMM (conv2d.hpp): the im2col matrix and its adjoint col2im,
// zero-padded copies of images for the implicit ("shifted") GEMM, and transposes.
//
// im2col: cols[(c*k + u)*k + v, i*W' + j] = x[c, i*s - p + u, j*s - p + v] (0 outside).
// Shifted GEMM (stride 1): with xp the image zero-padded to [Hp, Wp] = [H + 2p, W + 2p] and
// output positions on the padded-width grid l = i*Wp + j (j < Wp; columns j >= W' are
// computed and dropped), the im2col row (c, u, v) is xp[c] shifted by u*Wp + v:
//   cols[(c, u, v), l] = xp[c*Hp*Wp + u*Wp + v + l]
// so the GEMM reads B's rows straight out of xp through a table of row offsets.
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "softdiff/error.hpp"
#include "softdiff/nn/channel_affine.hpp"

namespace softdiff::nn::detail {

// softdiff::nn::detail would hide softdiff::detail for `detail::require` written inside softdiff::nn.
using ::softdiff::detail::concat;
using ::softdiff::detail::require;

struct conv_geometry {
  std::size_t in_ch, out_ch, k, stride, pad, h, w, oh, ow;
  [[nodiscard]] std::size_t rows() const { return in_ch * k * k; }  // a*k*k
  [[nodiscard]] std::size_t cols() const { return oh * ow; }        // L
  /// Output columns j whose input column j*s - p + v lies inside [0, w): [lo, hi).
  void valid_range(std::size_t v, std::size_t& lo, std::size_t& hi) const {
    const long s = static_cast<long>(stride), off = static_cast<long>(v) - static_cast<long>(pad);
    const long first = off >= 0 ? 0 : (-off + s - 1) / s;
    const long last = (static_cast<long>(w) - 1 - off) >= 0 ? (static_cast<long>(w) - 1 - off) / s + 1 : 0;
    lo = static_cast<std::size_t>(std::min<long>(first, static_cast<long>(ow)));
    hi = static_cast<std::size_t>(std::max<long>(static_cast<long>(lo), std::min<long>(last, static_cast<long>(ow))));
  }
};

/// dst[j] = src[j * stride] for j < n: a row of a strided im2col. Stride 2 with n <= 16 on float
/// with AVX-512: two masked loads and one permute (the scalar loop costs more than the GEMM
/// that reads the row).
template <class T>
inline void strided_gather(const T* src, std::size_t stride, std::size_t n, T* dst) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 2 && n > 0 && n <= 16) {
      const std::size_t span = 2 * n - 1;  // elements src[0 .. 2n-2] are read, nothing past them
      const auto lo_mask = static_cast<__mmask16>(span >= 16 ? 0xFFFFu : (1u << span) - 1u);
      const auto hi_mask = static_cast<__mmask16>(span > 16 ? (1u << (span - 16)) - 1u : 0u);
      const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, src);
      const __m512 hi = _mm512_maskz_loadu_ps(hi_mask, src + 16);
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      const auto out_mask = static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
      _mm512_mask_storeu_ps(dst, out_mask, _mm512_permutex2var_ps(lo, even, hi));
      return;
    }
  }
#endif
  for (std::size_t j = 0; j < n; ++j) dst[j] = src[j * stride];
}

/// cols [a*k*k, oh*ow] from one sample x [a, h, w].
template <class T>
void im2col(const T* x, T* cols, const conv_geometry& g) {
  const std::size_t L = g.cols();
  for (std::size_t c = 0; c < g.in_ch; ++c)
    for (std::size_t u = 0; u < g.k; ++u)
      for (std::size_t v = 0; v < g.k; ++v) {
        T* row = cols + ((c * g.k + u) * g.k + v) * L;
        std::size_t lo, hi;
        g.valid_range(v, lo, hi);
        for (std::size_t i = 0; i < g.oh; ++i) {
          T* out = row + i * g.ow;
          const long iy = static_cast<long>(i * g.stride + u) - static_cast<long>(g.pad);
          if (iy < 0 || iy >= static_cast<long>(g.h)) {
            std::fill(out, out + g.ow, T(0));
            continue;
          }
          const T* in = x + (c * g.h + static_cast<std::size_t>(iy)) * g.w;
          std::fill(out, out + lo, T(0));
          std::fill(out + hi, out + g.ow, T(0));
          const long base = static_cast<long>(v) - static_cast<long>(g.pad);
          if (g.stride == 1) {
            const T* src = in + base;  // rows are short (W' ~ 28): an inlined loop beats a memcpy call
#pragma omp simd
            for (std::size_t j = lo; j < hi; ++j) out[j] = src[j];
          } else {
            strided_gather(in + static_cast<long>(lo * g.stride) + base, g.stride, hi - lo, out + lo);
          }
        }
      }
}

/// dx [a, h, w] = col2im(dcols): the adjoint of im2col (overwrites dx).
template <class T>
void col2im(const T* dcols, T* dx, const conv_geometry& g) {
  const std::size_t L = g.cols();
  std::fill(dx, dx + g.in_ch * g.h * g.w, T(0));
  for (std::size_t c = 0; c < g.in_ch; ++c)
    for (std::size_t u = 0; u < g.k; ++u)
      for (std::size_t v = 0; v < g.k; ++v) {
        const T* row = dcols + ((c * g.k + u) * g.k + v) * L;
        std::size_t lo, hi;
        g.valid_range(v, lo, hi);
        const long base = static_cast<long>(v) - static_cast<long>(g.pad);
        for (std::size_t i = 0; i < g.oh; ++i) {
          const long iy = static_cast<long>(i * g.stride + u) - static_cast<long>(g.pad);
          if (iy < 0 || iy >= static_cast<long>(g.h)) continue;
          T* out = dx + (c * g.h + static_cast<std::size_t>(iy)) * g.w;
          const T* in = row + i * g.ow;
          if (g.stride == 1) {
            T* o = out + base;
#pragma omp simd
            for (std::size_t j = lo; j < hi; ++j) o[j] += in[j];
          } else {
            for (std::size_t j = lo; j < hi; ++j) out[static_cast<long>(j * g.stride) + base] += in[j];
          }
        }
      }
}


/// dst[0, n) = src[0, n) for the short rows of an image (W ~ 7..28): whole vectors and one masked
/// vector for float with AVX-512 (the vectoriser's scalar tail costs more than the copy).
template <class T>
inline void copy_row(const T* src, std::size_t n, T* dst) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    std::size_t j = 0;
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(dst + j, _mm512_loadu_ps(src + j));
    if (j < n) {
      const auto m = static_cast<__mmask16>((1u << (n - j)) - 1u);
      _mm512_mask_storeu_ps(dst + j, m, _mm512_maskz_loadu_ps(m, src + j));
    }
    return;
  }
#endif
  for (std::size_t j = 0; j < n; ++j) dst[j] = src[j];
}

/// xp [C, H + 2p, W + 2p] = x [C, H, W] with a zero border of p (the whole of xp is written),
/// through the map m (one sample's; channel_affine.hpp) unless it is empty. Row by row, the right
/// border of one row and the left border of the next are one run of 2p zeros (p = 1: two plain
/// stores; a memset call per run costs more than the row's copy).
template <class T>
void pad_image(const T* x, std::size_t C, std::size_t H, std::size_t W, std::size_t p, T* xp,
               const channel_affine<T>& m = {}) {
  const std::size_t Hp = H + 2 * p, Wp = W + 2 * p;
  for (std::size_t c = 0; c < C; ++c) {
    T* d = xp + c * Hp * Wp;
    if (!m.empty()) {
      // the map over the whole plane at once (short rows would leave a scalar tail each), written
      // contiguously where the padded rows start; the rows are then moved to their places, the
      // last first (each moves to a higher address), and the zero border written around them
      T* first = d + p * Wp + p;
      affine_silu_row(x + c * H * W, H * W, m.scale[c], m.shift[c], first);
      for (std::size_t i = H; i-- > 1;) std::copy_backward(first + i * W, first + (i + 1) * W, first + i * Wp + W);
      std::fill(d, first, T(0));
      for (std::size_t i = 0; i + 1 < H; ++i) std::fill(first + i * Wp + W, first + (i + 1) * Wp, T(0));
      std::fill(first + (H - 1) * Wp + W, d + Hp * Wp, T(0));
      continue;
    }
    std::fill(d, d + p * Wp + p, T(0));
    for (std::size_t i = 0; i < H; ++i) {
      T* row = d + (p + i) * Wp + p;
      copy_row(x + (c * H + i) * W, W, row);
      if (i + 1 == H) break;
      if (p == 1) {  // plain stores: GCC turns a zeroing loop into a memset call
        row[W] = T(0);
        row[W + 1] = T(0);
      } else {
        std::fill(row + W, row + W + 2 * p, T(0));
      }
    }
    std::fill(d + (p + H) * Wp - p, d + Hp * Wp, T(0));
  }
}

/// Zeros before and after a row-padded image (pad_rows): a shifted row of the dense 3 x 3 GEMM
/// starts up to one element before the image and its masked lanes may reach one past it.
inline constexpr std::size_t row_pad_guard = 16;

/// xv [C, H + 2p, W] = x [C, H, W] with p zero rows above and below each channel, written at
/// xv_guarded + row_pad_guard, with row_pad_guard zeros on either side; through the map m (one
/// sample's) unless it is empty.
template <class T>
void pad_rows(const T* x, std::size_t C, std::size_t H, std::size_t W, std::size_t p, T* xv_guarded,
              const channel_affine<T>& m = {}) {
  std::fill(xv_guarded, xv_guarded + row_pad_guard, T(0));
  T* d = xv_guarded + row_pad_guard;
  for (std::size_t c = 0; c < C; ++c) {
    std::fill(d, d + p * W, T(0));
    if (m.empty())
      std::copy(x + c * H * W, x + (c + 1) * H * W, d + p * W);
    else
      affine_silu_row(x + c * H * W, H * W, m.scale[c], m.shift[c], d + p * W);
    std::fill(d + (p + H) * W, d + (H + 2 * p) * W, T(0));
    d += (H + 2 * p) * W;
  }
  std::fill(d, d + row_pad_guard, T(0));
}
/// Scalars pad_rows writes.
[[nodiscard]] inline std::size_t pad_rows_size(std::size_t C, std::size_t H, std::size_t W, std::size_t p) {
  return C * (H + 2 * p) * W + 2 * row_pad_guard;
}

/// Row offsets of the dense 3 x 3 GEMM (tiled_gemm_taps3) over a pad_rows image with p = 1,
/// relative to its first element: off[(c*3 + u)*3 + v] = c*(H + 2)*W + u*W + v - 1.
inline void tap_offsets(std::size_t C, std::size_t H, std::size_t W, std::vector<std::ptrdiff_t>& off) {
  off.resize(C * 9);
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t u = 0; u < 3; ++u)
      for (std::size_t v = 0; v < 3; ++v)
        off[(c * 3 + u) * 3 + v] = static_cast<std::ptrdiff_t>(c * (H + 2) * W + u * W + v) - 1;
}

/// y [C, H, W] = the first W columns of each row of grid [C, H, Wg] (Wg >= W).
template <class T>
void crop_columns(const T* grid, std::size_t C, std::size_t H, std::size_t Wg, std::size_t W, T* y) {
  for (std::size_t r = 0; r < C * H; ++r) {
    const T* s = grid + r * Wg;
    T* d = y + r * W;
#pragma omp simd
    for (std::size_t j = 0; j < W; ++j) d[j] = s[j];
  }
}

#if defined(__AVX512F__)
// GCC 12's unpack intrinsics pass an "undefined" operand that -Wuninitialized reports once inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
/// The first `rows` x `cols` (each at most 16) of the 16 x 16 block at src (row stride lds)
/// transposed into dst (row stride ldd), in registers: masked loads and stores where the block
/// is partial (nothing outside it is read or written).
inline void transpose_block16(const float* src, std::size_t lds, float* dst, std::size_t ldd, std::size_t rows = 16,
                              std::size_t cols = 16) {
  __m512 r[16], t[16];
  const auto col_mask = static_cast<__mmask16>((1u << cols) - 1u), row_mask = static_cast<__mmask16>((1u << rows) - 1u);
  for (std::size_t i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(col_mask, src + i * lds) : _mm512_setzero_ps();
  for (std::size_t i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (std::size_t i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (std::size_t h = 0; h < 16; h += 8)
    for (std::size_t i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  for (std::size_t i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (std::size_t i = 0; i < cols; ++i) _mm512_mask_storeu_ps(dst + i * ldd, row_mask, r[i]);
}
#pragma GCC diagnostic pop
#endif

/// The first rows x cols (at most 16 x 16) of src (row stride lds) transposed into dst (row
/// stride ldd): in registers for float with AVX-512, else element by element.
template <class T>
inline void transpose_part(const T* src, std::size_t lds, T* dst, std::size_t ldd, std::size_t rows,
                           std::size_t cols) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return transpose_block16(src, lds, dst, ldd, rows, cols);
#endif
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

/// dst [cols, rows] = src [rows, cols]^T, in 16 x 16 blocks (in registers for float with AVX-512).
template <class T>
void transpose(const T* src, std::size_t rows, std::size_t cols, T* dst) {
  constexpr std::size_t b = 16;
  for (std::size_t r0 = 0; r0 < rows; r0 += b)
    for (std::size_t c0 = 0; c0 < cols; c0 += b) {
      const std::size_t r1 = std::min(rows, r0 + b), c1 = std::min(cols, c0 + b);
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (r1 - r0 == b && c1 - c0 == b) {
          transpose_block16(src + r0 * cols + c0, cols, dst + c0 * rows + r0, rows);
          continue;
        }
      }
#endif
      for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
    }
}

/// Row offsets of the shifted GEMM: off[(c*k + u)*k + v] = c*Hp*Wp + u*Wp + v.
inline void shifted_offsets(std::size_t C, std::size_t k, std::size_t Hp, std::size_t Wp,
                            std::vector<std::ptrdiff_t>& off) {
  off.resize(C * k * k);
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t u = 0; u < k; ++u)
      for (std::size_t v = 0; v < k; ++v)
        off[(c * k + u) * k + v] = static_cast<std::ptrdiff_t>(c * Hp * Wp + u * Wp + v);
}

/// Row offsets of a plain row-major matrix: off[r] = r * ld.
inline void strided_offsets(std::size_t rows, std::size_t ld, std::vector<std::ptrdiff_t>& off) {
  off.resize(rows);
  for (std::size_t r = 0; r < rows; ++r) off[r] = static_cast<std::ptrdiff_t>(r * ld);
}

}  // namespace softdiff::nn::detail
