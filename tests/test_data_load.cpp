// Image folders (PNG) and load_dataset's dispatch on what a path is.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "softdiff/data/dataset.hpp"
#include "support/data_files.hpp"

using namespace softdiff;
using softdiff::test::append_be32;
using softdiff::test::bytes;
using softdiff::test::temp_dir;
using softdiff::test::write_bytes;
using softdiff::test::write_gzip;
using Catch::Matchers::Contains;

namespace {

// Image i of a C x H x W batch: pixel byte (17 i + 5 k) mod 256 at flat index k, exact in 8-bit PNG.
batch<float> pattern(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::size_t seed = 0) {
  batch<float> x(shape4{n, c, h, w});
  const std::size_t per = c * h * w;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < per; ++k)
      x.data()[i * per + k] = static_cast<float>(((17 * (i + seed) + 5 * k) % 256) / 127.5 - 1.0);
  return x;
}

void write_pngs(const temp_dir& dir, const std::vector<std::string>& names, const batch<float>& x) {
  for (std::size_t i = 0; i < names.size(); ++i) data::write_png(dir / names[i], x, i);
}

bytes idx_file(std::uint32_t magic, std::vector<std::uint32_t> dims, std::size_t payload) {
  bytes b;
  append_be32(b, magic);
  for (auto d : dims) append_be32(b, d);
  for (std::size_t i = 0; i < payload; ++i) b.push_back(static_cast<std::uint8_t>(i % 10));
  return b;
}

bytes cifar_file(std::size_t records, std::uint8_t label) {
  bytes b;
  for (std::size_t r = 0; r < records; ++r) {
    b.push_back(label);
    b.insert(b.end(), 3072, static_cast<std::uint8_t>(r));
  }
  return b;
}

}  // namespace

TEST_CASE("image folder: sorted *.png of one size become a batch", "[data][image_folder]") {
  temp_dir dir("pngs");
  const auto x = pattern(3, 3, 4, 5);
  write_pngs(dir, {"a.PNG", "b.png", "c.png"}, x);
  write_bytes(dir / "notes.txt", bytes{'h', 'i'});
  std::filesystem::create_directory(dir / "sub.png");  // a directory, not an image

  const auto files = data::list_png_files(dir.path());
  REQUIRE(files.size() == 3);
  CHECK(files[0].filename() == "a.PNG");
  CHECK(files[2].filename() == "c.png");
  const auto y = data::read_image_folder<float>(dir.path());
  REQUIRE(shape_of(y) == shape4{3, 3, 4, 5});
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(y.data()[i] == x.data()[i]);
  const auto two = data::read_image_folder<double>(dir.path(), 2);
  REQUIRE(shape_of(two) == shape4{2, 3, 4, 5});
  CHECK(two(1, 2, 3, 4) == Approx(x(1, 2, 3, 4)).margin(1e-7));

  temp_dir gray("pngs-gray");
  write_pngs(gray, {"0.png", "1.png"}, pattern(2, 1, 6, 2));
  CHECK(shape_of(data::read_image_folder<float>(gray.path())) == shape4{2, 1, 6, 2});
}

TEST_CASE("image folder: odd files, empty folders and bad PNGs are named", "[data][image_folder]") {
  temp_dir dir("pngs-bad");
  REQUIRE_THROWS_WITH(data::read_image_folder<float>(dir.path()), Contains("contains no .png files"));
  REQUIRE_THROWS_WITH(data::read_image_folder<float>(dir / "missing"), Contains("is not a directory"));

  write_pngs(dir, {"a.png", "b.png"}, pattern(2, 3, 4, 4));
  write_pngs(dir, {"c.png"}, pattern(1, 3, 5, 4));
  REQUIRE_THROWS_WITH(data::read_image_folder<float>(dir.path()),
                      Contains((dir / "c.png").string()) && Contains("is 3x5x4") && Contains("'a.png', the first image, is 3x4x4"));
  CHECK(data::read_image_folder<float>(dir.path(), 2).shape()[0] == 2);  // c.png is past the limit

  std::filesystem::remove(dir / "c.png");
  write_pngs(dir, {"d.png"}, pattern(1, 1, 4, 4));
  REQUIRE_THROWS_WITH(data::read_image_folder<float>(dir.path()), Contains("d.png") && Contains("is 1x4x4"));

  std::filesystem::remove(dir / "d.png");
  write_bytes(dir / "e.png", bytes{'n', 'o', 't', ' ', 'p', 'n', 'g', '!', '!'});
  REQUIRE_THROWS_WITH(data::read_image_folder<float>(dir.path()), Contains((dir / "e.png").string()));
}

