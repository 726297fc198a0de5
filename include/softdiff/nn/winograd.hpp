#pragma once
// Winograd's minimal filtering (Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for the dense 3 x 3 convolution with stride 1 and padding 1 (conv2d.hpp,
// conv_algorithm::winograd and winograd4), written once over the tiling F (winograd_tiles.hpp:
// F(2 x 2, 3 x 3) or F(4 x 4, 3 x 3)). Each m x m tile of the output is
//   Y = A^T [ sum_c (G w_oc G^T) (.) (B^T d_c B) ] A,
// d_c the a x a patch (a = m + 2) of input channel c that starts one row above and one column
// left of the tile (zero outside the image), w_oc the 3 x 3 kernel, (.) the element-wise
// product. The sum over c at each of the a^2 positions xi of the transform domain is a GEMM
// over the tiles of one or several samples,
//   M_xi [tiles, out] = V_xi [tiles, in] U_xi [in, out],  V = B^T d B,  U = (G w G^T)^T,
// on the register-tiled kernel of conv_kernels.hpp: a^2 multiply-adds per m^2 outputs and
// channel pair against the direct form's 9 m^2 (2.25x fewer at m = 2, 4x at m = 4). The result
// differs from the direct sum by float rounding alone (tested against float64 in
// tests/test_nn_conv_dense.cpp).
// Layout: the transforms work channels-last (a tile's a^2 values of a vector of channels), so
// every vector is full whatever the image size (7 x 7 has 4 tiles per row at m = 2); the sample
// is transposed to [pixels, channels] on the way in and back on the way out.
// The input gradient of the convolution is itself such a convolution of dy with the flipped
// kernel (conv2d.hpp), so the same forward serves it.
// A column of output depends only on its own tile, so the result is the same for any chunking
// of the batch and any thread count.
#include <algorithm>
#include <cstddef>
#include <vector>
#include <type_traits>

#include "softdiff/nn/channel_affine.hpp"
#include "softdiff/nn/conv_kernels.hpp"
#include "softdiff/nn/conv_lowering.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/winograd_tiles.hpp"

namespace softdiff::nn::detail {

/// Whether conv_algorithm::automatic picks Winograd for a dense 3 x 3 layer: float with AVX-512
/// and at least 32 input and output channels, where bench_layers (BM_conv3x3_shape) measured it
/// faster than the direct tiled kernel, forward and backward (docs/performance.md); at 16 output
/// channels the GEMMs are one vector wide and the transforms cost more than the multiplies they
/// save, and without AVX-512 the channel transposes run element by element.
template <class T>
[[nodiscard]] constexpr bool winograd_preferred(std::size_t in, std::size_t out) {
#if defined(__AVX512F__)
  return std::is_same_v<T, float> && std::min(in, out) >= 32;
#else
  (void)in, (void)out;
  return false;
#endif
}

/// The tiling automatic picks where winograd_preferred, by the layer's channels and the pixels
/// h w of its last input: 2 (F(2 x 2, 3 x 3)) from 64 channels (the smaller of in and out); below,
/// 4 (F(4 x 4, 3 x 3)) from 20 x 20 pixels, else 0 (the direct tiled kernel). Measured
/// (docs/performance.md, session 20): at 32 channels and 28 x 28, F(4 x 4) forward and backward
/// took 0.6-0.65x the direct kernel's time per layer, and the default RefUNet's training step
/// 5% less; at 32 channels and 14 x 14 or 7 x 7 (the main recipe's network, 8 samples per
/// replica) it made the network 11% slower to train and 15% slower to sample than the direct
/// kernel; at 64 channels F(4 x 4)'s forward was faster than F(2 x 2)'s but its weight gradient
/// (36 transform-domain products to accumulate per chunk of samples, against 16) slower, and
/// the training step no faster.
[[nodiscard]] constexpr std::size_t winograd_tiling(std::size_t in, std::size_t out, std::size_t pixels) {
  if (std::min(in, out) >= 64) return 2;
  return pixels >= 400 ? 4 : 0;
}

template <class F>
struct winograd_shape {
  static constexpr std::size_t m = F::m, planes = F::planes;
  std::size_t in = 0, out = 0, h = 0, w = 0;
  std::size_t th = 0, tw = 0, tiles = 0;  // tile rows, tile columns, th * tw
  std::size_t hq = 0, wq = 0;             // the padded input: m th + 2 rows of m tw + 2 pixels
  std::size_t chunk = 1, cols = 0;        // samples per GEMM and their tiles, chunk * tiles

