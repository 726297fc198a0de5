#pragma once
// The GEMM that convolutions run on (conv2d.hpp):
//   C [M, N] (+)= A [M, K] B [K, N]  (+ bias[i] on row i),
// where row i of A starts at A + aoff[i] and row k of B at B + boff[k] (columns are
// contiguous in both), so im2col matrices, shifted views of a padded image (conv_lowering.hpp)
// and plain matrices are all read in place, with no packing.
//
// Register tiling: a tile of MR rows x NR columns of C stays in registers while k runs over
// the whole depth; each step loads NR / width vectors of B's row k and broadcasts one
// scalar of each of the MR rows of A. NR-column strips are the outer loop and MR-row
// tiles the inner one, so a strip (K rows of NR values) is reused from L1 by every row
// tile. At the right edge B is read with masked loads (nothing past column N is touched)
// and C is written with masked stores.
// Vector width and tile: AVX-512 16 floats, 8 x 32 (6 x 64 or 12 x 32 where those divide C
// exactly: conv2d's dW GEMMs); AVX2 + FMA 8 floats, 6 x 16; any other scalar type or ISA the
// same code on scalars (4 x 4), which is what double (gradient checks) runs.
// The depth may run over rows of an image with their padding columns skipped, and over several
// images (gemm_depth). tiled_gemm_taps3 is the variant for 3 x 3 convolutions with padding 1 on
// dense output positions: horizontal padding by masked (zeroing) loads instead of zero columns.
//
// Why not BLAS: this kernel reads the conv operands without im2col copies, and Debian's
// OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels on AVX-512 AMD CPUs; bench_layers.cpp
// compares both conv2d algorithms.
#include <algorithm>
#include <cstddef>
#include <type_traits>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define SOFTDIFF_NN_SIMD_KERNEL 1
#endif

#include "softdiff/error.hpp"

