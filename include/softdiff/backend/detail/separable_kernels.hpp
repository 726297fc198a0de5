#pragma once
// Kernels for applying a separable linear operator to one image plane held in a
// row-major workspace (the CPU backend's separable Toeplitz primitive, backend/cpu_separable.hpp): a register-blocked small GEMM
// that skips structurally zero ranges of its coefficient operand ("windows"), a
// direct symmetric convolution along rows, and the even/odd folds of rows and columns.
//
// Vectors are GCC/Clang vector extensions of 64 bytes (16 floats or 8 doubles): the
// compiler lowers them to AVX-512, AVX2 or SSE for whatever target the user builds
// for. The accumulations are written `acc += b * s` so that the compiler contracts
// them to FMA: GNU mode (-std=gnu++20, CMake's default) contracts; with strict
// -std=c++20 GCC does not, and these loops run at about half speed (same results
// to rounding).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace softdiff::backend::detail {

#if (defined(__GNUC__) || defined(__clang__)) && !defined(SOFTDIFF_NO_VECTOR_EXTENSIONS)
template <class T>
struct simd {
  static constexpr int width = static_cast<int>(64 / sizeof(T));
  typedef T type __attribute__((vector_size(64)));
  typedef T unaligned __attribute__((vector_size(64), aligned(alignof(T)), may_alias));
  static type load(const T* p) { return *reinterpret_cast<const unaligned*>(p); }
  static void store(T* p, type v) { *reinterpret_cast<unaligned*>(p) = v; }
  static type zero() { return type{}; }
  /// Keeps v in a register: stops GCC from re-reading a reused operand from memory in each FMA,
  /// which would make the GEMM tile bound by loads rather than by multiply-adds.
  static void pin(type& v) {
#if defined(__AVX512F__) && !defined(__clang__)
    __asm__("" : "+v"(v));
#else
    (void)v;
#endif
  }
  static type reverse(type v) { return reverse(v, std::make_index_sequence<width>{}); }
  template <std::size_t... I>
  static type reverse(type v, std::index_sequence<I...>) {
#if (defined(__clang__) || __GNUC__ >= 12) && !defined(__CUDACC__)  // nvcc rejects __builtin_shufflevector
    return __builtin_shufflevector(v, v, (width - 1 - static_cast<int>(I))...);
#else
    using lane = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
    typedef lane mask __attribute__((vector_size(64)));
    return __builtin_shuffle(v, mask{static_cast<lane>(width - 1 - static_cast<int>(I))...});
#endif
  }
};
#else
// Portable fallback: the same interface over a plain array (compilers without vector extensions,
// or SOFTDIFF_NO_VECTOR_EXTENSIONS defined).
template <class T>
struct simd {
  static constexpr int width = static_cast<int>(64 / sizeof(T));
  struct type {
    T v[width];
    type& operator+=(const type& o) {
      for (int i = 0; i < width; ++i) v[i] += o.v[i];
      return *this;
    }
    friend type operator*(type a, T s) {
      for (int i = 0; i < width; ++i) a.v[i] *= s;
      return a;
    }
    friend type operator+(type a, const type& b) { return a += b; }
    friend type operator-(type a, const type& b) {
      for (int i = 0; i < width; ++i) a.v[i] -= b.v[i];
      return a;
    }
  };
  static type load(const T* p) {
    type v;
    std::memcpy(v.v, p, sizeof v.v);
    return v;
  }
  static void store(T* p, const type& v) { std::memcpy(p, v.v, sizeof v.v); }
  static type zero() { return type{}; }
  static void pin(type&) {}
  static type reverse(type v) {
    std::reverse(v.v, v.v + width);
    return v;
  }
};
#endif

/// Number of whole vectors that hold n scalars.
template <class T>
constexpr int vectors_for(int n) {
  return (n + simd<T>::width - 1) / simd<T>::width;
}
/// n rounded up to whole vectors (row strides and block offsets in the workspace).
template <class T>
constexpr int padded(int n) {
  return vectors_for<T>(n) * simd<T>::width;
}

/// Most rows per register tile for a tile NV vectors wide: 24 accumulators (12 for NV = 1, whose
/// tiles are bound by the broadcasts of A), leaving registers for B's vectors.
constexpr int tile_rows(int nv) { return nv >= 4 ? 6 : nv == 3 ? 8 : 12; }

