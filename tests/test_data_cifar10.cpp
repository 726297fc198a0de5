// CIFAR-10 binary batches: crafted records (label byte + R, G, B planes), plain and
// gzip, directory reads, and malformed files.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "softdiff/data/cifar10.hpp"
#include "support/data_files.hpp"

using namespace softdiff;
using softdiff::test::bytes;
using softdiff::test::temp_dir;
using softdiff::test::write_bytes;
using softdiff::test::write_gzip;
using Catch::Matchers::Contains;

namespace {

// Record i: label labels[i]; channel c, pixel (y, x) = (i + 50 c + 7 y + 3 x) mod 256.
bytes cifar_records(const std::vector<std::uint8_t>& labels, std::uint8_t base = 0) {
  bytes b;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    b.push_back(labels[i]);
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x) b.push_back(static_cast<std::uint8_t>((base + i + 50 * c + 7 * y + 3 * x) % 256));
  }
  return b;
}

double expected_pixel(std::size_t i, std::size_t c, std::size_t y, std::size_t x, std::uint8_t base = 0) {
  return static_cast<double>((base + i + 50 * c + 7 * y + 3 * x) % 256) / 127.5 - 1.0;
}

}  // namespace

TEST_CASE("cifar10 records become [N, 3, 32, 32] planes in [-1, 1] with their labels", "[data][cifar10]") {
  temp_dir dir("cifar");
  const bytes file = cifar_records({6, 9, 0});
  write_bytes(dir / "b.bin", file);
  write_gzip(dir / "b.bin.gz", file);
  for (const auto* name : {"b.bin", "b.bin.gz"}) {
    INFO(name);
    const auto d = data::read_cifar10<double>(dir / name);
    REQUIRE(shape_of(d.images) == shape4{3, 3, 32, 32});
    CHECK(d.labels == std::vector<std::uint8_t>{6, 9, 0});
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t y : {0u, 5u, 31u})
          for (std::size_t x : {0u, 17u, 31u}) CHECK(d.images(i, c, y, x) == expected_pixel(i, c, y, x));
  }
  const auto f = data::read_cifar10<float>(dir / "b.bin");
  CHECK(f.images(2, 1, 3, 4) == static_cast<float>(expected_pixel(2, 1, 3, 4)));
  const auto one = data::read_cifar10<float>(dir / "b.bin", 1);
  CHECK(shape_of(one.images) == shape4{1, 3, 32, 32});
  CHECK(one.labels == std::vector<std::uint8_t>{6});
  CHECK(data::read_cifar10<float>(dir / "b.bin", 10).labels.size() == 3);
}

TEST_CASE("cifar10: malformed files name the file and the problem", "[data][cifar10]") {
  temp_dir dir("cifar-bad");
  bytes odd = cifar_records({1, 2});
  odd.insert(odd.end(), 5, std::uint8_t{0});
  write_bytes(dir / "odd.bin", odd);
  REQUIRE_THROWS_WITH(data::read_cifar10<float>(dir / "odd.bin"),
                      Contains((dir / "odd.bin").string()) && Contains("not a whole number of 3073-byte records") &&
                          Contains("2 records and 5 bytes left over"));
  bytes short_file = cifar_records({1});
  short_file.resize(3000);
  write_gzip(dir / "short.bin.gz", short_file);
  REQUIRE_THROWS_WITH(data::read_cifar10<float>(dir / "short.bin.gz"), Contains("0 records and 3000 bytes left over"));

  write_bytes(dir / "empty.bin", {});
  REQUIRE_THROWS_WITH(data::read_cifar10<float>(dir / "empty.bin"), Contains("empty"));

  write_bytes(dir / "label.bin", cifar_records({3, 10, 4}));
  REQUIRE_THROWS_WITH(data::read_cifar10<float>(dir / "label.bin"),
                      Contains((dir / "label.bin").string()) && Contains("record 1") && Contains("label 10") &&
                          Contains("0..9"));

  REQUIRE_THROWS_WITH(data::read_cifar10<float>(dir / "none.bin"),
                      Contains((dir / "none.bin").string()) && Contains("does not exist"));
}

TEST_CASE("cifar10 directory: train batches 1..5 concatenated, test batch alone", "[data][cifar10]") {
  temp_dir dir("cifar-dir");
  for (int b = 1; b <= 5; ++b) {
    const bytes recs = cifar_records({static_cast<std::uint8_t>(b), static_cast<std::uint8_t>(b - 1)},
                                     static_cast<std::uint8_t>(10 * b));
    const std::string name = "data_batch_" + std::to_string(b) + ".bin";
    if (b % 2 == 0) write_gzip(dir / (name + ".gz"), recs);
    else write_bytes(dir / name, recs);
  }
  write_bytes(dir / "test_batch.bin", cifar_records({7}));

  const auto train = data::read_cifar10_dir<float>(dir.path(), "train");
  REQUIRE(shape_of(train.images) == shape4{10, 3, 32, 32});
  CHECK(train.labels == std::vector<std::uint8_t>{1, 0, 2, 1, 3, 2, 4, 3, 5, 4});
  // Image 7 is batch 4's second record (base 40, i = 1).
  CHECK(train.images(7, 2, 9, 1) == static_cast<float>(expected_pixel(1, 2, 9, 1, 40)));

  const auto first3 = data::read_cifar10_dir<float>(dir.path(), "train", 3);
  CHECK(first3.labels == std::vector<std::uint8_t>{1, 0, 2});
  CHECK(first3.images(2, 0, 0, 0) == train.images(2, 0, 0, 0));

  const auto test = data::read_cifar10_dir<float>(dir.path(), "test");
  CHECK(test.labels == std::vector<std::uint8_t>{7});

  std::filesystem::remove(dir / "data_batch_3.bin");
  REQUIRE_THROWS_WITH(data::read_cifar10_dir<float>(dir.path(), "train"),
                      Contains((dir / "data_batch_3.bin").string()) && Contains("does not exist"));
  REQUIRE_THROWS_WITH(data::read_cifar10_dir<float>(dir.path(), "val"), Contains("unknown split 'val'"));
}
