// IDX readers (MNIST / Fashion-MNIST): crafted files, gzip and plain, every kind of
// malformed file, and the real Fashion-MNIST test set that Debian's
// dataset-fashion-mnist package installs (CI installs it: its absence is a failure).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <string>

#include "softdiff/data/idx.hpp"
#include "support/data_files.hpp"

using namespace softdiff;
using softdiff::test::append_be32;
using softdiff::test::bytes;
using softdiff::test::temp_dir;
using softdiff::test::write_bytes;
using softdiff::test::write_gzip;
using Catch::Matchers::Contains;

namespace {

// n images of rows x cols; pixel (i, r, c) = (37 i + 11 r + 3 c) mod 256, plus 0 and 255 in image 0.
bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  bytes b;
  append_be32(b, 0x00000803);
  append_be32(b, n);
  append_be32(b, rows);
  append_be32(b, cols);
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t r = 0; r < rows; ++r)
      for (std::uint32_t c = 0; c < cols; ++c) b.push_back(static_cast<std::uint8_t>((37 * i + 11 * r + 3 * c) % 256));
  if (n > 0 && rows * cols >= 2) {
    b[16] = 0;
    b[17] = 255;
  }
  return b;
}

bytes idx_labels(const bytes& labels) {
  bytes b;
  append_be32(b, 0x00000801);
  append_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

template <class T>
void check_images(const batch<T>& x, const bytes& file, std::size_t n, std::size_t rows, std::size_t cols) {
  REQUIRE(shape_of(x) == shape4{n, 1, rows, cols});
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(x.data()[i] == static_cast<T>(file[16 + i] / 127.5 - 1.0));
}

}  // namespace

TEST_CASE("idx images and labels read from plain and gzip files", "[data][idx]") {
  temp_dir dir("idx");
  const bytes img = idx_images(3, 2, 4);
  write_bytes(dir / "img", img);
  write_gzip(dir / "img.gz", img);
  for (const auto* name : {"img", "img.gz"}) {
    INFO(name);
    check_images(data::read_idx_images<float>(dir / name), img, 3, 2, 4);
    check_images(data::read_idx_images<double>(dir / name), img, 3, 2, 4);
  }
  const auto x = data::read_idx_images<double>(dir / "img.gz");
  CHECK(x(0, 0, 0, 0) == -1.0);  // byte 0
  CHECK(x(0, 0, 0, 1) == 1.0);   // byte 255
  CHECK(x(1, 0, 1, 2) == Approx((37 + 11 + 6) / 127.5 - 1.0));

  const bytes labels{3, 1, 4, 1, 5};
  write_bytes(dir / "lab", idx_labels(labels));
  write_gzip(dir / "lab.gz", idx_labels(labels));
  CHECK(data::read_idx_labels(dir / "lab") == std::vector<std::uint8_t>(labels.begin(), labels.end()));
  CHECK(data::read_idx_labels(dir / "lab.gz") == std::vector<std::uint8_t>(labels.begin(), labels.end()));
}

TEST_CASE("idx limit reads a prefix", "[data][idx]") {
  temp_dir dir("idx-limit");
  const bytes img = idx_images(5, 3, 3);
  write_gzip(dir / "img.gz", img);
  const auto two = data::read_idx_images<float>(dir / "img.gz", 2);
  check_images(two, img, 2, 3, 3);
  CHECK(data::read_idx_images<float>(dir / "img.gz", 99).shape()[0] == 5);
  CHECK(data::read_idx_images<float>(dir / "img.gz", 0).shape()[0] == 0);
  write_gzip(dir / "lab.gz", idx_labels({7, 8, 9}));
  CHECK(data::read_idx_labels(dir / "lab.gz", 2) == std::vector<std::uint8_t>{7, 8});
}

