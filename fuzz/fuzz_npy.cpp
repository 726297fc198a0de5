// NumPy .npy arrays (softdiff/data/npy.hpp), read as float and as double.
#include "fuzz_support.hpp"
#include "softdiff/data/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".npy");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] { (void)data::read_npy<float>(path); });
  fuzz::refusal_allowed([&] { (void)data::read_npy<double>(path); });
  return 0;
}
