// safetensors: writer/reader round trip, a file laid out by Python
// (tests/data/make_tiny_safetensors.py), dtype conversions, and every kind of
// malformed file the reader must reject with a message naming the file.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "softdiff/data/safetensors.hpp"
#include "softdiff/tensor.hpp"
#include "support/data_files.hpp"

using namespace softdiff;
using softdiff::test::temp_dir;
using Catch::Matchers::Contains;

namespace {

// A safetensors image with the given header text and `data_size` data bytes (value i at byte i).
std::vector<std::byte> craft(const std::string& header, std::size_t data_size, std::int64_t length_override = -1) {
  std::vector<std::byte> f(8 + header.size() + data_size);
  data::detail::store_le<std::uint64_t>(
      f.data(), length_override >= 0 ? static_cast<std::uint64_t>(length_override) : header.size());
  std::memcpy(f.data() + 8, header.data(), header.size());
  for (std::size_t i = 0; i < data_size; ++i) f[8 + header.size() + i] = static_cast<std::byte>(i);
  return f;
}

data::safetensors_file parse(const std::string& header, std::size_t data_size) {
  return data::parse_safetensors(craft(header, data_size), "crafted.safetensors");
}

}  // namespace

TEST_CASE("safetensors: write then read gives back every tensor bit for bit", "[data][safetensors]") {
  temp_dir dir("st");
  batch<float> w(shape4{2, 3, 4, 5});
  for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = std::sin(0.37f * static_cast<float>(i)) * 1e3f;
  const std::vector<double> bias{1.0 / 3.0, -std::numeric_limits<double>::denorm_min(), 1e300};
  const std::vector<std::int64_t> step{123456789012345};

  data::safetensors_writer writer;
  writer.add("net.w", w);
  writer.add("net.bias", {3}, std::span<const double>(bias));
  writer.add("scalar", {}, std::vector<float>{2.5f});
  writer.add("empty", {0, 7}, std::span<const float>());
  writer.add_bytes("step", "I64", {1}, std::as_bytes(std::span(step)));
  writer.set_metadata("format", "softdiff");
  writer.set_metadata("epoch", "12");
  const auto path = dir / "ckpt.safetensors";
  writer.write(path);
  writer.write(path);  // overwriting an existing file goes through the same rename

  // Only the final file is left: the temporary was renamed, not copied.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
  const auto raw = softdiff::test::read_bytes(path);
  const auto header_len = data::detail::load_le<std::uint64_t>(raw.data());
  CHECK((8 + header_len) % 8 == 0);  // data section aligned to 8 bytes
  CHECK(raw[8] == '{');

  const auto f = data::read_safetensors(path);
  CHECK(f.path == path.string());
  CHECK(f.tensors.size() == 5);
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "softdiff"}, {"epoch", "12"}});
  const auto& tw = f.at("net.w");
  CHECK(tw.dtype == "F32");
  CHECK(tw.shape == std::vector<std::size_t>{2, 3, 4, 5});
  const auto back = tw.values<float>();
  REQUIRE(back.size() == w.size());
  CHECK(std::memcmp(back.data(), w.data(), w.size() * sizeof(float)) == 0);
  const auto as_batch = tw.to_xtensor<float, 4>();
  CHECK(bool(as_batch == w));
  CHECK(tw.values<double>()[7] == static_cast<double>(w.data()[7]));

  CHECK(f.at("net.bias").dtype == "F64");
  CHECK(f.at("net.bias").values<double>() == bias);
  CHECK(f.at("scalar").shape.empty());
  CHECK(f.at("scalar").element_count() == 1);
  CHECK(f.at("scalar").values<float>() == std::vector<float>{2.5f});
  CHECK(f.at("empty").shape == std::vector<std::size_t>{0, 7});
  CHECK(f.at("empty").values<float>().empty());
  CHECK(f.at("step").values<std::int64_t>() == step);

  REQUIRE_THROWS_WITH(f.at("net.v"), Contains(path.string()) && Contains("no tensor 'net.v'") &&
                                         Contains("net.bias, net.w, scalar, step"));
  REQUIRE_THROWS_WITH((tw.to_xtensor<float, 2>()), Contains("rank 4, expected rank 2"));
}

