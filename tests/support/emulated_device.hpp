#pragma once
// An emulated device backend for the tests: backend::cpu's primitives under another name, so
// that its batches are backend::device_batch (as on a GPU) and its separable primitive is the
// device one, dense axis matrices through GEMMs (backend/dense_separable.hpp), not the CPU's
// tuned engine. What runs here is the algorithm backend::cuda runs, on the host.
#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/dense_separable.hpp"

namespace softdiff::testing {
struct emulated_device : backend::cpu {
  static constexpr const char* name = "emulated_device";
  template <class T>
  using separable = backend::dense_separable<emulated_device, T>;
};
static_assert(Backend<emulated_device>);
static_assert(backend::SeparableEngine<emulated_device::separable<float>, float>);
}  // namespace softdiff::testing
