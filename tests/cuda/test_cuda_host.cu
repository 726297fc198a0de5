// The CUDA backend's host side, which runs with or without a GPU: CUDA, cuBLAS and cuFFT
// failures become softdiff::error with file, line, call and reason; without a usable GPU the
// backend reports why instead of crashing; and the rounding distance between the float noise
// of this translation unit (no FMA contraction, the arithmetic the GPU does with -fmad=false)
// and the CPU noise of softdiff's -march=native host programs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/cuda.cuh"
#include "softdiff/cuda_ops.cuh"

void softdiff_test_fill_normal_native(std::uint64_t seed, std::uint64_t stream, float* out, std::size_t n);

using Catch::Contains;
using softdiff::backend::cuda;
using softdiff::backend::detail::cuda_check;

namespace {

std::string message_of(auto&& call) {
  try {
    call();
  } catch (const softdiff::error& e) {
    return e.what();
  }
  return "no exception";
}

}  // namespace

TEST_CASE("CUDA runtime, cuBLAS and cuFFT failures name file, line, call and reason", "[cuda][host]") {
  const std::string runtime =
      message_of([] { cuda_check(cudaErrorMemoryAllocation, "kernel.cu", 42, "cudaMalloc(&p, 64)"); });
  CHECK_THAT(runtime, Contains("kernel.cu:42") && Contains("cudaMalloc(&p, 64)") &&
                          Contains("cudaErrorMemoryAllocation") &&
                          Contains(cudaGetErrorString(cudaErrorMemoryAllocation)));
  const std::string blas = message_of([] { cuda_check(CUBLAS_STATUS_INVALID_VALUE, "blas.cuh", 7, "cublasSgemm(...)"); });
  CHECK_THAT(blas, Contains("blas.cuh:7") && Contains("cublasSgemm(...)") && Contains("CUBLAS_STATUS_INVALID_VALUE") &&
                       Contains(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)));
  const std::string fft = message_of([] { cuda_check(CUFFT_INVALID_SIZE, "fft.cuh", 9, "cufftPlanMany(...)"); });
  CHECK_THAT(fft, Contains("fft.cuh:9") && Contains("cufftPlanMany(...)") && Contains("CUFFT_INVALID_SIZE"));
  // the macro records this file, this line and the call as written
  const int line = __LINE__ + 1;
  const std::string macro = message_of([] { SOFTDIFF_CUDA_CHECK(cudaErrorInvalidValue); });
  CHECK_THAT(macro, Contains("test_cuda_host.cu:" + std::to_string(line)) && Contains("cudaErrorInvalidValue"));
  CHECK_NOTHROW(cuda_check(cudaSuccess, "f", 1, "ok"));
  CHECK_NOTHROW(cuda_check(CUBLAS_STATUS_SUCCESS, "f", 1, "ok"));
  CHECK_NOTHROW(cuda_check(CUFFT_SUCCESS, "f", 1, "ok"));
}

TEST_CASE("backend::cuda without a usable GPU throws the reason; with one it allocates", "[cuda][host]") {
  int raw = 0;
  const cudaError_t probe = cudaGetDeviceCount(&raw);
  const int devices = softdiff::backend::cuda_device_count();
  if (devices == 0) {
    CHECK(probe != cudaSuccess);
    const std::string alloc = message_of([] { (void)cuda::allocate<float>(16); });
    CHECK_THAT(alloc, Contains("cudaMalloc") && Contains("cuda.cuh") && Contains(cudaGetErrorString(probe)));
    const std::string launch = message_of([] { cuda::fill_normal<float>(1, 2, nullptr, 16); });
    CHECK_THAT(launch, Contains("kernel launch") && Contains("parallel_for"));
  } else {
    CHECK(raw == devices);
    float* p = cuda::allocate<float>(16);
    CHECK(p != nullptr);
    CHECK(cuda::is_device_memory(p));
    cuda::deallocate(p, 16);
  }
  CHECK(cuda::allocate<float>(0) == nullptr);  // no call at all for n = 0
  CHECK_FALSE(cuda::is_device_memory(&raw));
}

TEST_CASE("float noise: no-FMA arithmetic (the GPU's) against the -march=native CPU build", "[cuda][host][noise]") {
  const std::size_t n = std::size_t{1} << 20;
  std::vector<float> exact(n), native(n);
  softdiff::backend::cpu::fill_normal<float>(5, 6, exact.data(), n, 0);
  softdiff_test_fill_normal_native(5, 6, native.data(), n);
  double worst = 0, worst_abs = 0;
  std::size_t differing = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = std::abs(double(exact[i]) - double(native[i]));
    differing += d != 0;
    worst_abs = std::max(worst_abs, d);
    worst = std::max(worst, d / (std::numeric_limits<float>::epsilon() * std::max(1.0, std::abs(double(exact[i])))));
  }
  INFO(differing << " of " << n << " deviates differ; worst " << worst << " float roundings (" << worst_abs << " absolute)");
  CHECK(worst <= 8);
  CHECK(worst_abs <= 1e-5);
}

TEST_CASE("host memory handed to a device function is refused by name, with or without a GPU", "[cuda][host]") {
  std::vector<float> host(16, 1.0f);
  CHECK_THAT(message_of([&] { cuda::require_memory(host.data(), "my_kernel"); }),
             Contains("my_kernel: expected device memory (backend::cuda), got host memory"));
  CHECK_NOTHROW(cuda::require_memory(nullptr, "my_kernel"));  // an empty array
  CHECK_THAT(message_of([&] { softdiff::cuda_ops::scale_apply(2.0f, host.data(), host.data(), host.size(), cudaStreamPerThread); }),
             Contains("cuda_ops::scale_apply: expected device memory"));
  auto blur = softdiff::cuda_ops::make_device_operator(softdiff::op::gaussian_blur<float>(3));
  CHECK_THAT(message_of([&] { blur.apply(1.0, host.data(), host.data(), softdiff::shape4{1, 1, 4, 4}); }),
             Contains("gaussian_blur::apply: expected device memory"));
  CHECK(host[0] == 1.0f);  // refused before anything ran
}