namespace softdiff::nn::detail {

// softdiff::nn::detail would hide softdiff::detail for `detail::require` written inside softdiff::nn.
using ::softdiff::detail::concat;
using ::softdiff::detail::require;

/// Scalar "vectors" of width 1: the portable kernel (double, or float without AVX2).
template <class T>
struct scalar_lanes {
  using reg = T;
  static constexpr std::size_t width = 1, mr = 4, nv = 4;
  static constexpr std::size_t taps3_mr = mr, taps3_nv = nv;  // tile of tiled_gemm_taps3
  static reg zero() { return T(0); }
  static reg set1(T x) { return x; }
  static reg load(const T* p) { return *p; }
  static reg load(const T* p, std::size_t n) { return n ? *p : T(0); }
  static void store(T* p, reg v) { *p = v; }
  static void store(T* p, reg v, std::size_t n) {
    if (n) *p = v;
  }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  using lane_mask = bool;
  static lane_mask mask_bits(unsigned bits) { return (bits & 1u) != 0; }
  static reg load(const T* p, lane_mask m) { return m ? *p : T(0); }
};

#if defined(__AVX512F__)
struct float_lanes {
  using reg = __m512;
  static constexpr std::size_t width = 16, mr = 8, nv = 2;  // 16 accumulators of 32 registers
  // tiled_gemm_taps3: 24 accumulators; 8 x 3 measured 8% faster than 8 x 2 (12 x 2, 6 x 4 and
  // 10 x 2 slower) on the dense 3 x 3 forward (docs/performance.md)
  static constexpr std::size_t taps3_mr = 8, taps3_nv = 3;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load(const float* p, std::size_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, reg v, std::size_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static __mmask16 mask(std::size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  using lane_mask = __mmask16;
  static lane_mask mask_bits(unsigned bits) { return static_cast<__mmask16>(bits); }
  static reg load(const float* p, lane_mask m) { return _mm512_maskz_loadu_ps(m, p); }
};
#elif defined(__AVX2__) && defined(__FMA__)
struct float_lanes {
  using reg = __m256;
  static constexpr std::size_t width = 8, mr = 6, nv = 2;  // 12 accumulators of 16 registers
  static constexpr std::size_t taps3_mr = mr, taps3_nv = nv;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg load(const float* p, std::size_t n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, reg v, std::size_t n) { _mm256_maskstore_ps(p, mask(n), v); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static __m256i mask(std::size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  using lane_mask = __m256i;
  static lane_mask mask_bits(unsigned bits) {
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), lane_bit), lane_bit);
  }
  static reg load(const float* p, lane_mask m) { return _mm256_maskload_ps(p, m); }
};
#endif

template <class T>
struct lanes_for {
  using type = scalar_lanes<T>;
};
#ifdef SOFTDIFF_NN_SIMD_KERNEL
template <>
struct lanes_for<float> {
  using type = float_lanes;
};
#endif

/// Whether T runs on SIMD registers here (else on the scalar kernel).
template <class T>
inline constexpr bool simd_kernel = !std::is_same_v<typename lanes_for<T>::type, scalar_lanes<T>>;

/// The depth of a GEMM: `groups` x `segments` x `length` steps; step k = (r * segments + s) *
/// length + e reads A's rows at r * group_step + s * a_step + e (segments = groups = 1: plain
/// rows; a_step > length: an image's rows without its padding columns; groups: several images).
struct gemm_depth {
  std::size_t segments, length, a_step, groups = 1, group_step = 0;
};

/// One step of the depth of an MR x NV-vector register tile: acc[i][j] += a(i) B_k[j], B_k the
/// NV vectors at bk (masked to n[j] lanes where Edge), a(i) broadcast. Forced inline: acc must
/// stay in registers.
template <class S, std::size_t MR, std::size_t NV, bool Edge, class T, class AValue>
[[gnu::always_inline]] inline void tile_step(typename S::reg (&acc)[MR][NV], const T* bk, const std::size_t (&n)[NV],
                                             AValue a) {
  constexpr std::size_t W = S::width;
  typename S::reg bv[NV];
#pragma GCC unroll 4
  for (std::size_t j = 0; j < NV; ++j) bv[j] = Edge ? S::load(bk + j * W, n[j]) : S::load(bk + j * W);
#pragma GCC unroll 32
  for (std::size_t i = 0; i < MR; ++i) {
    const typename S::reg ai = S::set1(a(i));
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) acc[i][j] = S::fma(ai, bv[j], acc[i][j]);
  }
}

/// C's first `rows` rows = acc (Accumulate: C + acc), vectors masked to n[j] lanes where Edge.
template <class S, std::size_t MR, std::size_t NV, bool Accumulate, bool Edge, class T>
[[gnu::always_inline]] inline void tile_store(const typename S::reg (&acc)[MR][NV], T* c, std::size_t ldc,
                                              std::size_t rows, const std::size_t (&n)[NV]) {
  constexpr std::size_t W = S::width;
#pragma GCC unroll 32
  for (std::size_t i = 0; i < MR; ++i) {
    if (i >= rows) break;
    T* ci = c + i * ldc;
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) {
      typename S::reg v = acc[i][j];
      if constexpr (Edge) {
        if (n[j] == 0) continue;
        if constexpr (Accumulate) v = S::add(v, S::load(ci + j * W, n[j]));
        S::store(ci + j * W, v, n[j]);
      } else {
        if constexpr (Accumulate) v = S::add(v, S::load(ci + j * W));
        S::store(ci + j * W, v);
      }
    }
  }
}

/// One MR x NR tile (NR = NV vectors): C[i, j] (+)= sum_k A[i, k] B[k, j] (+ bias[i]) for i < rows,
/// j < cols, the depth k as gemm_depth d describes. a[i] is row i of A (rows >= `rows` repeat a
/// valid row; their results are dropped). b is column 0 of the strip, its row k at b + boff[k].
template <class S, std::size_t MR, std::size_t NV, bool Accumulate, bool Edge, class T>
inline void micro_tile(const gemm_depth& d, const T* const* a, const T* b, const std::ptrdiff_t* boff, T* c,
                       std::size_t ldc, std::size_t rows, std::size_t cols, const T* bias) {
  constexpr std::size_t W = S::width;
  std::size_t n[NV];  // valid lanes of each vector of the strip
  for (std::size_t j = 0; j < NV; ++j) n[j] = cols > j * W ? std::min(W, cols - j * W) : 0;
  typename S::reg acc[MR][NV];
#pragma GCC unroll 32
  for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) acc[i][j] = (bias && i < rows) ? S::set1(bias[i]) : S::zero();
  const std::size_t seg = d.length, runs = d.groups * d.segments;
  for (std::size_t sg = 0, r = 0, s = 0; sg < runs; ++sg) {
    const std::size_t a_off = r * d.group_step + s * d.a_step;
    if (++s == d.segments) s = 0, ++r;
    const T* as[MR];
#pragma GCC unroll 32
    for (std::size_t i = 0; i < MR; ++i) as[i] = a[i] + a_off;
    const std::ptrdiff_t* bo = boff + sg * seg;
    for (std::size_t k = 0; k < seg; ++k)
      tile_step<S, MR, NV, Edge>(acc, b + bo[k], n, [&](std::size_t i) { return as[i][k]; });
  }
  tile_store<S, MR, NV, Accumulate, Edge>(acc, c, ldc, rows, n);
}

