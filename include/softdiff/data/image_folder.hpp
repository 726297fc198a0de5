#pragma once
// A folder of PNG images as one batch: every *.png directly inside the folder
// (not recursive, extension in any case), in byte-wise order of file name, all
// of one shape (gray files give C = 1, colour files C = 3; see png.hpp).
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "softdiff/data/idx.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

namespace detail {

[[nodiscard]] inline bool has_png_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}

[[nodiscard]] inline std::string chw_string(const shape4& s) { return concat(s[1], "x", s[2], "x", s[3]); }

}  // namespace detail

/// The *.png files directly inside `dir`, sorted by file name.
[[nodiscard]] inline std::vector<std::filesystem::path> list_png_files(const std::filesystem::path& dir) {
  std::error_code ec;
  softdiff::detail::require(std::filesystem::is_directory(dir, ec), "image_folder: '", dir.string(),
                            "' is not a directory");
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (detail::has_png_extension(entry.path()) && entry.is_regular_file(ec)) files.push_back(entry.path());
  softdiff::detail::require(!ec, "image_folder: cannot list '", dir.string(), "': ", ec.message());
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.filename().string() < b.filename().string(); });
  return files;
}

/// The first `limit` PNGs of `dir` (see list_png_files) as [N, C, H, W] in [-1, 1].
/// Every image must have the first one's C x H x W; the first that differs is named in the error.
template <class T = float>
[[nodiscard]] batch<T> read_image_folder(const std::filesystem::path& dir, std::size_t limit = no_limit) {
  auto files = list_png_files(dir);
  softdiff::detail::require(!files.empty(), "image_folder: '", dir.string(), "' contains no .png files");
  if (files.size() > limit) files.resize(limit);
  const std::size_t n = files.size();
  if (n == 0) return batch<T>(shape4{0, 1, 1, 1});

  const batch<T> first = read_png<T>(files[0]);
  const shape4 s = shape_of(first);
  const std::size_t per = s[1] * s[2] * s[3];
  batch<T> out(shape4{n, s[1], s[2], s[3]});
  std::copy(first.data(), first.data() + per, out.data());

  // Decoding dominates and is independent per file; an exception may not leave an OpenMP
  // region, so each thread records its failure and the one of the lowest index is thrown.
  std::vector<std::string> failures(n);
  const auto count = static_cast<std::int64_t>(n);
#pragma omp parallel for schedule(dynamic, 4)
  for (std::int64_t k = 1; k < count; ++k) {
    const auto i = static_cast<std::size_t>(k);
    try {
      const batch<T> img = read_png<T>(files[i]);
      if (shape_of(img) != s) {
        failures[i] = detail::concat("image_folder: '", files[i].string(), "' is ", detail::chw_string(shape_of(img)),
                                     " (C x H x W) but '", files[0].filename().string(), "', the first image, is ",
                                     detail::chw_string(s), "; every image of a folder must have one size");
        continue;
      }
      std::copy(img.data(), img.data() + per, out.data() + i * per);
    } catch (const std::exception& e) {
      failures[i] = e.what();
    }
  }
  for (const auto& f : failures)
    if (!f.empty()) throw error(f);
  return out;
}

}  // namespace softdiff::data
