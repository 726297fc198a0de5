// PNG images through libpng (softdiff/data/png.hpp).
#include "fuzz_support.hpp"
#include "softdiff/data/png.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".png");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] { (void)data::read_png<float>(path); });
  return 0;
}