  /// GEMM rows aimed at per chunk: a small image's tiles (16 at 7 x 7) are few rows to reuse
  /// the weights' strip over, so several samples share a GEMM.
  static constexpr std::size_t target_cols = 96;

  winograd_shape() = default;
  winograd_shape(std::size_t in_, std::size_t out_, std::size_t h_, std::size_t w_, std::size_t samples)
      : in(in_), out(out_), h(h_), w(w_), th((h_ + m - 1) / m), tw((w_ + m - 1) / m), tiles(th * tw), hq(m * th + 2),
        wq(m * tw + 2) {
    chunk = std::clamp<std::size_t>((target_cols + tiles - 1) / tiles, 1, std::max<std::size_t>(samples, 1));
    cols = chunk * tiles;
  }
  /// Scalars of one chunk's workspace: V and M (`planes` positions each), one sample's padded input,
  /// a plane of scratch (the mapped input; the output before its transpose) and a bias.
  [[nodiscard]] std::size_t padded_size() const { return hq * wq * in; }
  [[nodiscard]] std::size_t plane_size() const { return h * w * std::max(in, out); }
  /// Scalars from one transform-domain position of V (M) to the next: a multiple of 4 KiB
  /// apart, the positions a tile's transform writes (reads) would share a set of L1's
  /// (4 KiB aliasing; 96 tiles of 64 channels are exactly 24 KiB), so each is skewed by a line.
  static constexpr std::size_t skew = 16;
  [[nodiscard]] std::size_t v_plane() const { return cols * in + skew; }
  [[nodiscard]] std::size_t m_plane() const { return cols * out + skew; }
  [[nodiscard]] std::size_t workspace_size() const {
    return planes * (v_plane() + m_plane()) + padded_size() + plane_size() + out;
  }
};

/// U [planes, in, out] (position xi = alpha a + b major): U_xi[c][o] = (G w_oc G^T)[a][b] for
/// w [out, in, 3, 3] (row-major); 16 output channels at a time, so that the arithmetic runs on
/// vectors and U's rows are written contiguously. The kernels of 16 output and 16 input
/// channels are first transposed into [c, tap, o] (16 x 16 blocks, in registers where
/// transpose_part can), so the taps are read as vectors rather than gathered one by one.
template <class F, class T>
void winograd_weights(const T* w, std::size_t out, std::size_t in, T* U) {
  constexpr std::size_t B = 16, a = F::alpha;
  const std::size_t plane = out * in, row = in * 9;
  for (std::size_t o0 = 0; o0 < out; o0 += B) {
    const std::size_t n = std::min(B, out - o0);
    for (std::size_t c0 = 0; c0 < in; c0 += B) {
      const std::size_t nc = std::min(B, in - c0);
      T wt[B * 9][B] = {};  // [c - c0, tap, o - o0]; lanes o >= n stay zero
      for (std::size_t k0 = 0; k0 < nc * 9; k0 += B)
        transpose_part(w + o0 * row + c0 * 9 + k0, row, wt[k0], B, n, std::min(B, nc * 9 - k0));
      for (std::size_t c = c0; c < c0 + nc; ++c) {
        const T(*g)[B] = wt + (c - c0) * 9;
        T t[a][3][B], u[a * a][B];
        for (std::size_t v = 0; v < 3; ++v) {  // G g: rows of the kernel combined
#pragma omp simd
          for (std::size_t o = 0; o < B; ++o) {
            T r[a];
            F::weight(g[v][o], g[3 + v][o], g[6 + v][o], r);
            for (std::size_t i = 0; i < a; ++i) t[i][v][o] = r[i];
          }
        }
        for (std::size_t i = 0; i < a; ++i) {  // (G g) G^T: columns combined
#pragma omp simd
          for (std::size_t o = 0; o < B; ++o) {
            T r[a];
            F::weight(t[i][0][o], t[i][1][o], t[i][2][o], r);
            for (std::size_t j = 0; j < a; ++j) u[a * i + j][o] = r[j];
          }
        }
        for (std::size_t xi = 0; xi < a * a; ++xi) {
          T* dst = U + xi * plane + c * out + o0;
          if (n == B)  // a fixed count: vector moves, not a library call per position
            std::copy_n(u[xi], B, dst);
          else
            std::copy_n(u[xi], n, dst);
        }
      }
    }
  }
}

/// Uf [planes, out, in] = the winograd_weights of the flipped kernel W~[c, o, u, v] = W[o, c,
/// 2 - u, 2 - v] (dx = conv(dy, W~), conv2d.hpp), for w [out, in, 3, 3] and its transform U
/// [planes, in, out]. F(2 x 2): G J = P G for the 3 x 3 reversal J and the permutation P that
/// swaps rows 0 and 3, so G W~ G^T = P (G W G^T) P^T and Uf_(a, b) = U_(p(a), p(b))^T, read from
/// U. F(4 x 4): G J is no permutation of G's rows (J maps the point 2 to 1/2), so W~ is
/// written to `scratch` (in out 9 scalars) and transformed.
template <class F, class T>
void winograd_flipped(const T* w, const T* U, std::size_t in, std::size_t out, T* Uf, std::vector<T>& scratch) {
  if constexpr (F::flips_by_permutation) {
    static_assert(F::alpha == 4);
    constexpr std::size_t p[4] = {3, 1, 2, 0};
    for (std::size_t a = 0; a < 4; ++a)
      for (std::size_t b = 0; b < 4; ++b)
        transpose(U + (4 * p[a] + p[b]) * in * out, in, out, Uf + (4 * a + b) * in * out);
  } else {
    T* wf = reserve(scratch, in * out * 9);
    for (std::size_t o = 0; o < out; ++o)
      for (std::size_t c = 0; c < in; ++c)
        for (std::size_t k = 0; k < 9; ++k) wf[(c * out + o) * 9 + 8 - k] = w[(o * in + c) * 9 + k];
    winograd_weights<F>(wf, in, out, Uf);
  }
}

/// P [hq, wq, in] = one sample x [in, h, w] through the map m (one sample's; channel_affine.hpp;
/// empty: the identity), channels-last, at pixel (1, 1) of a zero-padded image. scratch: a plane
/// (plane_size()).
template <class F, class T>
void winograd_pad(const winograd_shape<F>& s, const T* x, const channel_affine<T>& m, T* P, T* scratch) {
  const std::size_t C = s.in, H = s.h, W = s.w, HW = H * W, wq = s.wq;
  const T* src = x;
  if (!m.empty()) {
    for (std::size_t c = 0; c < C; ++c) affine_silu_row(x + c * HW, HW, m.scale[c], m.shift[c], scratch + c * HW);
    src = scratch;
  }
  // channels-last, a 16 x 16 block (channels x pixels of one image row) at a time
  const std::size_t right = wq - W - 1;  // zero pixels right of each row
  std::fill(P, P + (wq + 1) * C, T(0));  // the top border and the first row's left pixel
  for (std::size_t i = 0; i < H; ++i) {
    T* row = P + ((i + 1) * wq + 1) * C;
    for (std::size_t c = 0; c < C; c += 16)
      for (std::size_t j = 0; j < W; j += 16)
        transpose_part(src + c * HW + i * W + j, HW, row + j * C + c, C, std::min<std::size_t>(16, C - c),
                       std::min<std::size_t>(16, W - j));
    std::fill(row + W * C, row + (W + right + 1) * C, T(0));  // the right border, the next row's left pixel
  }
  std::fill(P + ((H + 1) * wq + 1) * C, P + s.hq * wq * C, T(0));
}

/// The 2-D transform of an ni x ni block of vectors by a 1-D transform tr (ni values -> no):
/// tr over each column of load(q, p) (row q, column p), then over each row of the result;
/// store(a, b, value) for the rows a < rows. In registers; forced inline, so that load and store
/// fold into their addresses.
template <class S, std::size_t ni, std::size_t no, class Load, class Tr, class Store>
[[gnu::always_inline]] inline void transform_2d(Load&& load, Tr&& tr, Store&& store, std::size_t rows = no) {
  using reg = typename S::reg;
  reg mid[no][ni];  // tr of each column: mid[a][p]
#pragma GCC unroll 6
  for (std::size_t p = 0; p < ni; ++p) {
    reg col[ni], t[no];
#pragma GCC unroll 6
    for (std::size_t q = 0; q < ni; ++q) col[q] = load(q, p);
    tr(col, t);
#pragma GCC unroll 6
    for (std::size_t a = 0; a < no; ++a) mid[a][p] = t[a];
  }
#pragma GCC unroll 6
  for (std::size_t a = 0; a < no; ++a) {
    if (a >= rows) break;
    reg t[no];
    tr(mid[a], t);
#pragma GCC unroll 6
    for (std::size_t b = 0; b < no; ++b) store(a, b, t[b]);
  }
}

/// V [planes, cols, in] (position-major, v_plane() apart, then tile) at row row0 + tile: B^T d B
/// for every tile of the padded sample P [hq, wq, in], a vector of channels at a time, in
/// registers.
template <class F, class T>
void winograd_input(const winograd_shape<F>& s, const T* P, T* V, std::size_t row0) {
  using S = typename lanes_for<T>::type;
  using reg = typename S::reg;
  constexpr std::size_t L = S::width, a = F::alpha;
  const std::size_t C = s.in, wq = s.wq, plane = s.v_plane();
  for (std::size_t ti = 0; ti < s.th; ++ti)
    for (std::size_t tj = 0; tj < s.tw; ++tj) {
      const T* d = P + (F::m * ti * wq + F::m * tj) * C;
      T* v = V + (row0 + ti * s.tw + tj) * C;
      for (std::size_t c = 0; c < C; c += L) {
        const std::size_t k = std::min(L, C - c);
        transform_2d<S, a, a>(  // B^T d: rows combined, a column at a time; then (B^T d) B
            [&](std::size_t q, std::size_t p) { return S::load(d + (q * wq + p) * C + c, k); },
            [](const reg(&in)[a], reg(&out)[a]) { F::template input<S>(in, out); },
            [&](std::size_t q, std::size_t p, reg value) { S::store(v + (a * q + p) * plane + c, value, k); });
      }
    }
}

/// y [out, h, w] (one sample) = A^T M A + bias for every tile of M [planes, cols, out] at row
/// row0, plus residual (y's shape; may be null). bias [out] may be null. scratch: a plane.
template <class F, class T>
void winograd_output(const winograd_shape<F>& s, const T* M, std::size_t row0, const T* bias,
                     const T* residual, T* y, T* scratch) {
  using S = typename lanes_for<T>::type;
  using reg = typename S::reg;
  constexpr std::size_t L = S::width, a = F::alpha, mt = F::m;
  const std::size_t O = s.out, H = s.h, W = s.w, HW = H * W, plane = s.m_plane();
  T* yt = scratch;  // [HW, out]
  for (std::size_t ti = 0; ti < s.th; ++ti)
    for (std::size_t tj = 0; tj < s.tw; ++tj) {
      const T* m = M + (row0 + ti * s.tw + tj) * O;
      const std::size_t i = mt * ti, j = mt * tj;
      const std::size_t rows = std::min(mt, H - i), cols = std::min(mt, W - j);
      for (std::size_t o = 0; o < O; o += L) {
        const std::size_t k = std::min(L, O - o);
        const reg b = bias ? S::load(bias + o, k) : S::zero();
        transform_2d<S, a, mt>(  // A^T M: rows combined, for each column; then (A^T M) A, plus the bias
            [&](std::size_t e, std::size_t col) { return S::load(m + (a * e + col) * plane + o, k); },
            [](const reg(&in)[a], reg(&out)[mt]) { F::template output<S>(in, out); },
            [&](std::size_t e, std::size_t f, reg value) {
              if (f < cols) S::store(yt + ((i + e) * W + j + f) * O + o, S::add(value, b), k);
            },
            rows);
      }
    }
  for (std::size_t p = 0; p < HW; p += 16)  // back to [out, HW], a 16 x 16 block at a time
    for (std::size_t o = 0; o < O; o += 16)
      transpose_part(yt + p * O + o, O, y + o * HW + p, HW, std::min<std::size_t>(16, HW - p),
                     std::min<std::size_t>(16, O - o));
  if (residual) {
#pragma omp simd
    for (std::size_t l = 0; l < O * HW; ++l) y[l] += residual[l];
  }
}

/// The GEMMs M_xi [n, out] = V_xi [n, in] U_xi [in, out] over the first n of s.cols rows, one
/// per transform-domain position. aoff: strided_offsets(s.cols, in); boff: strided_offsets(in,
/// out). The depth is only `in`, so the register tile is one of 24 accumulators (fewer loads
/// per multiply-add than tiled_gemm's default) chosen by the width `out`.
template <class F, class T>
void winograd_gemms(const winograd_shape<F>& s, const T* V, const std::ptrdiff_t* aoff, const T* U,
                    const std::ptrdiff_t* boff, T* M, std::size_t n, bool parallel) {
  using S = typename lanes_for<T>::type;
  constexpr std::size_t W = S::width;
  const gemm_depth depth{1, s.in, s.in, 1, 0};
  for (std::size_t xi = 0; xi < F::planes; ++xi) {
    const T *v = V + xi * s.v_plane(), *u = U + xi * s.in * s.out;
    T* m = M + xi * s.m_plane();
    if constexpr (W == 16) {
      if (s.out % (4 * W) == 0) {
        tiled_gemm_shape<T, 6, 4, false>(n, s.out, depth, v, aoff, u, boff, m, s.out, nullptr, parallel);
        continue;
      }
      if (s.out % (2 * W) == 0) {
        tiled_gemm_shape<T, 12, 2, false>(n, s.out, depth, v, aoff, u, boff, m, s.out, nullptr, parallel);
        continue;
      }
      if (s.out % (3 * W) == 0) {
        tiled_gemm_shape<T, 8, 3, false>(n, s.out, depth, v, aoff, u, boff, m, s.out, nullptr, parallel);
        continue;
      }
    }
    tiled_gemm<T>(false, n, s.out, depth, v, aoff, u, boff, m, s.out, nullptr, parallel);
  }
}

/// y = conv3x3(m(x)) + bias + sample_bias + residual for samples [n0, n1) (n1 - n0 <= s.chunk) of
/// a batch: x, y, residual point at sample 0 of the batch; m is the batch's map (prepared here
/// sample by sample), sample_bias [N, out] or null. U: winograd_weights; work: workspace_size().
template <class F, class T>
void winograd_forward_chunk(const winograd_shape<F>& s, std::size_t n0, std::size_t n1, const T* x,
                            const channel_affine<T>& m, const T* U, const std::ptrdiff_t* aoff,
                            const std::ptrdiff_t* boff, const T* bias, const T* sample_bias, const T* residual, T* y,
                            T* work, bool parallel) {
  const std::size_t HW = s.h * s.w;
  T *V = work, *M = V + F::planes * s.v_plane(), *P = M + F::planes * s.m_plane(), *scratch = P + s.padded_size();
  T* bias_n = scratch + s.plane_size();
  for (std::size_t n = n0; n < n1; ++n) {
    m.prepare(n);
    winograd_pad(s, x + n * s.in * HW, m.sample(n), P, scratch);
    winograd_input(s, P, V, (n - n0) * s.tiles);
  }
  winograd_gemms(s, V, aoff, U, boff, M, (n1 - n0) * s.tiles, parallel);
  for (std::size_t n = n0; n < n1; ++n) {
    const T* b = bias;
    if (sample_bias) {
      for (std::size_t o = 0; o < s.out; ++o) bias_n[o] = (bias ? bias[o] : T(0)) + sample_bias[n * s.out + o];
      b = bias_n;
    }
    winograd_output(s, M, (n - n0) * s.tiles, b, residual ? residual + n * s.out * HW : nullptr,
                    y + n * s.out * HW, scratch);
  }
}

/// out [N, out, h, w] = conv3x3(m(in)) + bias + sample_bias + residual for a batch (see
/// winograd_forward_chunk), chunks of samples over threads (each GEMM's tiles over threads when
/// there are fewer chunks than threads; small passes on one thread); work, aoff and boff are
/// the caller's buffers, resized here.
template <class F, class T>
void winograd_conv(const winograd_shape<F>& s, std::size_t N, const T* in, const T* U, const channel_affine<T>& m,
                   const T* bias, const T* sample_bias, const T* residual, T* out, std::vector<T>& work,
                   std::vector<std::ptrdiff_t>& aoff, std::vector<std::ptrdiff_t>& boff) {
  strided_offsets(s.cols, s.in, aoff);
  strided_offsets(s.in, s.out, boff);
  const std::size_t chunks = (N + s.chunk - 1) / s.chunk, per = s.workspace_size();
  const int threads = N * s.out * s.h * s.w * s.in * 9 > 4 * parallel_threshold ? layer_threads() : 1;
  const bool over_chunks = threads > 1 && chunks >= static_cast<std::size_t>(threads);
  const int slots = over_chunks ? threads : 1;
  T* ws = reserve(work, static_cast<std::size_t>(slots) * per);
  const auto count = static_cast<std::ptrdiff_t>(chunks);
#pragma omp parallel for schedule(static) num_threads(slots) if (over_chunks)
  for (std::ptrdiff_t c = 0; c < count; ++c) {
    const std::size_t n0 = static_cast<std::size_t>(c) * s.chunk, n1 = std::min(N, n0 + s.chunk);
    winograd_forward_chunk(s, n0, n1, in, m, U, aoff.data(), boff.data(), bias, sample_bias, residual, out,
                           ws + static_cast<std::size_t>(omp_get_thread_num()) * per, !over_chunks && threads > 1);
  }
}

}  // namespace softdiff::nn::detail