/// f(i0, j0, rows, cols) for every MR x NR tile of an M x N matrix (rows, cols: its valid
/// extent), spread over OpenMP threads when `parallel`; work item w is strip w / tiles and row
/// tile w % tiles, so the row tiles of a strip (which share its B values in L1) are neighbours.
template <std::size_t MR, std::size_t NR, class F>
void for_each_tile(std::size_t M, std::size_t N, bool parallel, F&& f) {
  const std::size_t strips = (N + NR - 1) / NR, tiles = (M + MR - 1) / MR;
  const auto count = static_cast<std::ptrdiff_t>(strips * tiles);
#pragma omp parallel for schedule(static) if (parallel && count > 1)
  for (std::ptrdiff_t w = 0; w < count; ++w) {
    const std::size_t j0 = static_cast<std::size_t>(w) / tiles * NR, i0 = static_cast<std::size_t>(w) % tiles * MR;
    f(i0, j0, std::min(MR, M - i0), std::min(NR, N - j0));
  }
}

template <class T, std::size_t MR, std::size_t NV, bool Accumulate>
void tiled_gemm_shape(std::size_t M, std::size_t N, const gemm_depth& K, const T* A, const std::ptrdiff_t* aoff,
                      const T* B, const std::ptrdiff_t* boff, T* C, std::size_t ldc, const T* bias, bool parallel) {
  using S = typename lanes_for<T>::type;
  constexpr std::size_t NR = NV * S::width;
  for_each_tile<MR, NR>(M, N, parallel, [&](std::size_t i0, std::size_t j0, std::size_t rows, std::size_t cols) {
    const T* a[MR];
    for (std::size_t i = 0; i < MR; ++i) a[i] = A + aoff[i0 + std::min(i, rows - 1)];
    const T* bi = bias ? bias + i0 : nullptr;
    if (cols == NR)
      micro_tile<S, MR, NV, Accumulate, false>(K, a, B + j0, boff, C + i0 * ldc + j0, ldc, rows, cols, bi);
    else
      micro_tile<S, MR, NV, Accumulate, true>(K, a, B + j0, boff, C + i0 * ldc + j0, ldc, rows, cols, bi);
  });
}

template <class T, bool Accumulate>
void tiled_gemm_impl(std::size_t M, std::size_t N, const gemm_depth& K, const T* A, const std::ptrdiff_t* aoff, const T* B,
                     const std::ptrdiff_t* boff, T* C, std::size_t ldc, const T* bias, bool parallel) {
  using S = typename lanes_for<T>::type;
  if constexpr (S::width == 16) {
    // With 32 vector registers, 24 accumulators where they divide C exactly: fewer loads per
    // multiply-add than 8 x 2 (the dW GEMMs of conv2d, C [a*k*k, b] with b = 32 or 64).
    if (N % (4 * S::width) == 0 && M % 6 == 0)
      return tiled_gemm_shape<T, 6, 4, Accumulate>(M, N, K, A, aoff, B, boff, C, ldc, bias, parallel);
    if (N == 2 * S::width && M % 12 == 0)
      return tiled_gemm_shape<T, 12, 2, Accumulate>(M, N, K, A, aoff, B, boff, C, ldc, bias, parallel);
    // one vector wide (b = 16: the dW GEMMs of the main job's 16-channel layers): 24 x 1, where
    // 8 x 2 would leave half of every multiply-add's lanes masked off
    if (N == S::width && M % 24 == 0)
      return tiled_gemm_shape<T, 24, 1, Accumulate>(M, N, K, A, aoff, B, boff, C, ldc, bias, parallel);
  }
  tiled_gemm_shape<T, S::mr, S::nv, Accumulate>(M, N, K, A, aoff, B, boff, C, ldc, bias, parallel);
}

