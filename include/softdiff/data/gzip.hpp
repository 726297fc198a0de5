#pragma once
// A byte reader over zlib's gzFile: it reads gzip-compressed files and, through
// zlib's transparent mode, plain files alike, so every dataset reader accepts
// both `foo.gz` and `foo`. Short reads and zlib errors become softdiff::error
// naming the file, so a truncated download or a corrupt archive is reported
// rather than read as zeros.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <zlib.h>

#include "softdiff/data/bytes.hpp"
#include "softdiff/error.hpp"

namespace softdiff::data::detail {

/// Throws softdiff::error unless `path` names an existing regular file (or a link to one).
/// `reader` names the caller ("idx", "cifar10"); `hint` is appended to the missing-file message.
inline void require_regular_file(const std::filesystem::path& path, std::string_view reader,
                                 std::string_view hint = {}) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st))
    throw error(concat(reader, ": file '", path.string(), "' does not exist", hint.empty() ? "" : "; ", hint));
  require(std::filesystem::is_regular_file(st), reader, ": '", path.string(), "' is not a regular file");
}

class gz_reader {
public:
  gz_reader(const std::filesystem::path& path, std::string_view reader, std::string_view missing_hint = {})
      : path_(path.string()), reader_(reader) {
    require_regular_file(path, reader, missing_hint);
    errno = 0;
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr)
      throw error(concat(reader_, ": cannot open '", path_, "': ",
                         errno != 0 ? std::strerror(errno) : "zlib could not allocate its state"));
    gzbuffer(file_, 1u << 17);
    std::error_code ec;
    file_size_ = std::filesystem::file_size(path, ec);
    if (ec) file_size_ = 0;
    compressed_ = gzdirect(file_) == 0;  // after gzbuffer, as zlib asks
  }
  gz_reader(const gz_reader&) = delete;
  gz_reader& operator=(const gz_reader&) = delete;
  ~gz_reader() {
    if (file_ != nullptr) gzclose_r(file_);
  }

  [[nodiscard]] const std::string& path() const { return path_; }
  /// Reads up to n bytes and returns how many were read: fewer only at the end of the data.
  /// A corrupt or truncated gzip stream throws.
  std::size_t read_some(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t got = 0;
    while (got < n) {
      const auto want = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      const int r = gzread(file_, out + got, want);
      check_stream();
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
      if (static_cast<unsigned>(r) < want) break;
    }
    return got;
  }

  /// Reads exactly n bytes or throws "truncated <what>: expected n bytes, found k".
  void read_exact(void* dst, std::size_t n, std::string_view what) {
    const std::size_t got = read_some(dst, n);
    require(got == n, reader_, ": '", path_, "' is truncated: ", what, " needs ", n, " bytes but only ", got,
            " remain");
  }

  /// The most bytes this file can yield: its size when plain, 1032 times its size when gzip
  /// (deflate's largest compression ratio). A header that declares more is refused before any
  /// allocation (docs/reliability.md).
  [[nodiscard]] std::size_t max_bytes() const {
    constexpr std::size_t deflate_max_ratio = 1032;
    if (!compressed_) return static_cast<std::size_t>(file_size_);
    return file_size_ > std::numeric_limits<std::size_t>::max() / deflate_max_ratio
               ? std::numeric_limits<std::size_t>::max()
               : static_cast<std::size_t>(file_size_) * deflate_max_ratio;
  }
  [[nodiscard]] bool compressed() const { return compressed_; }

  /// Appends up to n bytes to `out`, growing it with the data actually read (chunks of 64 KiB,
  /// then as large as what is already held), so that memory stays within twice the bytes the
  /// file yields, whatever n a header claims. Returns the count.
  std::size_t append_up_to(std::vector<std::uint8_t>& out, std::size_t n) {
    std::size_t total = 0;
    while (total < n) {
      const std::size_t want = std::min(n - total, std::max<std::size_t>(std::size_t{1} << 16, out.size()));
      const std::size_t old = out.size();
      out.resize(old + want);
      const std::size_t got = read_some(out.data() + old, want);
      out.resize(old + got);
      total += got;
      if (got < want) break;
    }
    return total;
  }

  /// True when no byte is left; reading to the end also makes zlib verify the gzip CRC.
  [[nodiscard]] bool at_end() {
    unsigned char probe = 0;
    return read_some(&probe, 1) == 0;
  }

private:
  void check_stream() {
    int code = Z_OK;
    const char* raw = gzerror(file_, &code);
    if (code == Z_OK) return;
    // zlib prefixes its message with the path, which this message already names.
    std::string_view msg(raw);
    if (msg.starts_with(path_ + ": ")) msg.remove_prefix(path_.size() + 2);
    if (code == Z_BUF_ERROR)
      throw error(concat(reader_, ": '", path_, "' is a truncated gzip stream (", msg, ")"));
    if (code == Z_ERRNO)
      throw error(concat(reader_, ": cannot read '", path_, "': ", std::strerror(errno)));
    throw error(concat(reader_, ": '", path_, "' is not valid gzip data (zlib: ", msg, ")"));
  }

  gzFile file_ = nullptr;
  std::uintmax_t file_size_ = 0;
  bool compressed_ = false;
  std::string path_;
  std::string reader_;
};

}  // namespace softdiff::data::detail
