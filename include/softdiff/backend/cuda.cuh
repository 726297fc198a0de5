#pragma once
// backend::cuda: the GPU execution space, the same Backend trait as backend::cpu (backend/backend.hpp).
// Declared only when SOFTDIFF_ENABLE_CUDA is defined (CMake option SOFTDIFF_ENABLE_CUDA) and
// compiled only by nvcc (a .cu translation unit, --extended-lambda): its templates launch kernels.
//
//   allocate / deallocate   device memory (cudaMalloc / cudaFree)
//   copy                    any direction (cudaMemcpyDefault) on the current stream; waits for
//                           the stream when either side is host memory, so the host may read it
//   parallel_for            f(i) for i in [0, n) as a kernel; f has a __device__ call operator
//                           (an element functor of backend/elementwise.hpp or an extended lambda)
//   parallel_for_2d         f(r, c) over rows x cols, the same kernel over the flat index
//   gemm, gemm_strided_batched   row-major, through cuBLAS (backend/cuda/blas.cuh)
//   map, noisy_map          element rules as kernels (backend/elementwise.hpp), noise drawn in
//                           the kernel at each element's flat index
//   fill_normal             Philox noise, the numbers backend::cpu::fill_normal gives
//   fft<T>                  cufft_engine<T>, cuFFT (backend/cuda/fft.cuh)
//   separable<T>            dense_separable<cuda, T>: the axis matrices as two cuBLAS GEMMs
//
// Work is enqueued on the calling thread's current stream (cudaStreamPerThread unless a
// cuda_stream_scope names another; backend/cuda/stream.cuh) and is asynchronous except copies
// that touch host memory. Every CUDA call and launch is checked (backend/cuda/check.cuh).
//
// Noise: with nvcc's -fmad=false (the CMake option SOFTDIFF_CUDA_EXACT_NOISE, on by default) the
// float deviates are bit-identical to backend::cpu::fill_normal compiled without FMA
// contraction; a host build that contracts to FMA (GNU mode with -march=native on an FMA
// machine) differs from them by a few float roundings (tests/cuda/test_cuda_host.cu measures it).
// Double deviates use the device's log, sin and cos: a few double roundings from the host's.
#if !defined(__CUDACC__)
#error "softdiff/backend/cuda.cuh is compiled by nvcc only (a .cu translation unit)"
#endif
#if !defined(SOFTDIFF_ENABLE_CUDA)
#error "softdiff/backend/cuda.cuh needs SOFTDIFF_ENABLE_CUDA (configure softdiff with -DSOFTDIFF_ENABLE_CUDA=ON)"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "softdiff/backend/cuda/blas.cuh"
#include "softdiff/backend/cuda/check.cuh"
#include "softdiff/backend/cuda/fft.cuh"
#include "softdiff/backend/cuda/launch.cuh"
#include "softdiff/backend/cuda/stream.cuh"
#include "softdiff/backend/elementwise.hpp"
#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/dense_separable.hpp"

namespace softdiff::backend {

struct cuda {
  static constexpr const char* name = "cuda";
  static constexpr bool is_host = false;

  template <class T>
  using fft = cufft_engine<T>;
  /// The separable primitive as two cuBLAS GEMMs with dense axis matrices (backend/dense_separable.hpp).
  template <class T>
  using separable = dense_separable<cuda, T>;

  /// The calling thread's current stream.
  [[nodiscard]] static cudaStream_t stream() noexcept { return detail::cuda_thread_stream(); }
  /// Waits for the current stream.
  static void synchronize() { SOFTDIFF_CUDA_CHECK(cudaStreamSynchronize(stream())); }

  /// n elements of device memory (nullptr for n = 0).
  template <class T>
  [[nodiscard]] static T* allocate(std::size_t n) {
    if (n == 0) return nullptr;
    void* p = nullptr;
    SOFTDIFF_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
    return static_cast<T*>(p);
  }
  /// Frees device memory after the device has finished all work, on every stream: a buffer freed
  /// here may still be read or written by a kernel in flight (the thin API runs on streams of the
  /// caller's choosing). cudaFree "may perform implicit synchronization" (CUDA driver API,
  /// cuMemFree), which is not a promise, so the wait is explicit. Cannot report a failure; a
  /// sticky CUDA error shows at the next checked call.
  template <class T>
  static void deallocate(T* p, std::size_t) noexcept {
    if (!p) return;
    (void)cudaDeviceSynchronize();
    (void)cudaFree(p);
  }