TEST_CASE("idx: malformed files raise errors naming the file and the problem", "[data][idx]") {
  temp_dir dir("idx-bad");
  const auto path = [&](const char* n) { return (dir / n).string(); };

  SECTION("missing file names the path and the Debian package") {
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "nope.gz"),
                        Contains(path("nope.gz")) && Contains("apt-get install dataset-fashion-mnist"));
    REQUIRE_THROWS_WITH(data::read_idx_labels(dir / "nope"), Contains(path("nope")) && Contains("does not exist"));
  }
  SECTION("a directory is not a file") {
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir.path()), Contains("not a regular file"));
  }
  SECTION("bad magic: a label file read as images, and a non-IDX file") {
    write_gzip(dir / "lab.gz", idx_labels({1, 2}));
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "lab.gz"),
                        Contains(path("lab.gz")) && Contains("0x00000801") && Contains("expected 0x00000803"));
    write_bytes(dir / "text", bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', '!'});
    REQUIRE_THROWS_WITH(data::read_idx_labels(dir / "text"), Contains(path("text")) && Contains("not an IDX file"));
  }
  SECTION("truncated header") {
    bytes b = idx_images(1, 2, 2);
    b.resize(10);
    write_bytes(dir / "short", b);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "short"),
                        Contains(path("short")) && Contains("truncated") && Contains("dimension 1"));
    write_bytes(dir / "tiny", bytes{0, 0});
    REQUIRE_THROWS_WITH(data::read_idx_labels(dir / "tiny"), Contains("truncated") && Contains("magic"));
  }
  SECTION("truncated data, plain and gzip") {
    bytes b = idx_images(4, 5, 5);
    b.resize(b.size() - 7);
    write_bytes(dir / "cut", b);
    write_gzip(dir / "cut.gz", b);
    for (const auto* n : {"cut", "cut.gz"})
      REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / n),
                          Contains(path(n)) && Contains("truncated") && Contains("100 bytes but only 93"));
    bytes l = idx_labels({1, 2, 3});
    l.pop_back();
    write_bytes(dir / "lcut", l);
    REQUIRE_THROWS_WITH(data::read_idx_labels(dir / "lcut"), Contains("truncated") && Contains("3 labels"));
  }
  SECTION("a header announcing billions of images is refused before allocation") {
    bytes b = idx_images(1, 28, 28);
    b[4] = b[5] = b[6] = b[7] = 0xff;
    write_gzip(dir / "huge.gz", b);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "huge.gz"),
                        Contains("declares 4294967295 images of 28x28") && Contains("more than a gzip file of its size can hold"));
  }
  SECTION("a count a gzip file could hold but does not: truncated") {
    bytes b = idx_images(1, 28, 28);
    b[7] = 10;
    write_gzip(dir / "ten.gz", b);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "ten.gz"), Contains("truncated"));
  }
  SECTION("bytes after the announced data") {
    bytes b = idx_images(2, 2, 2);
    b.push_back(9);
    write_gzip(dir / "long.gz", b);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "long.gz"),
                        Contains(path("long.gz")) && Contains("bytes after the 2 images"));
    CHECK(data::read_idx_images<float>(dir / "long.gz", 1).shape()[0] == 1);  // a prefix does not look further
  }
  SECTION("zero-sized images") {
    write_bytes(dir / "flat", idx_images(2, 0, 3));
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "flat"), Contains("size 0x3"));
  }
  SECTION("bad gzip: corrupt deflate data, cut stream, wrong checksum") {
    write_gzip(dir / "ok.gz", idx_images(20, 8, 8));
    bytes gz = softdiff::test::read_bytes(dir / "ok.gz");
    bytes corrupt = gz;
    for (std::size_t i = 12; i < corrupt.size() - 8; ++i) corrupt[i] ^= 0x5a;
    write_bytes(dir / "corrupt.gz", corrupt);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "corrupt.gz"),
                        Contains(path("corrupt.gz")) && Contains("gzip"));
    bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
    write_bytes(dir / "cut.gz", cut);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "cut.gz"),
                        Contains(path("cut.gz")) && Contains("truncated"));
    bytes crc = gz;
    crc[crc.size() - 6] ^= 0xff;  // inside the CRC-32 of the trailer
    write_bytes(dir / "crc.gz", crc);
    REQUIRE_THROWS_WITH(data::read_idx_images<float>(dir / "crc.gz"),
                        Contains(path("crc.gz")) && Contains("not valid gzip"));
  }
}

