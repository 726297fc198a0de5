#pragma once
// backend::cpu: the default execution space (the Backend contract of backend/backend.hpp).
// Host memory, OpenMP parallel_for, CBLAS GEMM (single-threaded inside OpenMP regions with the
// OpenMP OpenBLAS, multi-threaded outside), FFTW, the tuned separable primitive, and Philox noise. The noise primitives share
// one walk over Philox blocks (for_each_normal_tile), which generates a tile of blocks at a time
// on the stack, so that a sampler's element rule and its noise are one pass over memory.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include <omp.h>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/blas.hpp"
#include "softdiff/backend/cpu_separable.hpp"
#include "softdiff/backend/elementwise.hpp"
#include "softdiff/backend/fftw.hpp"
#include "softdiff/backend/normal_tile.hpp"
#include "softdiff/backend/philox.hpp"

namespace softdiff::backend {

struct cpu {
  static constexpr const char* name = "cpu";
  static constexpr bool is_host = true;

  /// Least elements per thread in element-wise passes: smaller ones run on one thread, where a
  /// parallel region would cost more than it saves (and far more on an oversubscribed machine).
  static constexpr std::size_t elementwise_grain = std::size_t{1} << 16;

  /// FFTW, on any thread (backend/fftw.hpp).
  template <class T>
  using fft = fftw::engine<T>;
  /// The separable primitive: bands, folded blocks and eigen-decompositions for Toeplitz axes,
  /// FFTW for DCT-diagonal ones (backend/cpu_separable.hpp).
  template <class T>
  using separable = cpu_separable<T>;

