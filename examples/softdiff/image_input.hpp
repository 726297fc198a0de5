#pragma once
// Images for the subcommands that read a data set (train, schedule, eval): a float .npy batch
// [N, C, H, W] in [-1, 1], or anything data::load_dataset reads (IDX files or an MNIST-layout
// directory, CIFAR-10 batches, a PNG folder); `split` "test" picks the test split of an
// MNIST-layout directory (t10k-images-idx3-ubyte[.gz]) or of a CIFAR-10 directory
// (test_batch.bin). At most `limit` images; `description` says what was read.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "softdiff/data/cifar10.hpp"
#include "softdiff/data/dataset.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::cli {

[[nodiscard]] inline batch<float> load_images(const std::filesystem::path& path, std::size_t limit,
                                              std::string& description, const std::string& split = "train") {
  namespace fs = std::filesystem;
  if (path.extension() == ".npy") {
    batch<float> x = data::read_npy_batch<float>(path);
    description = ".npy batch (" + path.string() + ")";
    // The other readers map pixels onto [-1, 1] themselves; a .npy is taken as it is, so its
    // range is checked: unscaled 8-bit pixels would train a model of the wrong images.
    const std::size_t h = x.shape()[2], w = x.shape()[3], per = x.shape()[1] * h * w;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const float v = x.data()[i];
      if (std::abs(v) <= 1.0f + 1e-4f) continue;
      const std::size_t p = i % per;
      throw error(detail::concat(path.string(), ": image ", i / per, " has the ", std::isfinite(v) ? "" : "non-finite ",
                                 "value ", v, " at channel ", p / (h * w), ", row ", (p / w) % h, ", column ", p % w,
                                 "; softdiff takes images in [-1, 1] (8-bit pixels p become p / 127.5 - 1)"));
    }
    if (limit >= x.shape()[0]) return x;
    batch<float> head(shape4{limit, x.shape()[1], x.shape()[2], x.shape()[3]});
    std::copy(x.data(), x.data() + head.size(), head.data());
    return head;
  }
  std::error_code ec;
  if (split == "test" && fs::is_directory(path, ec)) {
    if (!data::detail::plain_or_gz(path, "t10k-images-idx3-ubyte").empty()) {
      description = "idx test split (" + path.string() + ")";
      return std::move(data::read_fashion_mnist<float>("test", path, limit).images);
    }
    if (!data::detail::plain_or_gz(path, "test_batch.bin").empty()) {
      description = "cifar10 test (" + path.string() + ")";
      return std::move(data::read_cifar10_dir<float>(path, "test", limit).images);
    }
  }
  data::loaded_dataset<float> d = data::load_dataset<float>(path, limit);
  description = d.description;
  return std::move(d.images);
}

}  // namespace softdiff::cli