/// C[MR x NV*L] = sum_{k in [kb, ke)} A[i, k] B[k, :] with A[i, k] = a[a0 + i lda + k]; the row
/// stride may be negative (a Toeplitz band is stored as its diagonal taps with lda = -1).
template <class T, int MR, int NV>
inline void gemm_tile(int kb, int ke, const T* a, std::ptrdiff_t a0, std::ptrdiff_t lda, const T* b,
                      std::ptrdiff_t ldb, T* c, std::ptrdiff_t ldc) {
  using S = simd<T>;
  using V = typename S::type;
  constexpr int L = S::width;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
  for (int k = kb; k < ke; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) {
      bv[v] = S::load(b + k * ldb + v * L);
      S::pin(bv[v]);
    }
    for (int i = 0; i < MR; ++i) {
      const T s = a[a0 + i * lda + k];
      for (int v = 0; v < NV; ++v) acc[i][v] += bv[v] * s;
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) S::store(c + i * ldc + v * L, acc[i][v]);
}

template <class T, int NV, int MR = tile_rows(NV)>
inline void gemm_tile_rows(int rows, int kb, int ke, const T* a, std::ptrdiff_t a0, std::ptrdiff_t lda, const T* b,
                           std::ptrdiff_t ldb, T* c, std::ptrdiff_t ldc) {
  if constexpr (MR >= 1) {
    if (rows == MR)
      gemm_tile<T, MR, NV>(kb, ke, a, a0, lda, b, ldb, c, ldc);
    else
      gemm_tile_rows<T, NV, MR - 1>(rows, kb, ke, a, a0, lda, b, ldb, c, ldc);
  }
}

/// Walks the register tiles of an m x (nvec vectors) product: column chunks of up to 4 vectors,
/// each split into ceil(m / MR) row tiles of balanced height (no 1-row tail tiles), MR =
/// min(tile_rows(nv), mr_cap). Calls f(i0, rows, v0, nv, kb, ke) with the k-range of the tile:
/// the intersection of the unions of its rows' and vectors' windows.
template <class RowWindow, class VectorWindow, class F>
void for_each_tile(int m, int nvec, int mr_cap, RowWindow row_window, VectorWindow vector_window, F&& f) {
  for (int v0 = 0; v0 < nvec; v0 += 4) {
    const int nv = std::min(4, nvec - v0);
    const int mr = std::max(1, std::min(tile_rows(nv), mr_cap));
    int vlo = 1 << 30, vhi = 0;
    for (int v = v0; v < v0 + nv; ++v) {
      const auto [lo, hi] = vector_window(v);
      vlo = std::min(vlo, lo);
      vhi = std::max(vhi, hi);
    }
    const int tiles = (m + mr - 1) / mr;
    for (int t = 0; t < tiles; ++t) {
      const int i0 = m * t / tiles, i1 = m * (t + 1) / tiles;
      int rlo = 1 << 30, rhi = 0;
      for (int i = i0; i < i1; ++i) {
        const auto [lo, hi] = row_window(i);
        rlo = std::min(rlo, lo);
        rhi = std::max(rhi, hi);
      }
      const int kb = std::max(vlo, rlo);
      f(i0, i1 - i0, v0, nv, kb, std::max(kb, std::min(vhi, rhi)));
    }
  }
}

/// C[m x n] = A[m x K] B[K x n], all row-major with leading dimensions. n is rounded up to
/// whole vectors: B's and C's rows must hold padded<T>(n) scalars, and C's padding columns
/// are overwritten. `row_window(i)` and `vector_window(v)` return the k-range [lo, hi) outside
/// which A's row i, respectively B's columns of output vector v, are zero.
template <class T, class RowWindow, class VectorWindow>
void gemm_windowed(int m, int n, const T* a, std::ptrdiff_t lda, const T* b, std::ptrdiff_t ldb, T* c,
                   std::ptrdiff_t ldc, RowWindow row_window, VectorWindow vector_window, int mr_cap = 1 << 30) {
  constexpr int L = simd<T>::width;
  for_each_tile(m, vectors_for<T>(n), mr_cap, row_window, vector_window,
                [&](int i0, int rows, int v0, int nv, int kb, int ke) {
                  const std::ptrdiff_t a0 = i0 * lda;
                  T* ci = c + i0 * ldc + v0 * L;
                  const T* bi = b + v0 * L;
                  switch (nv) {
                    case 1: gemm_tile_rows<T, 1>(rows, kb, ke, a, a0, lda, bi, ldb, ci, ldc); break;
                    case 2: gemm_tile_rows<T, 2>(rows, kb, ke, a, a0, lda, bi, ldb, ci, ldc); break;
                    case 3: gemm_tile_rows<T, 3>(rows, kb, ke, a, a0, lda, bi, ldb, ci, ldc); break;
                    default: gemm_tile_rows<T, 4>(rows, kb, ke, a, a0, lda, bi, ldb, ci, ldc); break;
                  }
                });
}

