#pragma once
// Files are written to a temporary name beside their destination and renamed into
// place only when complete, so a crash or a full disk never leaves a half-written
// file under the final name (and never destroys the previous version of it).
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

#include "softdiff/error.hpp"

namespace softdiff::data::detail {

/// A temporary path in the destination's directory (rename is then atomic on POSIX).
[[nodiscard]] inline std::filesystem::path temporary_path_for(const std::filesystem::path& destination) {
  static std::atomic<unsigned long> counter{0};
  std::filesystem::path tmp = destination;
  tmp += softdiff::detail::concat(".tmp.", static_cast<long>(::getpid()), ".", counter.fetch_add(1));
  return tmp;
}

/// Owns a temporary file for `destination`: write to `temporary()`, then commit() renames it
/// into place. If commit() is never reached (an exception), the destructor removes the temporary.
class output_file {
public:
  explicit output_file(std::filesystem::path destination)
      : destination_(std::move(destination)), temporary_(temporary_path_for(destination_)) {}
  output_file(const output_file&) = delete;
  output_file& operator=(const output_file&) = delete;
  ~output_file() {
    if (!committed_) {
      std::error_code ec;
      std::filesystem::remove(temporary_, ec);
    }
  }

  [[nodiscard]] const std::filesystem::path& temporary() const { return temporary_; }
  [[nodiscard]] const std::filesystem::path& destination() const { return destination_; }

  /// Renames the finished temporary onto the destination.
  void commit() {
    std::error_code ec;
    std::filesystem::rename(temporary_, destination_, ec);
    softdiff::detail::require(!ec, destination_.string(), ": cannot rename the finished temporary file ",
                              temporary_.string(), " into place: ", ec.message());
    committed_ = true;
  }

private:
  std::filesystem::path destination_;
  std::filesystem::path temporary_;
  bool committed_ = false;
};

}  // namespace softdiff::data::detail
