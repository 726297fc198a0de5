// What is written once over the backend primitives, run on backend::cpu: the operators of
// op/on_backend.hpp (the GPU's algorithms, executed here on the host) and the samplers with the
// backend model (sampler/backend_model.hpp), compared with the CPU operators and samplers. tests/cuda/test_cuda_backend.cu runs the
// same cases (tests/support/backend_cases.hpp) with backend::cuda where a GPU is present.
#include "softdiff/backend/cpu.hpp"

#define SOFTDIFF_TEST_BACKEND softdiff::backend::cpu
#define SOFTDIFF_TEST_TAG "[cpu]"
// The element functors and backend::cpu::fill_normal may be contracted to FMA differently by
// the compiler (-march=native, GNU mode): allow a few roundings.
#define SOFTDIFF_TEST_NOISE_ULP 8
#include "support/backend_cases.hpp"