/// The cost of gemm_windowed for the same arguments, in vector multiply-adds (the plan's cost
/// model): per k-step a tile issues rows * nv multiply-adds and rows + nv loads (two of either
/// per cycle), and needs 8 independent accumulators to hide the multiply-add latency.
template <class RowWindow, class VectorWindow>
double gemm_windowed_work(int m, int nvec, RowWindow row_window, VectorWindow vector_window, int mr_cap = 1 << 30) {
  double work = 0;
  for_each_tile(m, nvec, mr_cap, row_window, vector_window, [&](int, int rows, int, int nv, int kb, int ke) {
    work += static_cast<double>(ke - kb) * std::max({rows * nv, rows + nv, 8});
  });
  return work;
}

template <class T, int NV>
inline void convolve_pair(const T* __restrict p0, const T* __restrict p1, const T* __restrict taps, int r,
                          T* __restrict o0, T* __restrict o1) {
  using S = simd<T>;
  using V = typename S::type;
  constexpr int L = S::width;
  V acc0[NV], acc1[NV];
  for (int v = 0; v < NV; ++v) {
    acc0[v] = S::zero();
    acc1[v] = S::zero();
  }
  for (int t = 0; t <= 2 * r; ++t) {
    const T g = taps[t];
    for (int v = 0; v < NV; ++v) {
      acc0[v] += S::load(p0 + t + v * L) * g;
      acc1[v] += S::load(p1 + t + v * L) * g;
    }
  }
  for (int v = 0; v < NV; ++v) {
    S::store(o0 + v * L, acc0[v]);
    S::store(o1 + v * L, acc1[v]);
  }
}

/// out row = sum_{k=-r}^{r} taps[k + r] in row[j + k] for `rows` rows, two at a time (eight
/// independent accumulators hide the FMA latency). Each row of `in` must read as zero in columns
/// [-r, 0) and [n, padded(n) + r): the caller keeps zero margins around the rows, so the taps read
/// the rows in place (copying them to a zero-padded line first would stall on store forwarding).
/// Writes padded<T>(n) columns per output row.
template <class T>
void convolve_rows(int rows, int n, const T* in, std::ptrdiff_t ldi, T* out, std::ptrdiff_t ldo, const T* taps,
                   int r) {
  constexpr int L = simd<T>::width;
  const int nvec = vectors_for<T>(n);
  alignas(64) T sink[4 * L];  // the second output of an unpaired last row
  for (int i = 0; i < rows; i += 2) {
    const bool pair = i + 1 < rows;
    const int i1 = pair ? i + 1 : i;
    for (int v0 = 0; v0 < nvec; v0 += 4) {
      const T* p0 = in + i * ldi + v0 * L - r;
      const T* p1 = in + i1 * ldi + v0 * L - r;
      T* o0 = out + i * ldo + v0 * L;
      T* o1 = pair ? out + i1 * ldo + v0 * L : sink;
      switch (std::min(4, nvec - v0)) {
        case 1: convolve_pair<T, 1>(p0, p1, taps, r, o0, o1); break;
        case 2: convolve_pair<T, 2>(p0, p1, taps, r, o0, o1); break;
        case 3: convolve_pair<T, 3>(p0, p1, taps, r, o0, o1); break;
        default: convolve_pair<T, 4>(p0, p1, taps, r, o0, o1); break;
      }
    }
  }
}

/// Even/odd fold of a length-n axis: e_j = x_j + x_{n-1-j}, o_j = x_j - x_{n-1-j} (j < n/2),
/// and for odd n the middle e_{n/2} = x_{n/2}. Unfold inverts it up to the factor that the
/// folded operator's coefficients carry: y_j = e_j + o_j, y_{n-1-j} = e_j - o_j, y_mid = e_mid.
///
/// Writes one row of n values, given as `load(j)` (a vector at columns [j, j + L)) and `at(j)`
/// (one value), to dst: as is, or column-folded (e at [0, me), o at [odd, odd + mo)); zeros fill
/// the rest of the ld columns.
template <class T, class Load, class At>
inline void put_row(Load load, At at, int n, bool fold, int odd, int ld, T* dst) {
  using S = simd<T>;
  constexpr int L = S::width;
  const int mo = n / 2, me = n - mo;
  if (fold ? me % L != 0 || mo % L != 0 : n % L != 0)  // padding to zero: whole vectors, then the data
    for (int j = 0; j < ld; j += L) S::store(dst + j, S::zero());
  int j = 0;
  if (!fold) {
    for (; j + L <= n; j += L) S::store(dst + j, load(j));
    for (; j < n; ++j) dst[j] = at(j);
    return;
  }
  for (; j + L <= mo; j += L) {
    const auto a = load(j), b = S::reverse(load(n - j - L));
    S::store(dst + j, a + b);
    S::store(dst + odd + j, a - b);
  }
  for (; j < mo; ++j) {
    const T a = at(j), b = at(n - 1 - j);
    dst[j] = a + b;
    dst[odd + j] = a - b;
  }
  if (me > mo) dst[mo] = at(mo);
}

