#pragma once
// IDX files (MNIST, Fashion-MNIST), gzip-compressed or plain.
//
// Layout (big-endian): a 4-byte magic 0x00 0x00 <type> <ndims>, then ndims u32
// dimensions, then the elements row-major. softdiff reads the two kinds those
// datasets ship: u8 images, magic 0x00000803, dims N x rows x cols, and u8 labels,
// magic 0x00000801, dims N. Pixels map to [-1, 1] by x / 127.5 - 1.
//
// Fashion-MNIST is packaged by Debian (`apt-get install dataset-fashion-mnist`)
// into /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/data/gzip.hpp"
#include "softdiff/data/labelled_batch.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

/// `limit` value meaning "read every record".
inline constexpr std::size_t no_limit = static_cast<std::size_t>(-1);

inline constexpr std::uint32_t idx_images_magic = 0x00000803;  // u8, 3 dims
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;  // u8, 1 dim

inline constexpr std::string_view fashion_mnist_install_hint =
    "Fashion-MNIST is packaged by Debian: `apt-get install dataset-fashion-mnist` installs it into "
    "/usr/share/datasets/fashion-mnist";

/// $SOFTDIFF_FASHION_MNIST_DIR when set, else Debian's /usr/share/datasets/fashion-mnist.
[[nodiscard]] inline std::filesystem::path default_fashion_mnist_dir() {
  if (const char* env = std::getenv("SOFTDIFF_FASHION_MNIST_DIR"); env != nullptr && *env != '\0') return env;
  return "/usr/share/datasets/fashion-mnist";
}

namespace detail {

inline std::string describe_idx_magic(std::uint32_t magic) {
  if (magic == idx_images_magic) return "IDX u8 images";
  if (magic == idx_labels_magic) return "IDX u8 labels";
  if ((magic >> 16) != 0) return "not an IDX file";
  return concat("IDX type 0x", std::hex, (magic >> 8) & 0xff, std::dec, " with ", magic & 0xff, " dims");
}

/// Reads the magic and dimensions, checking the magic is `expected`.
inline std::vector<std::size_t> read_idx_header(gz_reader& in, std::uint32_t expected) {
  std::array<unsigned char, 4> word{};
  in.read_exact(word.data(), 4, "the IDX magic number");
  const std::uint32_t magic = load_be32(word.data());
  if (magic != expected) {
    std::ostringstream os;
    os << "idx: '" << in.path() << "' has magic 0x" << std::hex << std::setw(8) << std::setfill('0') << magic
       << " (" << describe_idx_magic(magic) << "), expected 0x" << std::setw(8) << expected << " ("
       << describe_idx_magic(expected) << ")";
    throw error(os.str());
  }
  std::vector<std::size_t> dims(expected & 0xff);
  for (std::size_t d = 0; d < dims.size(); ++d) {
    in.read_exact(word.data(), 4, concat("the IDX header (dimension ", d, ")"));
    dims[d] = load_be32(word.data());
  }
  return dims;
}

/// Reads `count` u8 elements in bounded chunks; a short file throws naming both counts.
/// A count the file cannot hold (gz_reader::max_bytes) is refused before anything is allocated.
inline std::vector<std::uint8_t> read_idx_payload(gz_reader& in, std::size_t count, std::string_view what) {
  require(count <= in.max_bytes(), "idx: '", in.path(), "' declares ", what, " (", count,
          " bytes), more than a ", in.compressed() ? "gzip " : "", "file of its size can hold (at most ",
          in.max_bytes(), " bytes)");
  std::vector<std::uint8_t> bytes;
  bytes.reserve(count);
  const std::size_t got = in.append_up_to(bytes, count);
  require(got == count, "idx: '", in.path(), "' is truncated: ", what, " need ", count, " bytes but only ", got,
          " remain");
  return bytes;
}

inline void require_idx_end(gz_reader& in, std::size_t records, std::string_view what) {
  require(in.at_end(), "idx: '", in.path(), "' has bytes after the ", records, " ", what,
          " its header announces");
}

}  // namespace detail