TEST_CASE("safetensors: reads the file Python wrote with json + struct", "[data][safetensors]") {
  const std::filesystem::path path = std::filesystem::path(SOFTDIFF_SOURCE_DIR) / "tests/data/tiny.safetensors";
  const auto f = data::read_safetensors(path);
  CHECK(f.metadata == std::map<std::string, std::string>{
                          {"format", "pt"}, {"producer", "make_tiny_safetensors.py"}, {"note", "sigma \u03c3"}});
  CHECK(f.tensors.size() == 6);

  const auto& w = f.at("conv.weight");
  CHECK(w.dtype == "F32");
  CHECK(w.shape == std::vector<std::size_t>{2, 1, 2, 2});
  std::vector<float> expected_w;
  for (int i = 0; i < 8; ++i) expected_w.push_back(0.5f * static_cast<float>(i) - 1.0f);
  CHECK(w.values<float>() == expected_w);
  CHECK(w.to_xtensor<double, 4>()(1, 0, 1, 0) == 2.0);

  CHECK(f.at("conv.bias").dtype == "F64");
  CHECK(f.at("conv.bias").values<double>() == std::vector<double>{3.141592653589793, -2.5e-300});
  CHECK(f.at("scale").shape.empty());
  CHECK(f.at("scale").values<float>() == std::vector<float>{1.25f});
  CHECK(f.at("half").dtype == "F16");
  CHECK(f.at("half").values<float>() == std::vector<float>{1.0f, -0.5f, 65504.0f});
  CHECK(f.at("steps").values<std::int64_t>() == std::vector<std::int64_t>{-3, std::int64_t{1} << 40});
  CHECK(f.at("steps").values<double>() == std::vector<double>{-3.0, 1099511627776.0});
  CHECK(f.at("empty").shape == std::vector<std::size_t>{0, 4});
  CHECK(f.at("empty").bytes.empty());
}

TEST_CASE("safetensors: half, bfloat16 and integer dtypes convert exactly", "[data][safetensors]") {
  using data::detail::half_to_float;
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc000) == -2.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(data::detail::bfloat16_to_float(0x3fc0) == 1.5f);

  const std::string header =
      R"({"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"u":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
      R"("i":{"dtype":"I16","shape":[1],"data_offsets":[4,6]},"t":{"dtype":"BOOL","shape":[2],"data_offsets":[6,8]}})";
  auto file = craft(header, 8);
  const std::size_t d = 8 + header.size();
  file[d + 0] = std::byte{0xc0};  // BF16 0x3fc0 little-endian
  file[d + 1] = std::byte{0x3f};
  file[d + 4] = std::byte{0xfe};  // I16 -2
  file[d + 5] = std::byte{0xff};
  file[d + 6] = std::byte{0};
  file[d + 7] = std::byte{5};
  const auto f = data::parse_safetensors(file, "dtypes");
  CHECK(f.at("b").values<float>() == std::vector<float>{1.5f});
  CHECK(f.at("u").values<int>() == std::vector<int>{2, 3});
  CHECK(f.at("i").values<double>() == std::vector<double>{-2.0});
  CHECK(f.at("t").values<int>() == std::vector<int>{0, 1});
}

TEST_CASE("safetensors_writer rejects bad tensors and leaves no file behind on failure", "[data][safetensors]") {
  data::safetensors_writer w;
  w.add("a", {2}, std::vector<float>{1, 2});
  REQUIRE_THROWS_WITH(w.add("a", {1}, std::vector<float>{1}), Contains("'a' added twice"));
  REQUIRE_THROWS_WITH(w.add("__metadata__", {1}, std::vector<float>{1}), Contains("reserved"));
  REQUIRE_THROWS_WITH(w.add("", {1}, std::vector<float>{1}), Contains("empty tensor name"));
  REQUIRE_THROWS_WITH(w.add("b", {2, 2}, std::vector<float>{1, 2, 3}), Contains("'b' of shape [2, 2] needs 4 values, got 3"));
  REQUIRE_THROWS_WITH(w.add("c", {2}, std::vector<double>{1, std::nan("")}),
                      Contains("'c' has non-finite value") && Contains("flat index 1"));
  const std::vector<std::byte> two(2);
  REQUIRE_THROWS_WITH(w.add_bytes("d", "F8_E4M3", {2}, two), Contains("unsupported dtype 'F8_E4M3'"));
  REQUIRE_THROWS_WITH(w.add_bytes("d", "F32", {2}, two), Contains("needs 8 bytes, got 2"));
  CHECK(w.size() == 1);

  temp_dir dir("st-w");
  const auto target = dir / "missing-dir" / "x.safetensors";
  REQUIRE_THROWS_WITH(w.write(target), Contains(target.string()));
  CHECK_FALSE(std::filesystem::exists(target));
}

