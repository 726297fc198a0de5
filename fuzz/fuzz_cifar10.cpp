// CIFAR-10 binary batches (softdiff/data/cifar10.hpp).
#include "fuzz_support.hpp"
#include "softdiff/data/cifar10.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".bin");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] { (void)data::read_cifar10<float>(path); });
  fuzz::refusal_allowed([&] { (void)data::read_cifar10<float>(path, 1); });
  return 0;
}
