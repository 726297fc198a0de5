#pragma once
// What every fuzz target shares. The readers take paths, so each input is written to a file of
// this process first. The rule each target checks: a reader either succeeds or throws
// softdiff::error (the tool's option parser: cli::usage_error too). Any other exception
// escapes LLVMFuzzerTestOneInput and aborts, which libFuzzer reports as a crash, as it does a
// sanitizer report, a leak, or an allocation above -malloc_limit_mb (scripts/fuzz.sh sets it):
// a file may not make a reader allocate much beyond its own size (docs/reliability.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include <unistd.h>

#include "softdiff/error.hpp"

namespace softdiff::fuzz {

/// A file of this process for inputs ending in `suffix`, on /dev/shm when it exists (no disk writes).
[[nodiscard]] inline std::filesystem::path input_file(std::string_view suffix) {
  std::error_code ec;
  const std::filesystem::path dir =
      std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
  return dir / ("softdiff-fuzz-" + std::to_string(::getpid()) + std::string(suffix));
}

/// Writes `n` bytes to `path`; a failure here is the harness's, not the reader's.
inline void write_file(const std::filesystem::path& path, const std::uint8_t* data, std::size_t n) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("fuzz harness: cannot write " + path.string());
  const std::size_t put = n == 0 ? 0 : std::fwrite(data, 1, n, f);
  const bool ok = std::fclose(f) == 0 && put == n;
  if (!ok) throw std::runtime_error("fuzz harness: short write to " + path.string());
}

/// Runs `read`; a softdiff::error is a refusal, which is allowed; anything else propagates.
template <class F>
void refusal_allowed(F&& read) {
  try {
    read();
  } catch (const softdiff::error&) {
  }
}

}  // namespace softdiff::fuzz