TEST_CASE("safetensors: malformed files raise errors naming the file and the problem", "[data][safetensors]") {
  const std::string ok = R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  CHECK(parse(ok, 24).at("x").element_count() == 6);  // the baseline the cases below break

  SECTION("length field and header") {
    REQUIRE_THROWS_WITH(data::parse_safetensors(std::vector<std::byte>(5), "f5"),
                        Contains("'f5' is truncated: 5 bytes, fewer than the 8-byte header length"));
    REQUIRE_THROWS_WITH(data::parse_safetensors(craft(ok, 24, 1000), "big"),
                        Contains("'big'") && Contains("header length 1000 is larger than the"));
    REQUIRE_THROWS_WITH(data::parse_safetensors(craft(ok, 24, 0), "zero"), Contains("header length is 0"));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"F32",)", 0), Contains("crafted.safetensors") && Contains("not valid JSON"));
    REQUIRE_THROWS_WITH(parse("[1,2]", 0), Contains("header is a JSON array, expected an object"));
    REQUIRE_THROWS_WITH(parse(R"({"__metadata__":{"k":3}})", 0), Contains("__metadata__ value of 'k'"));
    REQUIRE_THROWS_WITH(parse(R"({"__metadata__":[]})", 0), Contains("__metadata__ is a JSON array"));
  }
  SECTION("tensor entries") {
    REQUIRE_THROWS_WITH(parse(R"({"x":5})", 0), Contains("tensor 'x' is a JSON number"));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", 4), Contains("'x' has no string \"dtype\""));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", 4), Contains("no array \"shape\""));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), Contains("data_offsets"));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}})", 4),
                        Contains("tensor 'x' has unsupported dtype 'Q4'") && Contains("supported: F64, F32"));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                        Contains("shape entry -1"));
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
                        Contains("begin after end"));
  }
  SECTION("offsets against shapes and the data section") {
    REQUIRE_THROWS_WITH(parse(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20),
                        Contains("shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] span 20"));
    REQUIRE_THROWS_WITH(parse(ok, 16), Contains("past the end of the 16-byte data section"));
    REQUIRE_THROWS_WITH(
        parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
        Contains("'a' [0, 8] and 'b' [4, 12] overlap"));
    REQUIRE_THROWS_WITH(
        parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
        Contains("bytes [4, 8) of the data section belong to no tensor"));
    REQUIRE_THROWS_WITH(parse(ok, 30), Contains("has 30 bytes but the tensors cover only 24"));
  }
  SECTION("a truncated copy of a real file") {
    temp_dir dir("st-bad");
    const auto src = std::filesystem::path(SOFTDIFF_SOURCE_DIR) / "tests/data/tiny.safetensors";
    auto bytes = softdiff::test::read_bytes(src);
    bytes.resize(bytes.size() - 2);
    softdiff::test::write_bytes(dir / "cut.safetensors", bytes);
    REQUIRE_THROWS_WITH(data::read_safetensors(dir / "cut.safetensors"),
                        Contains((dir / "cut.safetensors").string()) && Contains("tensor 'half'") &&
                            Contains("past the end"));
    bytes.resize(100);
    softdiff::test::write_bytes(dir / "head.safetensors", bytes);
    REQUIRE_THROWS_WITH(data::read_safetensors(dir / "head.safetensors"), Contains("is larger than"));
    REQUIRE_THROWS_WITH(data::read_safetensors(dir / "none.safetensors"), Contains("does not exist"));
  }
}

TEST_CASE("safetensors: every truncation and every byte flip of a real file is caught or harmless",
          "[data][safetensors]") {
  const auto src = std::filesystem::path(SOFTDIFF_SOURCE_DIR) / "tests/data/tiny.safetensors";
  const auto raw = softdiff::test::read_bytes(src);
  std::vector<std::byte> file(raw.size());
  std::memcpy(file.data(), raw.data(), raw.size());
  for (std::size_t n = 0; n < file.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(data::parse_safetensors(std::span(file).first(n), "prefix"), softdiff::error);
  }
  // A flipped byte either still parses (a changed value) or throws softdiff::error; nothing else escapes.
  std::size_t rejected = 0;
  for (std::size_t i = 0; i < file.size(); ++i) {
    auto bad = file;
    bad[i] ^= std::byte{0x24};
    try {
      (void)data::parse_safetensors(bad, "flipped");
    } catch (const softdiff::error&) {
      ++rejected;
    } catch (...) {
      FAIL("byte " << i << ": an exception other than softdiff::error escaped");
    }
  }
  CHECK(rejected > 100);  // the header (464 bytes) is mostly structure
}
