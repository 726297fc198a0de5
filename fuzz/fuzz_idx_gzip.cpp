// IDX images and labels (softdiff/data/idx.hpp) through the gzip layer: the input is compressed
// here, so every mutation reaches the IDX parser as decompressed bytes.
#include <zlib.h>

#include "fuzz_support.hpp"
#include "softdiff/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".idx.gz");
  gzFile gz = gzopen(path.c_str(), "wb1");
  if (gz == nullptr) throw std::runtime_error("fuzz harness: cannot write " + path.string());
  const int put = size == 0 ? 0 : gzwrite(gz, data, static_cast<unsigned>(size));
  if (gzclose(gz) != Z_OK || put != static_cast<int>(size)) throw std::runtime_error("fuzz harness: gzip write failed");
  fuzz::refusal_allowed([&] { (void)data::read_idx_images<float>(path); });
  fuzz::refusal_allowed([&] { (void)data::read_idx_labels(path, 3); });
  return 0;
}