TEST_CASE("fashion-mnist files: .gz preferred, plain accepted, missing named with the package", "[data][idx]") {
  temp_dir dir("fmnist");
  write_gzip(dir / "train-images-idx3-ubyte.gz", idx_images(3, 28, 28));
  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels({0, 9, 4}));
  CHECK(data::fashion_mnist_file(dir.path(), "train", "images") == dir / "train-images-idx3-ubyte.gz");
  CHECK(data::fashion_mnist_file(dir.path(), "train", "labels") == dir / "train-labels-idx1-ubyte");
  const auto d = data::read_fashion_mnist<float>("train", dir.path());
  CHECK(shape_of(d.images) == shape4{3, 1, 28, 28});
  CHECK(d.labels == std::vector<std::uint8_t>{0, 9, 4});

  REQUIRE_THROWS_WITH(data::read_fashion_mnist<float>("test", dir.path()),
                      Contains((dir / "t10k-images-idx3-ubyte.gz").string()) &&
                          Contains("apt-get install dataset-fashion-mnist"));
  REQUIRE_THROWS_WITH(data::fashion_mnist_file(dir.path(), "valid", "images"), Contains("unknown split 'valid'"));

  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels({0, 9}));
  REQUIRE_THROWS_WITH(data::read_fashion_mnist<float>("train", dir.path()),
                      Contains("3 images") && Contains("2 labels"));
  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels({0, 10, 1}));
  REQUIRE_THROWS_WITH(data::read_fashion_mnist<float>("train", dir.path()),
                      Contains("label 1 is 10") && Contains("0..9"));
}

TEST_CASE("the installed Fashion-MNIST test set reads whole and right", "[data][idx][fashion-mnist]") {
  // Must fail, not skip, when the package is missing: CI installs dataset-fashion-mnist.
  const auto dir = data::default_fashion_mnist_dir();
  INFO("Fashion-MNIST directory: " << dir.string() << " (apt-get install dataset-fashion-mnist)");
  REQUIRE(std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz"));
  const auto test = data::read_fashion_mnist<float>("t10k", dir);
  REQUIRE(shape_of(test.images) == shape4{10000, 1, 28, 28});
  REQUIRE(test.labels.size() == 10000);
  const auto [lo, hi] = std::minmax_element(test.images.begin(), test.images.end());
  CHECK(*lo == -1.0f);
  CHECK(*hi == 1.0f);
  double sum = 0;
  for (float v : test.images) sum += v;
  CHECK(sum / static_cast<double>(test.images.size()) == Approx(-0.4263014).margin(1e-6));
  double first = 0;  // byte sum of image 0, undoing x / 127.5 - 1
  for (std::size_t i = 0; i < 28 * 28; ++i) first += (test.images.data()[i] + 1.0) * 127.5;
  CHECK(first == Approx(33456).margin(1e-2));
  CHECK(std::vector<std::uint8_t>(test.labels.begin(), test.labels.begin() + 10) ==
        std::vector<std::uint8_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  std::array<int, 10> per_class{};
  for (auto l : test.labels) ++per_class[l];
  for (int c : per_class) CHECK(c == 1000);

  const auto train = data::read_fashion_mnist<double>("train", dir, 100);
  CHECK(shape_of(train.images) == shape4{100, 1, 28, 28});
  CHECK(std::vector<std::uint8_t>(train.labels.begin(), train.labels.begin() + 4) ==
        std::vector<std::uint8_t>{9, 0, 0, 3});
}

TEST_CASE("idx: every truncation of a gzip or plain file throws softdiff::error", "[data][idx]") {
  temp_dir dir("idx-prefix");
  const bytes img = idx_images(3, 4, 4);
  write_gzip(dir / "full.gz", img);
  const bytes gz = softdiff::test::read_bytes(dir / "full.gz");
  for (const auto& [name, whole] : {std::pair{"cut.gz", gz}, std::pair{"cut", img}}) {
    for (std::size_t n = 0; n < whole.size(); ++n) {
      INFO(name << " cut to " << n << " of " << whole.size() << " bytes");
      write_bytes(dir / name, bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n)));
      CHECK_THROWS_AS(data::read_idx_images<float>(dir / name), softdiff::error);
    }
  }
}
