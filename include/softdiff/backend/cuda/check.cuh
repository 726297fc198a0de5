#pragma once
// Every CUDA runtime, cuBLAS and cuFFT call of softdiff goes through SOFTDIFF_CUDA_CHECK, and
// every kernel launch is followed by SOFTDIFF_CUDA_CHECK_LAUNCH: a failure becomes a
// softdiff::error whose message names the file, the line, the call as written and the
// library's own description of the error (cudaGetErrorName / cudaGetErrorString,
// cublasGetStatusName / cublasGetStatusString, the cufftResult name).
#if !defined(__CUDACC__)
#error "softdiff/backend/cuda/*.cuh are compiled by nvcc only (CUDA translation units, .cu)"
#endif
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cufft.h>

#include <string>
#include <utility>

#include "softdiff/error.hpp"

namespace softdiff::backend::detail {

[[nodiscard]] inline const char* cufft_result_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED (cuFFT failed to allocate GPU or CPU memory)";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE (a bad pointer or parameter)";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED (the transform failed to run on the GPU)";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED (the cuFFT library failed to initialise)";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    case CUFFT_MISSING_DEPENDENCY: return "CUFFT_MISSING_DEPENDENCY";
    default: return "unknown cufftResult";
  }
}

/// The message of a failed call: where, what was called, and why it failed.
template <class... Why>
[[nodiscard]] std::string cuda_failure(const char* file, int line, const char* call, Why&&... why) {
  return softdiff::detail::concat("CUDA call failed at ", file, ":", line, ": ", call, ": ", std::forward<Why>(why)...);
}

inline void cuda_check(cudaError_t e, const char* file, int line, const char* call) {
  if (e != cudaSuccess) throw error(cuda_failure(file, line, call, cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"));
}
inline void cuda_check(cublasStatus_t s, const char* file, int line, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw error(cuda_failure(file, line, call, cublasGetStatusName(s), " (", cublasGetStatusString(s), ")"));
}
inline void cuda_check(cufftResult r, const char* file, int line, const char* call) {
  if (r != CUFFT_SUCCESS) throw error(cuda_failure(file, line, call, cufft_result_name(r)));
}

}  // namespace softdiff::backend::detail

/// Runs a CUDA runtime, cuBLAS or cuFFT call and throws softdiff::error if it fails.
#define SOFTDIFF_CUDA_CHECK(call) ::softdiff::backend::detail::cuda_check((call), __FILE__, __LINE__, #call)

/// After a kernel launch: throws softdiff::error naming `what` if the launch failed
/// (bad configuration, no device, an earlier asynchronous error).
#define SOFTDIFF_CUDA_CHECK_LAUNCH(what) \
  ::softdiff::backend::detail::cuda_check(cudaGetLastError(), __FILE__, __LINE__, "kernel launch: " what)
