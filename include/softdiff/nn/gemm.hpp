#pragma once
// BLAS GEMM for the layers, with the same rounding for any OpenMP thread count:
//   C [m, n] = alpha op(A) op(B) + beta C   (row-major, as backend::cpu::gemm).
// OpenMP OpenBLAS threads a call made outside a parallel region by cutting C into one piece per
// thread, and its edge kernels round differently from its main kernels, so the result of one
// call changes with the thread count. Here C's rows are cut into blocks fixed by m alone, and
// every block is one BLAS call that runs single-threaded (inside an active parallel region, or
// too small for OpenBLAS to thread: its default cut-off is m n k <= 4 * 65536); the blocks run
// in parallel. The depth k is never split.
#include <algorithm>
#include <cstddef>

#include <omp.h>

#include "softdiff/backend/cpu.hpp"

namespace softdiff::nn::detail {

/// Rows of C per block: at least 64 (one call for the layers' usual shapes, so no loss of
/// BLAS efficiency), a multiple of 16, at most 8 blocks.
[[nodiscard]] inline int gemm_block_rows(int m) {
  const int per = (m + 7) / 8;
  return std::max(64, (per + 15) / 16 * 16);
}

/// Products smaller than this (m n k) run on the calling thread, well under OpenBLAS's cut-off.
inline constexpr double gemm_parallel_threshold = 65536.0;

template <class T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta,
          T* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  const int rows = gemm_block_rows(m), blocks = (m + rows - 1) / rows;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool spread = threads > 1 && static_cast<double>(m) * n * k > gemm_parallel_threshold;
  const auto block = [&](int blk) {
    const int r0 = blk * rows, r = std::min(rows, m - r0);
    const T* ab = trans_a ? a + r0 : a + static_cast<std::ptrdiff_t>(r0) * lda;
    backend::cpu::gemm<T>(trans_a, trans_b, r, n, k, alpha, ab, lda, b, ldb, beta,
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

}  // namespace softdiff::nn::detail