/// One MR x NR tile of C [M, N] (+)= A^T B for A [K, lda] and B [K, ldb] row-major (BLAS's
/// "TN"): step k broadcasts MR consecutive values of A's row k and loads NV vectors of B's row k,
/// so a matrix stored tile-major is the left operand without a transpose (winograd_grad.hpp's
/// V). Each C value is the same chain of multiply-adds over k in order as micro_tile's on the
/// transposed copy of A, so the two agree bit for bit on SIMD lanes (scalar lanes' a * b + c is
/// contracted or not at the compiler's choice). Edge: rows >= `rows` repeat the last valid
/// column of A (their results are dropped) and columns >= `cols` are masked.
template <class S, std::size_t MR, std::size_t NV, bool Accumulate, bool Edge, class T>
inline void micro_tile_tn(std::size_t K, const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c,
                          std::size_t ldc, std::size_t rows, std::size_t cols) {
  constexpr std::size_t W = S::width;
  std::size_t n[NV], ai[MR];
  for (std::size_t j = 0; j < NV; ++j) n[j] = cols > j * W ? std::min(W, cols - j * W) : 0;
  for (std::size_t i = 0; i < MR; ++i) ai[i] = Edge ? std::min(i, rows - 1) : i;
  typename S::reg acc[MR][NV];
#pragma GCC unroll 32
  for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) acc[i][j] = S::zero();
  for (std::size_t k = 0; k < K; ++k, a += lda, b += ldb)
    tile_step<S, MR, NV, Edge>(acc, b, n, [&](std::size_t i) { return a[Edge ? ai[i] : i]; });
  tile_store<S, MR, NV, Accumulate, Edge>(acc, c, ldc, rows, n);
}

template <class T, std::size_t MR, std::size_t NV, bool Accumulate>
void tiled_gemm_tn_shape(std::size_t M, std::size_t N, std::size_t K, const T* A, std::size_t lda, const T* B,
                         std::size_t ldb, T* C, std::size_t ldc, bool parallel) {
  using S = typename lanes_for<T>::type;
  constexpr std::size_t NR = NV * S::width;
  for_each_tile<MR, NR>(M, N, parallel, [&](std::size_t i0, std::size_t j0, std::size_t rows, std::size_t cols) {
    if (cols == NR && rows == MR)
      micro_tile_tn<S, MR, NV, Accumulate, false>(K, A + i0, lda, B + j0, ldb, C + i0 * ldc + j0, ldc, rows, cols);
    else
      micro_tile_tn<S, MR, NV, Accumulate, true>(K, A + i0, lda, B + j0, ldb, C + i0 * ldc + j0, ldc, rows, cols);
  });
}

/// C [M, N] = A^T B, or C += A^T B when `accumulate`, for A [K, lda] and B [K, ldb] row-major
/// (micro_tile_tn); C row-major with leading dimension ldc. The tile by the width N as
/// tiled_gemm's: 24 accumulators with AVX-512 where N is a multiple of 64 or 32.
template <class T, bool Accumulate>
void tiled_gemm_tn(std::size_t M, std::size_t N, std::size_t K, const T* A, std::size_t lda, const T* B,
                   std::size_t ldb, T* C, std::size_t ldc, bool parallel) {
  using S = typename lanes_for<T>::type;
  if (M == 0 || N == 0) return;
  if constexpr (S::width == 16) {
    if (N % (4 * S::width) == 0) return tiled_gemm_tn_shape<T, 6, 4, Accumulate>(M, N, K, A, lda, B, ldb, C, ldc, parallel);
    if (N % (2 * S::width) == 0)
      return tiled_gemm_tn_shape<T, 12, 2, Accumulate>(M, N, K, A, lda, B, ldb, C, ldc, parallel);
  }
  tiled_gemm_tn_shape<T, S::mr, S::nv, Accumulate>(M, N, K, A, lda, B, ldb, C, ldc, parallel);
}

