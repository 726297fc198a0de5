#pragma once
// CIFAR-10 "binary version" batches (cifar-10-batches-bin/data_batch_{1..5}.bin,
// test_batch.bin), plain or gzip-compressed.
//
// A file is a sequence of 3073-byte records: one label byte (0..9), then the
// 32x32 red plane, green plane and blue plane, each row-major. That is already
// NCHW, so a record's pixels copy straight into images[n] (mapped to [-1, 1]
// by x / 127.5 - 1).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/data/gzip.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/labelled_batch.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

inline constexpr std::size_t cifar10_side = 32;
inline constexpr std::size_t cifar10_pixels = 3 * cifar10_side * cifar10_side;  // 3072
inline constexpr std::size_t cifar10_record = 1 + cifar10_pixels;              // 3073
inline constexpr std::string_view cifar10_hint =
    "CIFAR-10 is read from the binary version's batches (cifar-10-batches-bin/data_batch_1.bin ... test_batch.bin)";

/// Records of one CIFAR-10 binary batch file: images [N, 3, 32, 32] in [-1, 1], labels 0..9.
/// `limit` caps N; without one the file must hold a whole number of 3073-byte records.
template <class T = float>
[[nodiscard]] labelled_batch<T> read_cifar10(const std::filesystem::path& path, std::size_t limit = no_limit) {
  detail::gz_reader in(path, "cifar10", cifar10_hint);
  std::vector<std::uint8_t> bytes;
  const std::size_t want = limit == no_limit ? no_limit : detail::checked_mul(limit, cifar10_record, "cifar10");
  const std::size_t got = in.append_up_to(bytes, want);
  const std::size_t n = got / cifar10_record;
  if (got < want) {
    softdiff::detail::require(got > 0, "cifar10: '", in.path(), "' is empty (no 3073-byte records)");
    softdiff::detail::require(got % cifar10_record == 0, "cifar10: '", in.path(), "' holds ", got,
                              " bytes, not a whole number of 3073-byte records (1 label byte + 3x32x32 pixels): ",
                              n, " records and ", got % cifar10_record, " bytes left over");
  }

  labelled_batch<T> out{batch<T>(shape4{n, 3, cifar10_side, cifar10_side}), std::vector<std::uint8_t>(n)};
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t label = bytes[i * cifar10_record];
    softdiff::detail::require(label <= 9, "cifar10: '", in.path(), "' record ", i, " (byte offset ",
                              i * cifar10_record, ") has label ", int{label}, ", expected 0..9");
    out.labels[i] = label;
  }
  const auto table = detail::unit_range_table<T>();
  const std::uint8_t* src = bytes.data();
  T* dst = out.images.data();
  backend::cpu::parallel_for(n, [&](std::size_t i) {
    const std::uint8_t* s = src + i * cifar10_record + 1;
    T* d = dst + i * cifar10_pixels;
    for (std::size_t k = 0; k < cifar10_pixels; ++k) d[k] = table[s[k]];
  });
  return out;
}

/// The batch files of a split in a cifar-10-batches-bin directory: "train" is
/// data_batch_1.bin ... data_batch_5.bin, "test" is test_batch.bin (each also found as `.bin.gz`).
[[nodiscard]] inline std::vector<std::filesystem::path> cifar10_files(const std::filesystem::path& dir,
                                                                      std::string_view split) {
  softdiff::detail::require(split == "train" || split == "test", "cifar10: unknown split '", split,
                            "' (expected train or test)");
  std::vector<std::string> names;
  if (split == "train")
    for (int b = 1; b <= 5; ++b) names.push_back(detail::concat("data_batch_", b, ".bin"));
  else
    names.emplace_back("test_batch.bin");
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& name : names) {
    const auto plain = dir / name;
    const auto gz = dir / (name + ".gz");
    if (std::filesystem::exists(plain, ec)) files.push_back(plain);
    else if (std::filesystem::exists(gz, ec)) files.push_back(gz);
    else throw error(detail::concat("cifar10: file '", plain.string(), "' does not exist; ", cifar10_hint));
  }
  return files;
}

/// A whole CIFAR-10 split from a cifar-10-batches-bin directory, batches concatenated in order.
template <class T = float>
[[nodiscard]] labelled_batch<T> read_cifar10_dir(const std::filesystem::path& dir, std::string_view split = "train",
                                                 std::size_t limit = no_limit) {
  std::vector<labelled_batch<T>> parts;
  std::size_t total = 0;
  for (const auto& file : cifar10_files(dir, split)) {
    if (total >= limit) break;
    parts.push_back(read_cifar10<T>(file, limit == no_limit ? no_limit : limit - total));
    total += parts.back().labels.size();
  }
  labelled_batch<T> out{batch<T>(shape4{total, 3, cifar10_side, cifar10_side}), {}};
  out.labels.reserve(total);
  T* dst = out.images.data();
  for (const auto& p : parts) {
    dst = std::copy(p.images.data(), p.images.data() + p.images.size(), dst);
    out.labels.insert(out.labels.end(), p.labels.begin(), p.labels.end());
  }
  return out;
}

}  // namespace softdiff::data
