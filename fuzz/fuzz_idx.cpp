// IDX images and labels (softdiff/data/idx.hpp) from the input as a plain file. gzip input is
// detected by its magic bytes here too; fuzz_idx_gzip.cpp compresses the input instead, so that
// its mutations explore the IDX structure behind the gzip layer.
#include "fuzz_support.hpp"
#include "softdiff/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".idx");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] { (void)data::read_idx_images<float>(path); });
  fuzz::refusal_allowed([&] { (void)data::read_idx_images<float>(path, 2); });
  fuzz::refusal_allowed([&] { (void)data::read_idx_labels(path); });
  return 0;
}
