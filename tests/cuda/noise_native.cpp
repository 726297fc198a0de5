// backend::cpu::fill_normal as softdiff's own host programs compile it (softdiff_program_flags:
// -march=native, GNU mode, so the compiler may contract the Philox polynomials to FMA), for
// tests/cuda/test_cuda_host.cu to compare with the same function compiled by nvcc's host pass.
// The namespace is renamed so that the linker cannot merge this copy of the inline functions
// with the other translation unit's (same names, different flags).
#include <cstddef>
#include <cstdint>

#define softdiff softdiff_native_copy
#include "softdiff/backend/cpu.hpp"
#undef softdiff

void softdiff_test_fill_normal_native(std::uint64_t seed, std::uint64_t stream, float* out, std::size_t n) {
  softdiff_native_copy::backend::cpu::fill_normal<float>(seed, stream, out, n, 0);
}
