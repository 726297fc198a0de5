#pragma once
// The kernel behind backend::cuda::parallel_for: f(i) for every i in [0, n), one index per
// thread in a grid-stride loop. f is an element functor with a __device__ (SOFTDIFF_HOST_DEVICE)
// call operator, or an extended lambda ([=] __device__ (std::size_t i) { ... }, nvcc
// --extended-lambda), passed by value.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "softdiff/backend/cuda/check.cuh"
#include "softdiff/backend/cuda/stream.cuh"

namespace softdiff::backend::detail {

template <class F>
__global__ void cuda_parallel_for_kernel(std::size_t n, F f) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

inline constexpr unsigned cuda_block_size = 256;
inline constexpr std::size_t cuda_max_grid = std::size_t{1} << 20;  // beyond it, threads loop

/// Launches f over [0, n) on `stream` and checks the launch.
template <class F>
void cuda_launch_for(std::size_t n, const F& f, cudaStream_t stream) {
  if (n == 0) return;
  const std::size_t blocks = std::min(cuda_max_grid, (n + cuda_block_size - 1) / cuda_block_size);
  cuda_parallel_for_kernel<<<static_cast<unsigned>(blocks), cuda_block_size, 0, stream>>>(n, f);
  SOFTDIFF_CUDA_CHECK_LAUNCH("softdiff::backend::cuda::parallel_for");
}

}  // namespace softdiff::backend::detail
