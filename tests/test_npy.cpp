// softdiff/data/npy.hpp: round trips, files written by numpy, and malformed files.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"

namespace fs = std::filesystem;
using namespace softdiff;

namespace {

/// A version 1.0 file with the given dict text (padded to 64 bytes) and `data_bytes` of payload.
std::string craft(const std::string& dict, std::size_t data_bytes, char major = 1) {
  std::string h = dict;
  const std::size_t pre = major == 1 ? 10 : 12;
  while ((pre + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string out("\x93NUMPY", 6);
  out += major;
  out += '\0';
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  if (major != 1) out += std::string(2, '\0');
  return out + h + std::string(data_bytes, '\0');
}

/// Runs `f` and returns the softdiff::error message (fails the test if none is thrown).
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

const std::string data_dir = SOFTDIFF_SOURCE_DIR "/tests/data/";

}  // namespace

TEST_CASE("npy: reads float32 (v1.0) and float64 (v2.0) files written by numpy", "[npy]") {
  const auto f4 = data::read_npy_batch<float>(data_dir + "npy_arange_f4_2x1x3x4.npy");
  REQUIRE(shape_of(f4) == shape4{2, 1, 3, 4});
  for (std::size_t i = 0; i < f4.size(); ++i) CHECK(f4.data()[i] == static_cast<float>(i));
  CHECK(f4(1, 0, 2, 3) == 23.0f);
  CHECK(f4(0, 0, 1, 2) == 6.0f);

  const auto h = data::read_npy_header(data_dir + "npy_arange_f8_2x1x3x4_v2.npy");
  CHECK(h.major_version == 2);
  CHECK(h.dtype == data::npy_dtype::float64);
  CHECK(h.shape == std::vector<std::size_t>{2, 1, 3, 4});
  const auto f8 = data::read_npy_batch<double>(data_dir + "npy_arange_f8_2x1x3x4_v2.npy");
  for (std::size_t i = 0; i < f8.size(); ++i) CHECK(f8.data()[i] == 0.25 * static_cast<double>(i) - 3.0);

  // Converting dtype on read.
  const auto f8_as_f4 = data::read_npy_batch<float>(data_dir + "npy_arange_f8_2x1x3x4_v2.npy");
  CHECK(f8_as_f4(1, 0, 2, 3) == 2.75f);
}

TEST_CASE("npy: the writer produces numpy's exact bytes", "[npy]") {
  const test::temp_dir tmp("npy");
  const fs::path& dir = tmp.path();
  batch<float> x(shape4{2, 1, 3, 4});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i);
  data::write_npy(dir / "mine.npy", x);
  CHECK(test::read_text(dir / "mine.npy") == test::read_text(data_dir + "npy_arange_f4_2x1x3x4.npy"));
  fs::remove_all(dir);
}

TEST_CASE("npy: round trips for float, double, uint8 and any rank", "[npy]") {
  const test::temp_dir tmp("npy");
  const fs::path& dir = tmp.path();
  batch<double> x(shape4{3, 2, 5, 7});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(0.37 * static_cast<double>(i)) * 1e3;
  data::write_npy(dir / "d.npy", x);
  const auto y = data::read_npy_batch<double>(dir / "d.npy");
  REQUIRE(shape_of(y) == shape_of(x));
  CHECK(bool(y == x));
  CHECK(data::read_npy_header(dir / "d.npy").data_offset % 64 == 0);
  CHECK(fs::directory_iterator(dir) != fs::directory_iterator());
  for (const auto& entry : fs::directory_iterator(dir))  // no temporary left behind
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);

  batch<float> xf = xt::cast<float>(x);
  data::write_npy(dir / "f.npy", xf);
  CHECK(bool(data::read_npy_batch<float>(dir / "f.npy") == xf));
  CHECK(data::read_npy_header(dir / "f.npy").dtype == data::npy_dtype::float32);

  const std::vector<std::uint8_t> bytes{0, 1, 127, 128, 255, 42};
  const std::vector<std::size_t> shape1{6};
  data::write_npy<std::uint8_t>(dir / "u.npy", bytes, shape1);
  const auto u = data::read_npy<float>(dir / "u.npy");
  CHECK(u.dtype == data::npy_dtype::uint8);
  CHECK(u.shape == shape1);
  CHECK(u.data == std::vector<float>{0, 1, 127, 128, 255, 42});

  const std::vector<double> scalar{3.5};
  data::write_npy<double>(dir / "s.npy", scalar, std::span<const std::size_t>{});
  const auto s = data::read_npy<double>(dir / "s.npy");
  CHECK(s.shape.empty());
  CHECK(s.data == scalar);