  /// Copies n elements between any two of host and device memory, on the current stream.
  template <class T>
  static void copy(const T* src, T* dst, std::size_t n) {
    if (n == 0 || src == dst) return;
    const cudaStream_t s = stream();
    SOFTDIFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDefault, s));
    if (!is_device_memory(src) || !is_device_memory(dst)) SOFTDIFF_CUDA_CHECK(cudaStreamSynchronize(s));
  }

  /// f(i) for i in [0, n) on the device (asynchronous).
  template <class F>
  static void parallel_for(std::size_t n, F f) {
    detail::cuda_launch_for(n, f, stream());
  }

  /// f(r, c) over rows x cols as one flat kernel (kernels::index_2d_fn).
  template <class F>
  static void parallel_for_2d(std::size_t rows, std::size_t cols, F f) {
    if (rows > 0 && cols > 0) parallel_for(rows * cols, kernels::index_2d_fn<F>{f, cols});
  }

  /// Row-major C = alpha op(A) op(B) + beta C (cuBLAS), device pointers.
  template <class T>
  static void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb,
                   T beta, T* c, int ldc) {
    detail::cuda_gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream());
  }

  /// `batch` row-major GEMMs with constant strides between operands (a stride may be 0).
  template <class T>
  static void gemm_strided_batched(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
                                   std::ptrdiff_t stride_a, const T* b, int ldb, std::ptrdiff_t stride_b, T beta, T* c,
                                   int ldc, std::ptrdiff_t stride_c, int batch) {
    detail::cuda_gemm_strided_batched<T>(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                                         ldc, stride_c, batch, stream());
  }

  /// out[i] = rule(in[0][i], ..., in[K-1][i]) for i < n, as a kernel; out may be an input.
  template <class T, class Rule, std::size_t K>
  static void map(T* out, const T* const (&in)[K], Rule rule, std::size_t n) {
    kernels::map_fn<T, Rule, K> f{out, {}, rule};
    for (std::size_t a = 0; a < K; ++a) f.in[a] = in[a];
    if (n > 0) parallel_for(n, f);
  }
  /// out[i] = rule(in[0][i], ..., in[K-1][i], eta_i), eta_i the normal at flat index offset + i of
  /// (seed, noise_stream), as a kernel over Philox blocks; out may be an input.
  template <class T, class Rule, std::size_t K>
  static void noisy_map(T* out, const T* const (&in)[K], Rule rule, std::size_t n, std::uint64_t seed,
                        std::uint64_t noise_stream, std::uint64_t offset) {
    kernels::noisy_map_fn<T, Rule, K> f{out, {}, rule, n, offset, seed, noise_stream};
    for (std::size_t a = 0; a < K; ++a) f.in[a] = in[a];
    if (n > 0) parallel_for(f.blocks(), f);
  }
  /// out[i] = standard normal at flat index (offset + i) of `noise_stream` under `seed`, as
  /// backend::cpu::fill_normal; out is device memory.
  template <class T>
  static void fill_normal(std::uint64_t seed, std::uint64_t noise_stream, T* out, std::size_t n,
                          std::uint64_t offset = 0) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    const kernels::fill_normal_fn<T> f{out, n, offset, seed, noise_stream};
    parallel_for(f.blocks(), f);
  }

  /// Throws softdiff::error naming `where` unless the device can use p: memory from cudaMalloc,
  /// managed memory, or host memory registered or allocated with CUDA; plain host memory (malloc,
  /// new, a softdiff::batch) is refused. A null pointer (an empty array) passes.
  static void require_memory(const void* p, const char* where) {
    if (p == nullptr) return;
    cudaPointerAttributes a{};
    const cudaError_t e = cudaPointerGetAttributes(&a, p);
    if (e != cudaSuccess) (void)cudaGetLastError();
    if (e != cudaSuccess || a.type == cudaMemoryTypeUnregistered)
      throw error(::softdiff::detail::concat(where, ": expected device memory (backend::cuda), got host memory at ",
                                             p, "; copy it to the device first (cuda_ops::to_device)"));
  }

  /// True for memory that only the device can read (cudaMalloc); false for host memory,
  /// registered or pinned host memory and managed memory.
  [[nodiscard]] static bool is_device_memory(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();  // not a pointer CUDA knows: host memory
      return false;
    }
    return a.type == cudaMemoryTypeDevice;
  }
};

// nvcc checks the same concept as the host compiler (concepts.hpp avoids a lambda in it for nvcc).
static_assert(Backend<cuda>);

}  // namespace softdiff::backend