/// The 3 x 3 stride-1 convolution with padding 1 on dense output positions l = i * width + j:
/// C [M, N] = A [M, K] B [K, N] (+ bias[i]), K in (c, u, v) order (v = k mod 3), B's row k at
/// B + boff[k] being the image shifted by u - 1 rows and v - 1 columns (rows padded with zeros
/// above and below only). Lanes whose input column j + v - 1 falls outside [0, width) would read
/// a neighbouring row; they are loaded as zero (the horizontal zero padding), so no padding
/// columns are computed. m[v][j]: lanes of vector j of the strip valid for tap v (and < cols).
/// `addend` (C's shape and ldc, may be C itself) is added with the bias when given.
template <class S, std::size_t MR, std::size_t NV, bool Edge, class T>
inline void micro_tile_taps3(std::size_t kc, const T* const* a, const T* b, const std::ptrdiff_t* boff, T* c,
                             std::size_t ldc, std::size_t rows, std::size_t cols, const T* bias,
                             const typename S::lane_mask (*m)[NV], const T* addend) {
  constexpr std::size_t W = S::width;
  std::size_t n[NV];
  for (std::size_t j = 0; j < NV; ++j) n[j] = cols > j * W ? std::min(W, cols - j * W) : 0;
  typename S::reg acc[MR][NV];
#pragma GCC unroll 16
  for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (std::size_t j = 0; j < NV; ++j) acc[i][j] = (bias && i < rows) ? S::set1(bias[i]) : S::zero();
  if (addend) {  // fixed trip counts, fully unrolled: acc must stay in registers
#pragma GCC unroll 16
    for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (std::size_t j = 0; j < NV; ++j) {
        const T* p = addend + i * ldc + j * W;
        if constexpr (Edge)
          acc[i][j] = S::add(acc[i][j], i < rows ? S::load(p, n[j]) : S::zero());
        else
          acc[i][j] = S::add(acc[i][j], i < rows ? S::load(p) : S::zero());
      }
  }
  // The image rows of (c, u) a few steps ahead into L1: consecutive channels are a plane apart,
  // a stride the hardware prefetchers miss (a hint only; no value depends on it).
  constexpr std::size_t ahead = 3 * 4;
  for (std::size_t k = 0; k < kc; k += 3) {
    if (k + ahead < kc) {
      const T* pk = b + boff[k + ahead];
#pragma GCC unroll 5
      for (std::size_t j = 0; j <= NV * W * sizeof(T) / 64; ++j) __builtin_prefetch(pk + j * (64 / sizeof(T)), 0, 3);
    }
#pragma GCC unroll 3
    for (std::size_t v = 0; v < 3; ++v) {
      typename S::reg bv[NV];
      const T* bk = b + boff[k + v];
#pragma GCC unroll 4
      for (std::size_t j = 0; j < NV; ++j) bv[j] = (v == 1 && !Edge) ? S::load(bk + j * W) : S::load(bk + j * W, m[v][j]);
#pragma GCC unroll 16
      for (std::size_t i = 0; i < MR; ++i) {
        const typename S::reg ai = S::set1(a[i][k + v]);
#pragma GCC unroll 4
        for (std::size_t j = 0; j < NV; ++j) acc[i][j] = S::fma(ai, bv[j], acc[i][j]);
      }
    }
  }
  tile_store<S, MR, NV, false, Edge>(acc, c, ldc, rows, n);
}

/// One tile of tiled_gemm_taps3: rows [i0, i0 + MR) of C, columns [j0, j0 + NV * width).
template <class S, std::size_t MR, std::size_t NV, bool Edge, class T>
inline void taps3_tile(std::size_t M, std::size_t N, std::size_t K, std::size_t width, const T* A,
                       const std::ptrdiff_t* aoff, const T* B, const std::ptrdiff_t* boff, T* C, std::size_t ldc,
                       const T* bias, const T* addend, std::size_t i0, std::size_t j0) {
  constexpr std::size_t W = S::width;
  const std::size_t cols = std::min(NV * W, N - j0), rows = std::min(MR, M - i0);
  typename S::lane_mask m[3][NV];
  std::size_t x = j0 % width;  // image column of the strip's lane 0 (one division per tile)
  for (std::size_t j = 0; j < NV; ++j) {
    unsigned bits[3] = {0, 0, 0};
    for (std::size_t e = 0; e < W; ++e, x = x + 1 == width ? 0 : x + 1) {
      if (j0 + j * W + e >= N) break;
      bits[0] |= (x >= 1 ? 1u : 0u) << e;
      bits[1] |= 1u << e;
      bits[2] |= (x + 1 < width ? 1u : 0u) << e;
    }
    for (std::size_t v = 0; v < 3; ++v) m[v][j] = S::mask_bits(bits[v]);
  }
  const T* a[MR];
  for (std::size_t i = 0; i < MR; ++i) a[i] = A + aoff[i0 + std::min(i, rows - 1)];
  micro_tile_taps3<S, MR, NV, Edge>(K, a, B + j0, boff, C + i0 * ldc + j0, ldc, rows, cols,
                                    bias ? bias + i0 : nullptr, m, addend ? addend + i0 * ldc + j0 : nullptr);
}

