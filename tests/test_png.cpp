// softdiff/data/png.hpp: round trips, grid layout, every colour type on read, corrupt files.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/data_files.hpp"
#include "softdiff/data/png.hpp"

namespace fs = std::filesystem;
using namespace softdiff;

namespace {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const softdiff::error& e) {
    return e.what();
  }
  FAIL("expected softdiff::error");
  return {};
}

/// Writes interleaved samples with libpng's simplified API, for the colour types softdiff does not write.
void write_with_libpng(const fs::path& p, std::uint32_t format, std::uint32_t w, std::uint32_t h, const void* pixels,
                       const void* colormap = nullptr, std::uint32_t colormap_entries = 0) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = w;
  image.height = h;
  image.format = format;
  image.colormap_entries = colormap_entries;
  REQUIRE(png_image_write_to_file(&image, p.c_str(), 0, pixels, 0, colormap) != 0);
}

/// Values k / 127.5 - 1 for bytes k: exactly representable as PNG samples.
template <class T>
batch<T> byte_valued(shape4 s, std::size_t salt) {
  batch<T> x(s);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(((i * 37 + salt) % 256) / 127.5 - 1.0);
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("png: gray and RGB round trips are exact on the 256 levels", "[png]", float, double) {
  const test::temp_dir tmp("png");
  const fs::path& dir = tmp.path();
  for (std::size_t c : {1u, 3u}) {
    const batch<TestType> x = byte_valued<TestType>({3, c, 5, 7}, c);
    data::write_png(dir / "one.png", x, 2);
    const batch<TestType> y = data::read_png<TestType>(dir / "one.png");
    REQUIRE(shape_of(y) == shape4{1, c, 5, 7});
    for (std::size_t k = 0; k < c; ++k)
      for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < 7; ++j) CHECK(y(0, k, i, j) == Approx(x(2, k, i, j)).margin(1e-6));
  }
  for (const auto& entry : fs::directory_iterator(dir))
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("png: values are clamped to [-1, 1] and mapped to round((v + 1) * 127.5)", "[png]") {
  const test::temp_dir tmp("png");
  const fs::path& dir = tmp.path();
  batch<float> x(shape4{1, 1, 1, 6});
  const float in[6] = {-3.0f, -1.0f, 0.0f, 0.5f, 1.0f, 7.0f};
  std::copy(in, in + 6, x.data());
  data::write_png(dir / "c.png", x, 0);
  const auto y = data::read_png<double>(dir / "c.png");
  const double expect[6] = {-1.0, -1.0, 128 / 127.5 - 1, 191 / 127.5 - 1, 1.0, 1.0};
  for (int i = 0; i < 6; ++i) CHECK(y(0, 0, 0, i) == Approx(expect[i]).margin(1e-12));
  fs::remove_all(dir);
}

TEST_CASE("png: grids and rows have torchvision's layout", "[png]") {
  const test::temp_dir tmp("png");
  const fs::path& dir = tmp.path();
  const batch<float> x = byte_valued<float>({7, 3, 4, 5}, 1);
  data::write_png_grid(dir / "g.png", x, 3, 2);
  const auto g = data::read_png<float>(dir / "g.png");
  // 3 rows of 3 columns: H = 3 * (4 + 2) + 2, W = 3 * (5 + 2) + 2.
  REQUIRE(shape_of(g) == shape4{1, 3, 20, 23});
  CHECK(g(0, 1, 0, 0) == -1.0f);                                   // padding
  CHECK(g(0, 2, 19, 22) == -1.0f);                                 // padding, bottom right
  CHECK(g(0, 0, 2, 2) == Approx(x(0, 0, 0, 0)).margin(1e-6));     // first image's corner
  CHECK(g(0, 1, 2 + 6 + 3, 2 + 7 + 4) == Approx(x(4, 1, 3, 4)).margin(1e-6));  // image 4 = row 1, col 1
  CHECK(g(0, 2, 2 + 12, 2) == Approx(x(6, 2, 0, 0)).margin(1e-6));  // image 6 = row 2, col 0

  const auto tiled = data::tile_grid(x, 10, 0);  // more columns than images: one row, no padding
  CHECK(shape_of(tiled) == shape4{1, 3, 4, 35});

  std::vector<batch<float>> rows{byte_valued<float>({4, 1, 6, 6}, 0), byte_valued<float>({4, 1, 6, 6}, 9)};
  data::write_png_rows<float>(dir / "r.png", rows, 1);
  const auto r = data::read_png<float>(dir / "r.png");
  REQUIRE(shape_of(r) == shape4{1, 1, 2 * 7 + 1, 4 * 7 + 1});
  CHECK(r(0, 0, 1 + 7 + 5, 1 + 3 * 7 + 5) == Approx(rows[1](3, 0, 5, 5)).margin(1e-6));

  rows.push_back(byte_valued<float>({3, 1, 6, 6}, 0));
  const std::string msg = error_of([&] { data::write_png_rows<float>(dir / "bad_rows.png", rows); });
  CHECK(msg.find("row 2") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("png: reads gray+alpha, RGBA, palette and 16-bit files", "[png]") {
  const test::temp_dir tmp("png");
  const fs::path& dir = tmp.path();
  const std::uint8_t ga[] = {0, 255, 51, 0, 255, 128};  // (gray, alpha) x 3
  write_with_libpng(dir / "ga.png", PNG_FORMAT_GA, 3, 1, ga);
  const auto g = data::read_png<double>(dir / "ga.png");
  REQUIRE(shape_of(g) == shape4{1, 1, 1, 3});
  CHECK(g(0, 0, 0, 0) == -1.0);
  CHECK(g(0, 0, 0, 1) == Approx(51 / 127.5 - 1));  // alpha dropped, colour kept
  CHECK(g(0, 0, 0, 2) == 1.0);

  const std::uint8_t rgba[] = {255, 0, 0, 255, 0, 255, 0, 0};  // red opaque, green transparent
  write_with_libpng(dir / "rgba.png", PNG_FORMAT_RGBA, 2, 1, rgba);
  const auto c = data::read_png<float>(dir / "rgba.png");
  REQUIRE(shape_of(c) == shape4{1, 3, 1, 2});
  CHECK(c(0, 0, 0, 0) == 1.0f);
  CHECK(c(0, 1, 0, 0) == -1.0f);
  CHECK(c(0, 1, 0, 1) == 1.0f);
  CHECK(c(0, 2, 0, 1) == -1.0f);

  const std::uint8_t palette[] = {0, 0, 0, 255, 255, 255, 255, 0, 0};
  const std::uint8_t indices[] = {2, 1, 0, 2};
  write_with_libpng(dir / "pal.png", PNG_FORMAT_RGB_COLORMAP, 2, 2, indices, palette, 3);
  const auto p = data::read_png<float>(dir / "pal.png");
  REQUIRE(shape_of(p) == shape4{1, 3, 2, 2});
  CHECK(p(0, 0, 0, 0) == 1.0f);   // red
  CHECK(p(0, 1, 0, 0) == -1.0f);
  CHECK(p(0, 1, 0, 1) == 1.0f);   // white
  CHECK(p(0, 2, 1, 0) == -1.0f);  // black

  const std::uint16_t deep[] = {0, 1, 32768, 65535};
  write_with_libpng(dir / "y16.png", PNG_FORMAT_LINEAR_Y, 4, 1, deep);
  const auto d = data::read_png<double>(dir / "y16.png");
  REQUIRE(shape_of(d) == shape4{1, 1, 1, 4});
  CHECK(d(0, 0, 0, 0) == -1.0);
  CHECK(d(0, 0, 0, 1) == Approx(1 / 32767.5 - 1).epsilon(1e-12));  // 16-bit precision kept
  CHECK(d(0, 0, 0, 2) == Approx(32768 / 32767.5 - 1).margin(1e-12));
  CHECK(d(0, 0, 0, 3) == 1.0);
  fs::remove_all(dir);
}

TEST_CASE("png: corrupt, truncated and missing files raise softdiff::error naming the file", "[png]") {
  const test::temp_dir tmp("png");
  const fs::path& dir = tmp.path();
  const batch<float> x = byte_valued<float>({1, 3, 32, 32}, 3);
  data::write_png(dir / "good.png", x, 0);
  const std::string good = test::read_text(dir / "good.png");
  REQUIRE(good.size() > 100);

  auto check = [&](const std::string& name, const std::string& bytes, const std::string& problem) {
    test::write_text(dir / name, bytes);
    const std::string msg = error_of([&] { (void)data::read_png<float>(dir / name); });
    INFO(msg);
    CHECK(msg.find(name) != std::string::npos);
    CHECK(msg.find(problem) != std::string::npos);
  };
  check("empty.png", "", "not a PNG");
  check("text.png", "hello, this is not a picture at all", "not a PNG");
  check("header_cut.png", good.substr(0, 20), "PNG header");
  check("data_cut.png", good.substr(0, good.size() / 2), "unexpected end of file");
  check("no_iend.png", good.substr(0, good.size() - 12), "truncated PNG data");
  std::string flipped = good;
  flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x5a);  // inside IDAT: CRC fails
  check("flipped.png", flipped, "PNG");
  std::string bad_ihdr = good;
  bad_ihdr[16] = bad_ihdr[17] = bad_ihdr[18] = bad_ihdr[19] = 0;  // width 0
  check("zero_width.png", bad_ihdr, "PNG header");

  const std::string missing = error_of([&] { (void)data::read_png<float>(dir / "nope.png"); });
  CHECK(missing.find("nope.png") != std::string::npos);
  CHECK(missing.find("no such file") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("png: bad images to write raise softdiff::error and leave no file", "[png]") {
  const test::temp_dir tmp("png");
  const fs::path& dir = tmp.path();
  const batch<float> two(shape4{1, 2, 4, 4}, 0.0f);
  const std::string msg = error_of([&] { data::write_png(dir / "two.png", two, 0); });
  CHECK(msg.find("two.png") != std::string::npos);
  CHECK(msg.find("C = 2") != std::string::npos);

  batch<float> nan(shape4{2, 1, 4, 4}, 0.0f);
  nan(1, 0, 2, 3) = std::nanf("");
  CHECK(error_of([&] { data::write_png(dir / "nan.png", nan, 1); }).find("non-finite") != std::string::npos);
  CHECK(error_of([&] { data::write_png(dir / "idx.png", nan, 2); }).find("out of range") != std::string::npos);
  CHECK(error_of([&] { data::write_png(dir / "no" / "dir.png", batch<float>(shape4{1, 1, 4, 4}, 0.0f), 0); })
            .find("dir.png") != std::string::npos);
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}