TEST_CASE("load_dataset reads what a path names", "[data][dataset]") {
  temp_dir root("load");
  const auto sub = [&](const std::string& name) {
    std::filesystem::create_directories(root / name);
    return root / name;
  };

  SECTION("Fashion-MNIST layout directory, with labels") {
    const auto d = sub("fm");
    write_gzip(d / "train-images-idx3-ubyte.gz", idx_file(0x803, {4, 28, 28}, 4 * 784));
    write_gzip(d / "train-labels-idx1-ubyte.gz", idx_file(0x801, {4}, 4));
    const auto ds = data::load_dataset<float>(d);
    CHECK(shape_of(ds.images) == shape4{4, 1, 28, 28});
    CHECK(ds.labels == std::vector<std::uint8_t>{0, 1, 2, 3});
    CHECK_THAT(ds.description, Contains("idx train split") && Contains(d.string()));
    CHECK(data::load_dataset<double>(d, 3).labels.size() == 3);
  }
  SECTION("IDX images file by content, labels found beside it") {
    const auto d = sub("idx");
    write_bytes(d / "digits-images-idx3-ubyte", idx_file(0x803, {2, 3, 3}, 18));
    write_bytes(d / "digits-labels-idx1-ubyte", idx_file(0x801, {2}, 2));
    const auto ds = data::load_dataset<float>(d / "digits-images-idx3-ubyte");
    CHECK(shape_of(ds.images) == shape4{2, 1, 3, 3});
    CHECK(ds.labels.size() == 2);
    write_gzip(d / "renamed.dat", idx_file(0x803, {1, 2, 2}, 4));
    const auto plain = data::load_dataset<float>(d / "renamed.dat");
    CHECK(shape_of(plain.images) == shape4{1, 1, 2, 2});
    CHECK(plain.labels.empty());
    REQUIRE_THROWS_WITH(data::load_dataset<float>(d / "digits-labels-idx1-ubyte"),
                        Contains("is an IDX labels file; pass the images file"));
  }
  SECTION("CIFAR-10 directories and batch files") {
    const auto d = sub("cifar");
    for (int b = 1; b <= 5; ++b) write_bytes(d / ("data_batch_" + std::to_string(b) + ".bin"), cifar_file(2, 3));
    const auto train = data::load_dataset<float>(d);
    CHECK(shape_of(train.images) == shape4{10, 3, 32, 32});
    CHECK_THAT(train.description, Contains("cifar10 train"));
    const auto t = sub("cifar-test");
    write_gzip(t / "test_batch.bin.gz", cifar_file(3, 8));
    const auto test = data::load_dataset<float>(t);
    CHECK(test.labels == std::vector<std::uint8_t>{8, 8, 8});
    CHECK_THAT(test.description, Contains("cifar10 test"));
    const auto one = data::load_dataset<float>(d / "data_batch_2.bin", 1);
    CHECK(shape_of(one.images) == shape4{1, 3, 32, 32});
  }
  SECTION("PNG folders and single PNG files") {
    const auto d = sub("png");
    data::write_png(d / "x.png", pattern(1, 3, 8, 8), 0);
    data::write_png(d / "y.png", pattern(1, 3, 8, 8, 4), 0);
    const auto folder = data::load_dataset<float>(d);
    CHECK(shape_of(folder.images) == shape4{2, 3, 8, 8});
    CHECK(folder.labels.empty());
    CHECK_THAT(folder.description, Contains("png folder"));
    const auto single = data::load_dataset<float>(d / "y.png");
    CHECK(shape_of(single.images) == shape4{1, 3, 8, 8});
    CHECK(single.images(0, 2, 7, 7) == folder.images(1, 2, 7, 7));
  }
  SECTION("unknown paths say what was looked for") {
    const auto d = sub("empty");
    REQUIRE_THROWS_WITH(data::load_dataset<float>(d),
                        Contains(d.string()) && Contains("train-images-idx3-ubyte") && Contains("data_batch_1.bin") &&
                            Contains("*.png"));
    write_bytes(d / "weights.dat", bytes{1, 2, 3, 4, 5, 6, 7, 8});
    REQUIRE_THROWS_WITH(data::load_dataset<float>(d / "weights.dat"),
                        Contains("cannot tell what") && Contains("weights.dat"));
    REQUIRE_THROWS_WITH(data::load_dataset<float>(d / "nothing"), Contains("does not exist"));
  }
}

TEST_CASE("load_dataset on the installed Fashion-MNIST directory", "[data][dataset][fashion-mnist]") {
  // Must fail, not skip, when the package is missing: CI installs dataset-fashion-mnist.
  const auto ds = data::load_dataset<float>(data::default_fashion_mnist_dir(), 64);
  CHECK(shape_of(ds.images) == shape4{64, 1, 28, 28});
  CHECK(ds.labels.size() == 64);
  CHECK(ds.labels[0] == 9);
  const auto padded = data::pad_to_multiple(ds.images, data::size_multiple_for_levels(4));
  CHECK(shape_of(padded) == shape4{64, 1, 32, 32});
}
