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
#include <vector>

#include "softdiff/error.hpp"

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
            for (std::size_t j = lo; j < hi; ++j) out[j] = in[static_cast<long>(j * g.stride) + base];
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


/// xp [C, H + 2p, W + 2p] = x [C, H, W] with a zero border of p (the whole of xp is written).
template <class T>
void pad_image(const T* x, std::size_t C, std::size_t H, std::size_t W, std::size_t p, T* xp) {
  const std::size_t Hp = H + 2 * p, Wp = W + 2 * p;
  for (std::size_t c = 0; c < C; ++c) {
    T* d = xp + c * Hp * Wp;
    std::fill(d, d + p * Wp, T(0));
    for (std::size_t i = 0; i < H; ++i) {
      T* row = d + (p + i) * Wp;
      const T* src = x + (c * H + i) * W;
      std::fill(row, row + p, T(0));
#pragma omp simd
      for (std::size_t j = 0; j < W; ++j) row[p + j] = src[j];
      std::fill(row + p + W, row + Wp, T(0));
    }
    std::fill(d + (p + H) * Wp, d + Hp * Wp, T(0));
  }
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

/// gT [H*Wg, C] = g [C, H, W]^T laid out on the padded-width grid (rows of columns j >= W are 0).
template <class T>
void transpose_to_grid(const T* g, std::size_t C, std::size_t H, std::size_t W, std::size_t Wg, T* gT) {
  for (std::size_t i = 0; i < H; ++i) {
    for (std::size_t j = 0; j < W; ++j) {
      T* d = gT + (i * Wg + j) * C;
      const T* s = g + i * W + j;
      for (std::size_t c = 0; c < C; ++c) d[c] = s[c * H * W];
    }
    std::fill(gT + (i * Wg + W) * C, gT + (i + 1) * Wg * C, T(0));
  }
}

/// dst [cols, rows] = src [rows, cols]^T, in 16 x 16 blocks.
template <class T>
void transpose(const T* src, std::size_t rows, std::size_t cols, T* dst) {
  constexpr std::size_t b = 16;
  for (std::size_t r0 = 0; r0 < rows; r0 += b)
    for (std::size_t c0 = 0; c0 < cols; c0 += b) {
      const std::size_t r1 = std::min(rows, r0 + b), c1 = std::min(cols, c0 + b);
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