/// Images from an IDX u8 image file (gzip or plain) as [N, 1, rows, cols] in [-1, 1]
/// (x / 127.5 - 1). `limit` caps N; with no limit, bytes after the last image are an error.
template <class T = float>
[[nodiscard]] batch<T> read_idx_images(const std::filesystem::path& path, std::size_t limit = no_limit) {
  detail::gz_reader in(path, "idx", fashion_mnist_install_hint);
  const auto dims = detail::read_idx_header(in, idx_images_magic);
  const std::size_t n_file = dims[0], rows = dims[1], cols = dims[2];
  softdiff::detail::require(rows > 0 && cols > 0, "idx: '", in.path(), "' has images of size ", rows, "x", cols);
  const std::size_t n = std::min(n_file, limit);
  detail::check_shape_indexable(std::array<std::size_t, 4>{n, 1, rows, cols}, detail::concat("idx: '", in.path(), "'"));
  const std::size_t plane = detail::checked_mul(rows, cols, "idx image");
  const std::size_t count = detail::checked_mul(n, plane, "idx image data");
  const auto bytes = detail::read_idx_payload(in, count, detail::concat(n, " images of ", rows, "x", cols));
  if (n == n_file) detail::require_idx_end(in, n_file, "images");

  batch<T> out(shape4{n, 1, rows, cols});
  const auto table = detail::unit_range_table<T>();
  const std::uint8_t* src = bytes.data();
  T* dst = out.data();
  backend::cpu::parallel_for(count, [&](std::size_t i) { dst[i] = table[src[i]]; });
  return out;
}

/// Labels from an IDX u8 label file (gzip or plain). `limit` caps the count.
[[nodiscard]] inline std::vector<std::uint8_t> read_idx_labels(const std::filesystem::path& path,
                                                               std::size_t limit = no_limit) {
  detail::gz_reader in(path, "idx", fashion_mnist_install_hint);
  const auto dims = detail::read_idx_header(in, idx_labels_magic);
  const std::size_t n = std::min(dims[0], limit);
  auto labels = detail::read_idx_payload(in, n, detail::concat(n, " labels"));
  if (n == dims[0]) detail::require_idx_end(in, n, "labels");
  return labels;
}

/// The file of a Fashion-MNIST split ("train" or "t10k"; "test" is accepted for "t10k"),
/// `kind` "images" or "labels": `<dir>/<split>-images-idx3-ubyte.gz`, or the same name without
/// `.gz` when only that exists. A missing file throws naming the path and how to install it.
[[nodiscard]] inline std::filesystem::path fashion_mnist_file(const std::filesystem::path& dir,
                                                              std::string_view split, std::string_view kind) {
  const std::string_view s = split == "test" ? std::string_view("t10k") : split;
  softdiff::detail::require(s == "train" || s == "t10k", "fashion-mnist: unknown split '", split,
                            "' (expected train, t10k or test)");
  softdiff::detail::require(kind == "images" || kind == "labels", "fashion-mnist: unknown kind '", kind,
                            "' (expected images or labels)");
  const std::string stem =
      detail::concat(s, kind == "images" ? "-images-idx3-ubyte" : "-labels-idx1-ubyte");
  const auto gz = dir / (stem + ".gz");
  const auto raw = dir / stem;
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz;
  if (std::filesystem::exists(raw, ec)) return raw;
  throw error(detail::concat("fashion-mnist: file '", gz.string(), "' does not exist (nor '", raw.filename().string(),
                             "' beside it); ", fashion_mnist_install_hint,
                             ", or set SOFTDIFF_FASHION_MNIST_DIR / pass the directory"));
}

/// One Fashion-MNIST split: images [N, 1, 28, 28] in [-1, 1] and labels 0..9.
template <class T = float>
[[nodiscard]] labelled_batch<T> read_fashion_mnist(std::string_view split = "train",
                                                   const std::filesystem::path& dir = default_fashion_mnist_dir(),
                                                   std::size_t limit = no_limit) {
  const auto image_file = fashion_mnist_file(dir, split, "images");
  const auto label_file = fashion_mnist_file(dir, split, "labels");
  labelled_batch<T> out{read_idx_images<T>(image_file, limit), read_idx_labels(label_file, limit)};
  softdiff::detail::require(out.images.shape()[0] == out.labels.size(), "fashion-mnist: '", image_file.string(),
                            "' has ", out.images.shape()[0], " images but '", label_file.string(), "' has ",
                            out.labels.size(), " labels");
  for (std::size_t i = 0; i < out.labels.size(); ++i)
    softdiff::detail::require(out.labels[i] <= 9, "fashion-mnist: '", label_file.string(), "' label ", i, " is ",
                              int{out.labels[i]}, ", expected 0..9");
  return out;
}

}  // namespace softdiff::data
