// safetensors files (softdiff/data/safetensors.hpp): the header, the metadata, and every tensor
// converted to float.
#include "fuzz_support.hpp"
#include "softdiff/data/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".safetensors");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] {
    const data::safetensors_file f = data::read_safetensors(path);
    for (const auto& [name, t] : f.tensors) (void)t.values<float>();
  });
  return 0;
}
