#pragma once
// load_dataset: one entry point that reads whatever a path names, so programs can
// take "a dataset" on the command line. Also brings in the readers themselves and
// the padding / resizing / statistics helpers of transform.hpp.
//
// A path is, in this order of checks:
//   a directory holding train-images-idx3-ubyte[.gz]  -> Fashion-MNIST / MNIST training split
//                                                        (with its labels when present)
//   a directory holding data_batch_1.bin[.gz]          -> CIFAR-10 training batches 1..5
//   a directory holding test_batch.bin[.gz] only       -> CIFAR-10 test batch
//   a directory holding *.png files                    -> image folder (read_image_folder)
//   a file named *.png                                 -> that one image
//   a file named *.bin or *.bin.gz                     -> one CIFAR-10 batch
//   a file whose (possibly gzipped) magic is 0x00000803 -> IDX images, with the labels of the
//                                                        sibling "...labels-idx1-ubyte[.gz]" if any
// Anything else is an error that lists what was looked for.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "softdiff/data/cifar10.hpp"
#include "softdiff/data/gzip.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/image_folder.hpp"
#include "softdiff/data/labelled_batch.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/data/transform.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

/// Images in [-1, 1], labels (empty when the source has none) and what was read, e.g.
/// "fashion-mnist train (/usr/share/datasets/fashion-mnist)".
template <class T = float>
struct loaded_dataset : labelled_batch<T> {
  std::string description;
};

namespace detail {

[[nodiscard]] inline bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// "<dir>/<name>" or "<dir>/<name>.gz", whichever exists first; empty when neither does.
[[nodiscard]] inline std::filesystem::path plain_or_gz(const std::filesystem::path& dir, const std::string& name) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  if (std::filesystem::is_regular_file(dir / (name + ".gz"), ec)) return dir / (name + ".gz");
  return {};
}

/// The first four bytes (after gunzip, if compressed) as a big-endian number; 0 if shorter.
[[nodiscard]] inline std::uint32_t sniff_magic(const std::filesystem::path& path) {
  gz_reader in(path, "load_dataset");
  std::array<unsigned char, 4> b{};
  return in.read_some(b.data(), 4) == 4 ? load_be32(b.data()) : 0;
}

/// The labels file beside an IDX images file ("train-images-idx3-ubyte.gz" ->
/// "train-labels-idx1-ubyte.gz", with or without .gz); empty when there is none.
[[nodiscard]] inline std::filesystem::path sibling_idx_labels(const std::filesystem::path& images) {
  std::string name = images.filename().string();
  const auto at = name.find("images-idx3");
  if (at == std::string::npos) return {};
  name.replace(at, 11, "labels-idx1");
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  return plain_or_gz(images.parent_path(), name);
}

template <class T>
loaded_dataset<T> with_labels(batch<T> images, std::vector<std::uint8_t> labels, std::string description) {
  loaded_dataset<T> d;
  d.images = std::move(images);
  d.labels = std::move(labels);
  d.description = std::move(description);
  return d;
}

template <class T>
loaded_dataset<T> load_idx(const std::filesystem::path& images, std::size_t limit, const std::string& what) {
  auto x = read_idx_images<T>(images, limit);
  std::vector<std::uint8_t> labels;
  if (const auto lab = sibling_idx_labels(images); !lab.empty()) {
    labels = read_idx_labels(lab, limit);
    require(labels.size() == x.shape()[0], "load_dataset: '", images.string(), "' has ", x.shape()[0],
            " images but '", lab.string(), "' has ", labels.size(), " labels");
  }
  return with_labels(std::move(x), std::move(labels), what);
}

}  // namespace detail

/// Reads the dataset `path` names (see the table at the top of this header); `limit` caps
/// the number of images. Errors name the path and, for an unknown one, what was looked for.
template <class T = float>
[[nodiscard]] loaded_dataset<T> load_dataset(const std::filesystem::path& path, std::size_t limit = no_limit) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) {
    const bool fashion = path.lexically_normal() == default_fashion_mnist_dir().lexically_normal();
    throw error(detail::concat("load_dataset: '", path.string(), "' does not exist",
                               fashion ? std::string("; ") + std::string(fashion_mnist_install_hint) : ""));
  }
  const std::string where = detail::concat(" (", path.string(), ")");

  if (std::filesystem::is_directory(st)) {
    if (const auto idx = detail::plain_or_gz(path, "train-images-idx3-ubyte"); !idx.empty())
      return detail::load_idx<T>(idx, limit, "idx train split" + where);
    if (!detail::plain_or_gz(path, "data_batch_1.bin").empty()) {
      auto d = read_cifar10_dir<T>(path, "train", limit);
      return detail::with_labels(std::move(d.images), std::move(d.labels), "cifar10 train" + where);
    }
    if (!detail::plain_or_gz(path, "test_batch.bin").empty()) {
      auto d = read_cifar10_dir<T>(path, "test", limit);
      return detail::with_labels(std::move(d.images), std::move(d.labels), "cifar10 test" + where);
    }
    if (!list_png_files(path).empty())
      return detail::with_labels(read_image_folder<T>(path, limit), {}, "png folder" + where);
    throw error(detail::concat("load_dataset: directory '", path.string(),
                               "' holds none of train-images-idx3-ubyte[.gz] (Fashion-MNIST / MNIST), "
                               "data_batch_1.bin or test_batch.bin (CIFAR-10 binary), or *.png files"));
  }

  softdiff::detail::require(std::filesystem::is_regular_file(st), "load_dataset: '", path.string(),
                            "' is neither a file nor a directory");
  const std::string name = path.filename().string();
  if (detail::has_png_extension(path)) {
    auto x = read_png<T>(path);
    if (limit == 0) x = batch<T>(shape4{0, x.shape()[1], x.shape()[2], x.shape()[3]});
    return detail::with_labels(std::move(x), {}, "png image" + where);
  }
  if (detail::ends_with(name, ".bin") || detail::ends_with(name, ".bin.gz")) {
    auto d = read_cifar10<T>(path, limit);
    return detail::with_labels(std::move(d.images), std::move(d.labels), "cifar10 batch" + where);
  }
  const std::uint32_t magic = detail::sniff_magic(path);
  if (magic == idx_images_magic) return detail::load_idx<T>(path, limit, "idx images" + where);
  softdiff::detail::require(magic != idx_labels_magic, "load_dataset: '", path.string(),
                            "' is an IDX labels file; pass the images file (its labels are found beside it)");
  throw error(detail::concat("load_dataset: cannot tell what '", path.string(),
                             "' is: not a directory, a .png image, a CIFAR-10 .bin batch, or an IDX images file "
                             "(magic 0x00000803, plain or gzip)"));
}

}  // namespace softdiff::data
