#pragma once
// SOFTDIFF_HOST_DEVICE marks functions that run on the host and, when compiled
// by nvcc, on the device too. Element-wise functors are written once with it.
#if defined(__CUDACC__)
#define SOFTDIFF_HOST_DEVICE __host__ __device__
#else
#define SOFTDIFF_HOST_DEVICE
#endif
