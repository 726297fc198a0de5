// SoftDiffusion's primary template (soft_diffusion_on_backend.hpp, the code of every backend but
// the CPU) run on the host: an emulated device backend, backend::cpu's primitives under another
// name, whose batches are therefore backend::device_batch, as on a GPU. The cases
// (tests/support/soft_diffusion_cases.hpp) compare it with SoftDiffusion on backend::cpu;
// tests/cuda/test_cuda_soft_diffusion.cu runs them on backend::cuda where a GPU is present.
#include "softdiff/backend/cpu.hpp"

namespace softdiff::testing {
struct emulated_device : backend::cpu {
  static constexpr const char* name = "emulated_device";
};
static_assert(Backend<emulated_device>);
}  // namespace softdiff::testing

#define SOFTDIFF_TEST_BACKEND softdiff::testing::emulated_device
#define SOFTDIFF_TEST_TAG "[emulated]"
#include "support/soft_diffusion_cases.hpp"

static_assert(std::is_same_v<softdiff::backend::batch_t<softdiff::testing::emulated_device, float>,
                             softdiff::backend::device_batch<softdiff::testing::emulated_device, float>>);
