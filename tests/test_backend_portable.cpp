// What is written once over the backend primitives, run on the host: the operators of
// op/on_backend.hpp and the samplers with the backend model (sampler/backend_model.hpp) on the
// emulated device backend (tests/support/emulated_device.hpp: backend::cpu's primitives, the
// device's dense separable primitive), compared with the CPU operators and samplers.
// tests/cuda/test_cuda_backend.cu runs the same cases (tests/support/backend_cases.hpp) with
// backend::cuda where a GPU is present. Last, the operators on backend::cpu itself: the CPU
// classes run the same algorithm (op/detail/algorithms.hpp), so they agree bit for bit.
#include "support/emulated_device.hpp"

#define SOFTDIFF_TEST_BACKEND softdiff::testing::emulated_device
#define SOFTDIFF_TEST_TAG "[emulated]"
// The element functors and backend::cpu::fill_normal may be contracted to FMA differently by
// the compiler (-march=native, GNU mode): allow a few roundings.
#define SOFTDIFF_TEST_NOISE_ULP 8
#include "support/backend_cases.hpp"
// SoftDiffusion's primary template (soft_diffusion_on_backend.hpp, the code of every backend but
// the CPU) on the same emulated device: corrupt, the loss and its gradient, denoise, score and the
// five samplers against SoftDiffusion on backend::cpu (tests/cuda/test_cuda_backend.cu runs these
// cases on backend::cuda). One translation unit with the cases above: it builds once.
#include "support/soft_diffusion_cases.hpp"

static_assert(std::is_same_v<softdiff::backend::batch_t<softdiff::testing::emulated_device, float>,
                             softdiff::backend::device_batch<softdiff::testing::emulated_device, float>>);

namespace {

/// backend_operator<backend::cpu, Op> against Op's own apply: the same algorithm on the same
/// primitives, so every element is equal, out of place and in place, apply and adjoint.
template <class Op>
void check_cpu_is_the_class(const Op& host, double level, const softdiff::shape4& s) {
  using namespace softdiff;
  using T = typename Op::scalar_type;
  const batch<T> x = testing::random_batch<T>(s, 5);
  auto on_cpu = op::make_backend_operator<backend::cpu>(host);
  for (const bool adjoint : {false, true}) {
    batch<T> expected, got(s), inplace = x;
    if (adjoint) {
      host.apply_adjoint(level, x, expected);
      on_cpu.apply_adjoint(level, x.data(), got.data(), s);
      on_cpu.apply_adjoint(level, inplace.data(), inplace.data(), s);
    } else {
      host.apply(level, x, expected);
      on_cpu.apply(level, x.data(), got.data(), s);
      on_cpu.apply(level, inplace.data(), inplace.data(), s);
    }
    INFO(host.name() << " level " << level << " shape " << to_string(s) << (adjoint ? " adjoint" : " apply"));
    std::size_t differ = 0, differ_inplace = 0, changed = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      differ += got.data()[i] != expected.data()[i];
      differ_inplace += inplace.data()[i] != expected.data()[i];
      changed += expected.data()[i] != x.data()[i];
    }
    CHECK(differ == 0);
    CHECK(differ_inplace == 0);
    if (host.name() != "identity") CHECK(changed > 0);  // the operator did something
  }
}

}  // namespace

TEMPLATE_TEST_CASE("on backend::cpu, backend_operator is the CPU operator bit for bit", "[backend][op][cpu]", float,
                   double) {
  using namespace softdiff;
  using T = TestType;
  const shape4 square{2, 3, 16, 16}, odd{1, 2, 13, 21}, many{70, 1, 9, 7};
  check_cpu_is_the_class(op::identity<T>{}, 0.5, odd);
  check_cpu_is_the_class(op::scale<T>{}, 0.3, odd);
  check_cpu_is_the_class(op::mask<T>{}, 0.6, odd);
  for (double sd : {0.5, 3.0, 23.0}) {
    check_cpu_is_the_class(op::gaussian_blur<T>(80), sd, square);
    check_cpu_is_the_class(op::gaussian_blur<T>(4), sd, odd);
    check_cpu_is_the_class(op::dct_blur<T>{}, sd, odd);
    check_cpu_is_the_class(op::fft_conv<T>(5), sd, square);
    check_cpu_is_the_class(op::fft_conv<T>(9), sd, many);  // more planes than the CPU class's 64 per pass
  }
}