template <class T, std::size_t MR, std::size_t NV>
void tiled_gemm_taps3_shape(std::size_t M, std::size_t N, std::size_t K, std::size_t width, const T* A,
                            const std::ptrdiff_t* aoff, const T* B, const std::ptrdiff_t* boff, T* C, std::size_t ldc,
                            const T* bias, const T* addend, bool parallel) {
  using S = typename lanes_for<T>::type;
  constexpr std::size_t W = S::width, NR = NV * W;
  for_each_tile<MR, NR>(M, N, parallel, [&](std::size_t i0, std::size_t j0, std::size_t, std::size_t cols) {
    if (cols == NR)
      taps3_tile<S, MR, NV, false>(M, N, K, width, A, aoff, B, boff, C, ldc, bias, addend, i0, j0);
    else if (cols <= W)
      taps3_tile<S, MR, 1, true>(M, N, K, width, A, aoff, B, boff, C, ldc, bias, addend, i0, j0);
    else
      taps3_tile<S, MR, NV, true>(M, N, K, width, A, aoff, B, boff, C, ldc, bias, addend, i0, j0);
  });
}

/// C [M, N] = A B (+ bias[i] on row i) (+ addend, C's shape and ldc, C itself allowed) for the
/// dense 3 x 3 convolution of micro_tile_taps3: N = H * width output positions, K a multiple of 3;
/// tiles spread over threads as tiled_gemm. Strips of NR columns; a last strip of at most one
/// vector runs on one-vector tiles.
template <class T>
void tiled_gemm_taps3(std::size_t M, std::size_t N, std::size_t K, std::size_t width, const T* A,
                      const std::ptrdiff_t* aoff, const T* B, const std::ptrdiff_t* boff, T* C, std::size_t ldc,
                      const T* bias, bool parallel, const T* addend = nullptr) {
  using S = typename lanes_for<T>::type;
  if (M == 0 || N == 0) return;
  tiled_gemm_taps3_shape<T, S::taps3_mr, S::taps3_nv>(M, N, K, width, A, aoff, B, boff, C, ldc, bias, addend, parallel);
}

/// C [M, N] = A B (+ bias[i] on row i), or C += A B when `accumulate`; A's row i at A + aoff[i],
/// B's row k at B + boff[k], C row-major with leading dimension ldc. `parallel` spreads the
/// tiles over OpenMP threads (call it so outside parallel regions only). The depth K may be
/// segmented (gemm_depth): A's rows are then read as runs of `length` values, a_step apart
/// (an image's rows without its padding columns), in groups group_step apart (several images).
template <class T>
void tiled_gemm(bool accumulate, std::size_t M, std::size_t N, const gemm_depth& K, const T* A,
                const std::ptrdiff_t* aoff, const T* B, const std::ptrdiff_t* boff, T* C, std::size_t ldc,
                const T* bias, bool parallel) {
  if (M == 0 || N == 0) return;
  if (accumulate)
    tiled_gemm_impl<T, true>(M, N, K, A, aoff, B, boff, C, ldc, bias, parallel);
  else
    tiled_gemm_impl<T, false>(M, N, K, A, aoff, B, boff, C, ldc, bias, parallel);
}
template <class T>
void tiled_gemm(bool accumulate, std::size_t M, std::size_t N, std::size_t K, const T* A, const std::ptrdiff_t* aoff,
                const T* B, const std::ptrdiff_t* boff, T* C, std::size_t ldc, const T* bias, bool parallel) {
  tiled_gemm(accumulate, M, N, gemm_depth{1, K, K, 1, 0}, A, aoff, B, boff, C, ldc, bias, parallel);
}

}  // namespace softdiff::nn::detail
