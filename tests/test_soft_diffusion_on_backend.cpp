// SoftDiffusion's primary template (soft_diffusion_on_backend.hpp, the code of every backend but
// the CPU) run on the host: an emulated device backend (tests/support/emulated_device.hpp), whose
// batches are backend::device_batch and whose separable primitive is dense GEMMs, as on a GPU. The cases
// (tests/support/soft_diffusion_cases.hpp) compare it with SoftDiffusion on backend::cpu;
// tests/cuda/test_cuda_soft_diffusion.cu runs them on backend::cuda where a GPU is present.
#include "support/emulated_device.hpp"

#define SOFTDIFF_TEST_BACKEND softdiff::testing::emulated_device
#define SOFTDIFF_TEST_TAG "[emulated]"
#include "support/soft_diffusion_cases.hpp"

static_assert(std::is_same_v<softdiff::backend::batch_t<softdiff::testing::emulated_device, float>,
                             softdiff::backend::device_batch<softdiff::testing::emulated_device, float>>);
