#pragma once
// Row-major GEMM on the GPU through cuBLAS (column-major). A row-major m x n matrix with leading
// dimension ld is the column-major n x m matrix with the same ld, its transpose; so the row-major
// product C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T, and every call below passes
// the operands swapped (B first), with m and n swapped. One cuBLAS handle per host thread, in
// the default (non-TF32) math mode so that float GEMMs round like float.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <type_traits>

#include "softdiff/backend/cuda/check.cuh"

namespace softdiff::backend::detail {

class cublas_handle {
public:
  cublas_handle() {
    SOFTDIFF_CUDA_CHECK(cublasCreate(&h_));
    SOFTDIFF_CUDA_CHECK(cublasSetMathMode(h_, CUBLAS_DEFAULT_MATH));
  }
  cublas_handle(const cublas_handle&) = delete;
  cublas_handle& operator=(const cublas_handle&) = delete;
  ~cublas_handle() {
    if (h_) (void)cublasDestroy(h_);
  }
  [[nodiscard]] cublasHandle_t get() const noexcept { return h_; }

private:
  cublasHandle_t h_ = nullptr;
};

/// The calling thread's handle (created on first use), bound to `stream`.
inline cublasHandle_t cublas_for(cudaStream_t stream) {
  thread_local cublas_handle handle;
  SOFTDIFF_CUDA_CHECK(cublasSetStream(handle.get(), stream));
  return handle.get();
}

/// Row-major C_i = alpha op(A_i) op(B_i) + beta C_i for i < batch, operands at constant strides.
template <class T>
void cuda_gemm_strided_batched(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
                               long long stride_a, const T* b, int ldb, long long stride_b, T beta, T* c, int ldc,
                               long long stride_c, int batch, cudaStream_t stream) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "GEMM is for float or double");
  if (m == 0 || n == 0 || batch == 0) return;
  cublasHandle_t h = cublas_for(stream);
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T
  if constexpr (std::is_same_v<T, float>)
    SOFTDIFF_CUDA_CHECK(cublasSgemmStridedBatched(h, op_b, op_a, n, m, k, &alpha, b, ldb, stride_b, a, lda, stride_a,
                                                  &beta, c, ldc, stride_c, batch));
  else
    SOFTDIFF_CUDA_CHECK(cublasDgemmStridedBatched(h, op_b, op_a, n, m, k, &alpha, b, ldb, stride_b, a, lda, stride_a,
                                                  &beta, c, ldc, stride_c, batch));
}

/// Row-major C = alpha op(A) op(B) + beta C.
template <class T>
void cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb,
               T beta, T* c, int ldc, cudaStream_t stream) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "GEMM is for float or double");
  if (m == 0 || n == 0) return;
  cublasHandle_t h = cublas_for(stream);
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (std::is_same_v<T, float>)
    SOFTDIFF_CUDA_CHECK(cublasSgemm(h, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
  else
    SOFTDIFF_CUDA_CHECK(cublasDgemm(h, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

}  // namespace softdiff::backend::detail
