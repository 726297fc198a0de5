#pragma once
// Files are written to a temporary name beside their destination and renamed into
// place only when complete, so a crash or a full disk never leaves a half-written
// file under the final name (and never destroys the previous version of it).
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <signal.h>
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

/// Removes the temporaries in `dir` left by processes that no longer exist (a run killed while
/// writing): files "<name>.tmp.<pid>.<n>" whose <pid> is not a live process, for one destination
/// `name` or, when `name` is empty, for every destination. A live writer's temporary is kept, so
/// concurrent runs on one directory do not disturb each other.
inline void remove_stale_temporaries(const std::filesystem::path& dir, const std::string& name = "") {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(dir.empty() ? fs::path(".") : dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    const auto tag = file.rfind(".tmp.");
    if (tag == std::string::npos || tag == 0 || (!name.empty() && file.compare(0, tag, name) != 0) ||
        (!name.empty() && tag != name.size()))
      continue;
    const std::string rest = file.substr(tag + 5);  // "<pid>.<n>"
    const auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot + 1 == rest.size() ||
        rest.find_first_not_of("0123456789.") != std::string::npos || rest.find('.', dot + 1) != std::string::npos)
      continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

/// Owns a temporary file for `destination`: write to `temporary()`, then commit() renames it
/// into place. If commit() is never reached (an exception), the destructor removes the temporary.
class output_file {
public:
  explicit output_file(std::filesystem::path destination)
      : destination_(std::move(destination)), temporary_(temporary_path_for(destination_)) {
    remove_stale_temporaries(destination_.parent_path(), destination_.filename().string());
  }
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

namespace softdiff::data {

/// Writes `text` to `file` through a temporary file.
inline void write_text_file(const std::filesystem::path& file, const std::string& text) {
  detail::output_file out(file);
  {
    std::ofstream os(out.temporary(), std::ios::binary | std::ios::trunc);
    os << text;
    os.flush();
    softdiff::detail::require(static_cast<bool>(os), file.string(), ": cannot write");
  }
  out.commit();
}

}  // namespace softdiff::data
