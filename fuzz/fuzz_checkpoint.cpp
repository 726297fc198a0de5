// The checkpoint loader on top of safetensors: the softdiff tool's load_model
// (examples/softdiff/model_setup.hpp), which reads the metadata's model description (operator,
// schedule, final distribution, RefUNet configuration), builds the network and loads the weights.
#include "fuzz_support.hpp"
#include "model_setup.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".safetensors");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] { (void)cli::load_model(path); });
  return 0;
}
