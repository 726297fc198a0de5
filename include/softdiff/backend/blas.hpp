#pragma once
// Typed GEMM on the host through CBLAS. The CBLAS declarations come from
// xtensor-blas (its bundled cxxblas header), so that including softdiff next to
// xtensor-blas never sees two conflicting cblas.h.
#include <cstddef>
#include <type_traits>

#include <xtensor-blas/xblas.hpp>

namespace softdiff::backend::detail {

/// Row-major C[m x n] = alpha op(A)[m x k] op(B)[k x n] + beta C.
template <class T>
void gemm_row_major(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
                    const T* b, int ldb, T beta, T* c, int ldc) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "GEMM is for float or double");
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace softdiff::backend::detail