  template <class T>
  [[nodiscard]] static T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t{64}));
  }
  template <class T>
  static void deallocate(T* p, std::size_t) noexcept {
    ::operator delete[](p, std::align_val_t{64});
  }
  /// Copies n elements; both pointers are host pointers on this backend.
  template <class T>
  static void copy(const T* src, T* dst, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(T));
  }

  /// Every pointer the CPU code sees is a host pointer (its batches are host arrays): nothing to check.
  static void require_memory(const void* /*p*/, const char* /*where*/) noexcept {}

  /// f(i) for i in [0, n), statically partitioned over OpenMP threads.
  template <class F>
  static void parallel_for(std::size_t n, F&& f) {
    const auto count = static_cast<std::int64_t>(n);
#pragma omp parallel for schedule(static) if (count > 4096)
    for (std::int64_t i = 0; i < count; ++i) f(static_cast<std::size_t>(i));
  }

  /// f(r, c) for r in [0, rows), c in [0, cols): rows statically partitioned over OpenMP threads
  /// (when there are more than elementwise_grain elements), columns in order within a row, so
  /// that a row's loop is contiguous and a functor's per-row arithmetic is done once a row.
  template <class F>
  static void parallel_for_2d(std::size_t rows, std::size_t cols, F&& f) {
    const auto count = static_cast<std::int64_t>(rows);
#pragma omp parallel for schedule(static) if (rows * cols > elementwise_grain && count > 1)
    for (std::int64_t r = 0; r < count; ++r)
      for (std::size_t c = 0; c < cols; ++c) f(static_cast<std::size_t>(r), c);
  }

  /// f(begin, end) over contiguous chunks of at least `grain` indices, one or more per thread.
  template <class F>
  static void parallel_chunks(std::size_t n, std::size_t grain, F&& f) {
    if (n == 0) return;
    const std::size_t threads = static_cast<std::size_t>(omp_in_parallel() ? 1 : omp_get_max_threads());
    const std::size_t chunks = std::max<std::size_t>(1, std::min(threads, (n + grain - 1) / std::max<std::size_t>(grain, 1)));
    const auto count = static_cast<std::int64_t>(chunks);
#pragma omp parallel for schedule(static) if (count > 1)
    for (std::int64_t c = 0; c < count; ++c) {
      const std::size_t b = n * static_cast<std::size_t>(c) / chunks;
      const std::size_t e = n * static_cast<std::size_t>(c + 1) / chunks;
      f(b, e);
    }
  }

  /// Row-major C = alpha op(A) op(B) + beta C, with the same rounding for any thread count.
  /// OpenMP OpenBLAS threads a call made outside a parallel region by cutting C into one piece
  /// per thread, and its edge kernels round differently from its main kernels, so one call's
  /// result would change with the thread count. Here C's rows are cut into blocks fixed by m
  /// alone (gemm_block_rows), each one BLAS call that runs single-threaded (inside an active
  /// parallel region, or below OpenBLAS's threading cut-off of m n k <= 4 * 65536); the blocks
  /// run in parallel and the depth k is never split (tests/test_nn_threads.cpp).
  template <class T>
  static void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
                   int ldb, T beta, T* c, int ldc) {
    if (m <= 0 || n <= 0) return;
    const int rows = gemm_block_rows(m), blocks = (m + rows - 1) / rows;
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const bool spread = threads > 1 && static_cast<double>(m) * n * k > gemm_parallel_threshold;
    const auto block = [&](int blk) {
      const int r0 = blk * rows, r = std::min(rows, m - r0);
      const T* ab = trans_a ? a + r0 : a + static_cast<std::ptrdiff_t>(r0) * lda;
      detail::gemm_row_major(trans_a, trans_b, r, n, k, alpha, ab, lda, b, ldb, beta,
                             c + static_cast<std::ptrdiff_t>(r0) * ldc, ldc);
    };
    if (!spread) {  // no OpenMP construct at all: a serialised region still costs a team set-up
      for (int blk = 0; blk < blocks; ++blk) block(blk);
      return;
    }
    // at least two threads, so the region is active and OpenBLAS runs single-threaded in it
    const int team = std::max(2, std::min(threads, blocks));
#pragma omp parallel for schedule(static) num_threads(team)
    for (int blk = 0; blk < blocks; ++blk) block(blk);
  }

  /// Rows of C per gemm block: at least 64 (one call for the layers' usual shapes, so no loss of
  /// BLAS efficiency), a multiple of 16, at most 8 blocks.
  [[nodiscard]] static int gemm_block_rows(int m) {
    const int per = (m + 7) / 8;
    return std::max(64, (per + 15) / 16 * 16);
  }

  /// gemm products smaller than this (m n k) run on the calling thread, well under OpenBLAS's cut-off.
  static constexpr double gemm_parallel_threshold = 65536.0;

  /// `batch` independent GEMMs with constant strides between operands, spread over threads.
  template <class T>
  static void gemm_strided_batched(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
                                   std::ptrdiff_t stride_a, const T* b, int ldb, std::ptrdiff_t stride_b, T beta,
                                   T* c, int ldc, std::ptrdiff_t stride_c, int batch) {
#pragma omp parallel for schedule(static) if (batch > 1)
    for (int i = 0; i < batch; ++i)
      detail::gemm_row_major(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
                             c + i * stride_c, ldc);
  }

  /// out[i] = rule(in[0][i], ..., in[K-1][i]) for i < n; out may be one of the inputs.
  template <class T, class Rule, std::size_t K>
  static void map(T* out, const T* const (&in)[K], Rule rule, std::size_t n) {
    const auto ins = pointers(in);
    parallel_chunks(n, elementwise_grain, [=](std::size_t lo, std::size_t hi) {
#pragma omp simd
      for (std::size_t i = lo; i < hi; ++i) out[i] = apply(rule, ins, i, std::make_index_sequence<K>{});
    });
  }

  /// out[i] = rule(in[0][i], ..., in[K-1][i], eta_i) for i < n, eta_i the standard normal at flat
  /// index offset + i of (seed, stream); out may be one of the inputs.
  template <class T, class Rule, std::size_t K>
  static void noisy_map(T* out, const T* const (&in)[K], Rule rule, std::size_t n, std::uint64_t seed,
                        std::uint64_t stream, std::uint64_t offset) {
    const auto ins = pointers(in);
    for_each_normal_tile<T>(seed, stream, offset, n, [=](std::size_t lo, std::size_t hi, const T* eta) {
#pragma omp simd
      for (std::size_t i = lo; i < hi; ++i) out[i] = apply(rule, ins, i, eta[i - lo], std::make_index_sequence<K>{});
    });
  }

  /// out[i] = standard normal at flat index (offset + i) of `stream` under `seed`.
  /// The value at each index is independent of n, offset partitioning and thread count.
  template <class T>
  static void fill_normal(std::uint64_t seed, std::uint64_t stream, T* out, std::size_t n, std::uint64_t offset = 0) {
    for_each_normal_tile<T>(seed, stream, offset, n, [=](std::size_t lo, std::size_t hi, const T* eta) {
      std::copy(eta, eta + (hi - lo), out + lo);
    });
  }

  /// The one walk over Philox blocks: f(lo, hi, eta) over consecutive ranges covering [0, n),
  /// eta[j] the standard normal at flat index offset + lo + j. Tiles of blocks run in parallel;
  /// each number is a pure function of its index, so nothing depends on the thread count or on
  /// how a batch is cut into offset ranges.
  template <class T, class F>
  static void for_each_normal_tile(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::size_t n,
                                   F&& f) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "noise is float or double");
    if (n == 0) return;
    constexpr std::uint64_t per_block = kernels::normals_per_block<T>;
    constexpr std::size_t tile = detail::normal_tile;  // blocks generated per vectorised pass
    const std::uint64_t first = kernels::philox_blocks<T>::covering(offset, n).first;
    parallel_chunks(kernels::philox_blocks<T>::covering(offset, n).count, elementwise_grain / (4 * per_block),
                    [&](std::size_t b0, std::size_t b1) {
                      alignas(64) T buf[tile * per_block];
                      for (std::size_t b = b0; b < b1; b += tile) {
                        const std::size_t nb = std::min(tile, b1 - b);
                        if constexpr (std::is_same_v<T, float>) {
                          detail::normal4_tile(first + b, stream, seed, buf);
                        } else {
                          for (std::size_t j = 0; j < nb; ++j) normal2(first + b + j, stream, seed, buf + 2 * j);
                        }
                        // the part of this tile's flat indices [g0, g1) inside [offset, offset + n)
                        const std::uint64_t g0 = (first + b) * per_block, g1 = g0 + nb * per_block;
                        const std::uint64_t lo = std::max(g0, offset), hi = std::min(g1, offset + n);
                        f(static_cast<std::size_t>(lo - offset), static_cast<std::size_t>(hi - offset),
                          static_cast<const T*>(buf) + (lo - g0));
                      }
                    });
  }

private:
  template <class T, std::size_t K>
  struct pointer_pack {
    const T* p[K];
  };
  template <class T, std::size_t K>
  static pointer_pack<T, K> pointers(const T* const (&in)[K]) {
    pointer_pack<T, K> r{};
    for (std::size_t a = 0; a < K; ++a) r.p[a] = in[a];
    return r;
  }
  template <class Rule, class T, std::size_t K, std::size_t... A>
  static T apply(const Rule& rule, const pointer_pack<T, K>& in, std::size_t i, std::index_sequence<A...>) {
    return rule(in.p[A][i]...);
  }
  template <class Rule, class T, std::size_t K, std::size_t... A>
  static T apply(const Rule& rule, const pointer_pack<T, K>& in, std::size_t i, T eta, std::index_sequence<A...>) {
    return rule(in.p[A][i]..., eta);
  }
};

static_assert(Backend<cpu>);

}  // namespace softdiff::backend
