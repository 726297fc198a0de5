// Tabulated schedule files, the JSON that `softdiff schedule` writes and `train --schedule` reads
// (softdiff/schedule/tabulated.hpp): parsed, then evaluated across [0, 1].
#include "fuzz_support.hpp"
#include "softdiff/schedule/tabulated.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  const auto path = fuzz::input_file(".json");
  fuzz::write_file(path, data, size);
  fuzz::refusal_allowed([&] {
    const auto table = schedule::tabulated::load_json(path);
    for (int k = 0; k <= 16; ++k) {
      const double t = k / 16.0;
      (void)table.level(t);
      (void)table.sigma(t);
    }
  });
  return 0;
}