  const std::vector<float> empty;
  const std::vector<std::size_t> shape0{0, 3};
  data::write_npy<float>(dir / "e.npy", empty, shape0);
  CHECK(data::read_npy<float>(dir / "e.npy").shape == shape0);

  const std::vector<std::size_t> shape6{1, 2, 1, 3, 1, 1};
  const std::vector<float> six{1, 2, 3, 4, 5, 6};
  data::write_npy<float>(dir / "r6.npy", six, shape6);
  const auto r6 = data::read_npy<double>(dir / "r6.npy");
  CHECK(r6.shape == shape6);
  CHECK(r6.data == std::vector<double>{1, 2, 3, 4, 5, 6});
  fs::remove_all(dir);
}

TEST_CASE("npy: accepts hand-made headers numpy would also read", "[npy]") {
  const test::temp_dir tmp("npy");
  const fs::path& dir = tmp.path();
  // Keys in another order, double quotes, no trailing comma, '|u1'.
  test::write_text(dir / "a.npy", craft("{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"|u1\"}", 2));
  const auto a = data::read_npy<double>(dir / "a.npy");
  CHECK(a.shape == std::vector<std::size_t>{2});
  CHECK(a.data == std::vector<double>{0, 0});
  fs::remove_all(dir);
}

TEST_CASE("npy: malformed files raise softdiff::error naming the file and the problem", "[npy]") {
  const test::temp_dir tmp("npy");
  const fs::path& dir = tmp.path();
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }";
  auto check = [&](const std::string& name, const std::string& bytes, const std::string& problem) {
    test::write_text(dir / name, bytes);
    const std::string msg = error_of([&] { (void)data::read_npy_batch<float>(dir / name); });
    INFO(msg);
    CHECK(msg.find(name) != std::string::npos);
    CHECK(msg.find(problem) != std::string::npos);
  };
  check("magic.npy", "\x93NUMPZ\x01\x00\x10\x00{}", "bad magic");
  check("short.npy", std::string("\x93NUMPY\x01", 7), "truncated .npy header");
  check("header.npy", craft(good, 16).substr(0, 40), "truncated .npy header");
  check("data.npy", craft(good, 15), "truncated .npy data");
  check("trailing.npy", craft(good, 20), "size mismatch");
  check("dtype.npy", craft("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", 16),
        "unsupported .npy dtype '>f4'");
  check("int.npy", craft("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", 32),
        "unsupported .npy dtype '<i8'");
  check("record.npy", craft("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", 16),
        "structured");
  check("fortran.npy", craft("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 2, 2), }", 16),
        "Fortran order");
  check("rank.npy", craft("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16), "expected a 4-D");
  check("nokey.npy", craft("{'descr': '<f4', 'shape': (1, 1, 2, 2), }", 16), "must name");
  check("garbage.npy", craft("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 1, 2, 2), }", 16),
        "expected True or False");
  check("shape.npy", craft("{'descr': '<f4', 'fortran_order': False, 'shape': (1, -1, 2, 2), }", 16),
        "non-negative integer");
  check("version.npy", std::string("\x93NUMPY\x07\x00\x10\x00", 10) + std::string(16, ' '), "format version 7.0");
  check("huge.npy",
        craft("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2, 2), }", 0),
        "too large");

  const std::string missing = error_of([&] { (void)data::read_npy<float>(dir / "nope.npy"); });
  CHECK(missing.find("nope.npy") != std::string::npos);
  CHECK(missing.find("no such file") != std::string::npos);
  const std::string directory = error_of([&] { (void)data::read_npy<float>(dir); });
  CHECK(directory.find("directory") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("npy: write errors name the file and leave nothing behind", "[npy]") {
  const test::temp_dir tmp("npy");
  const fs::path& dir = tmp.path();
  const std::vector<float> v{1, 2, 3};
  const std::vector<std::size_t> wrong{2, 2};
  const std::string mismatch = error_of([&] { data::write_npy<float>(dir / "w.npy", v, wrong); });
  CHECK(mismatch.find("w.npy") != std::string::npos);
  CHECK(mismatch.find("4 elements but 3") != std::string::npos);
  const std::string nodir = error_of([&] {
    const std::vector<std::size_t> ok{3};
    data::write_npy<float>(dir / "no" / "such" / "dir.npy", v, ok);
  });
  CHECK(nodir.find("dir.npy") != std::string::npos);
  CHECK(fs::is_empty(dir));
  fs::remove_all(dir);
}
