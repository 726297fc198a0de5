// Configure-time probe (tests/cuda/CMakeLists.txt): exit status 0 when a CUDA device is usable.
#include <cstdio>

#include <cuda_runtime.h>

int main() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    std::printf("no CUDA device: %s\n", cudaGetErrorString(e));
    return 1;
  }
  std::printf("%d CUDA device(s)\n", n);
  return n > 0 ? 0 : 1;
}