/// The inverse of put_row: writes the n values of a row given in the (possibly column-folded)
/// layout by `load(j)` / `at(j)` to dst.
template <class T, class Load, class At>
inline void take_row(Load load, At at, int n, bool fold, int odd, T* dst) {
  using S = simd<T>;
  constexpr int L = S::width;
  int j = 0;
  if (!fold) {
    for (; j + L <= n; j += L) S::store(dst + j, load(j));
    for (; j < n; ++j) dst[j] = at(j);
    return;
  }
  const int mo = n / 2, me = n - mo;
  for (; j + L <= mo; j += L) {
    const auto e = load(j), o = load(odd + j);
    S::store(dst + j, e + o);
    S::store(dst + n - j - L, S::reverse(e - o));
  }
  for (; j < mo; ++j) {
    const T e = at(j), o = at(odd + j);
    dst[j] = e + o;
    dst[n - 1 - j] = e - o;
  }
  if (me > mo) dst[mo] = at(mo);
}

/// put_row for a plane folded along both axes, one row pair (a, b) = (x_i, x_{h-1-i}) at a time:
/// writes the even row a + b and the odd row a - b, each column-folded, reading each input
/// vector once; adds (v - v) of every input value to bad (NaN exactly when one is not finite).
template <class T>
inline void put_row_pair(const T* a, const T* b, int n, int odd, int ld, T* even_row, T* odd_row,
                         typename simd<T>::type& bad, T& bad_tail) {
  using S = simd<T>;
  constexpr int L = S::width;
  const int mo = n / 2, me = n - mo;
  if (me % L != 0 || mo % L != 0)
    for (int j = 0; j < ld; j += L) {
      S::store(even_row + j, S::zero());
      S::store(odd_row + j, S::zero());
    }
  int j = 0;
  for (; j + L <= mo; j += L) {
    const auto ua = S::load(a + j), ub = S::load(b + j);
    const auto ra = S::reverse(S::load(a + n - j - L)), rb = S::reverse(S::load(b + n - j - L));
    bad += ((ua - ua) + (ub - ub)) + ((ra - ra) + (rb - rb));
    const auto s = ua + ub, d = ua - ub, sr = ra + rb, dr = ra - rb;
    S::store(even_row + j, s + sr);
    S::store(even_row + odd + j, s - sr);
    S::store(odd_row + j, d + dr);
    S::store(odd_row + odd + j, d - dr);
  }
  for (; j < mo; ++j) {
    const T ua = a[j], ub = b[j], ra = a[n - 1 - j], rb = b[n - 1 - j];
    bad_tail += ((ua - ua) + (ub - ub)) + ((ra - ra) + (rb - rb));
    const T s = ua + ub, d = ua - ub, sr = ra + rb, dr = ra - rb;
    even_row[j] = s + sr;
    even_row[odd + j] = s - sr;
    odd_row[j] = d + dr;
    odd_row[odd + j] = d - dr;
  }
  if (me > mo) {
    bad_tail += (a[mo] - a[mo]) + (b[mo] - b[mo]);
    even_row[mo] = a[mo] + b[mo];
    odd_row[mo] = a[mo] - b[mo];
  }
}

/// take_row for a plane folded along both axes: from the even row e and odd row o of a row pair
/// (each column-folded) writes y = unfold(e + sign o), sign = +1 for row i and -1 for row h-1-i
/// (multiplying by +-1 is exact).
template <class T>
inline void take_row_sum(const T* e, const T* o, T sign, int n, int odd, T* y) {
  using S = simd<T>;
  constexpr int L = S::width;
  const int mo = n / 2, me = n - mo;
  int j = 0;
  for (; j + L <= mo; j += L) {
    const auto se = S::load(e + j) + S::load(o + j) * sign;
    const auto so = S::load(e + odd + j) + S::load(o + odd + j) * sign;
    S::store(y + j, se + so);
    S::store(y + n - j - L, S::reverse(se - so));
  }
  for (; j < mo; ++j) {
    const T se = e[j] + o[j] * sign, so = e[odd + j] + o[odd + j] * sign;
    y[j] = se + so;
    y[n - 1 - j] = se - so;
  }
  if (me > mo) y[mo] = e[mo] + o[mo] * sign;
}

/// Asks for the next plane's input to be brought into L2 while the current plane computes from L1
/// (a read prefetch: a write prefetch of the output would pull its lines into L1 and evict the
/// workspace; the output is better left to the store buffer).
template <class T>
inline void prefetch_plane(const T* x, std::size_t n) {
#if defined(__GNUC__) || defined(__clang__)
  for (std::size_t b = 0; b < n * sizeof(T); b += 64) __builtin_prefetch(reinterpret_cast<const char*>(x) + b, 0, 2);
#else
  (void)x, (void)n;
#endif
}

}  // namespace softdiff::backend::detail
