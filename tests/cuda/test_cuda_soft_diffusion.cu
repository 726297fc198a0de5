// SoftDiffusion<Op, Sched, Net, backend::cuda> against SoftDiffusion on the CPU: corrupt, the loss
// and its gradient, denoise, score and sampling with all five samplers on device batches
// (tests/support/soft_diffusion_cases.hpp; the same cases run on the host's emulated device
// backend in tests/test_soft_diffusion_on_backend.cpp). Part of test_cuda_backend.
#include "softdiff/cuda_ops.cuh"

#define SOFTDIFF_TEST_BACKEND softdiff::backend::cuda
#define SOFTDIFF_TEST_TAG "[cuda]"
#include "support/soft_diffusion_cases.hpp"
