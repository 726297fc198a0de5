#pragma once
// The safetensors file format: read (safetensors_file / read_safetensors) and
// write (safetensors_writer), checkpoints and weights exchangeable with the
// Python `safetensors` package.
//
// Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// (trailing spaces allowed, used to align the data to 8 bytes), then the data
// section: each tensor's elements row-major, little-endian, at [begin, end)
// relative to the section's start. As in the reference implementation, the
// tensors must tile the data section exactly: no overlap, no gap, no trailing bytes.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "softdiff/data/bytes.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/data/output_file.hpp"
#include "softdiff/error.hpp"

namespace softdiff::data {
namespace detail {

inline constexpr std::string_view supported_dtypes = "F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL";

/// Bytes per element of a safetensors dtype; 0 for a dtype softdiff does not read.
[[nodiscard]] inline std::size_t dtype_size(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

[[nodiscard]] inline std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// IEEE 754 binary16 to binary32 (exact: every half is a float).
[[nodiscard]] inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float m = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -m : m;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));  // rebias 15 -> 127
}

/// bfloat16 is the upper half of a binary32.
[[nodiscard]] inline float bfloat16_to_float(std::uint16_t b) {
  return std::bit_cast<float>(std::uint32_t{b} << 16);
}

/// Converts n little-endian elements of `dtype` at src to T by static_cast.
template <class T>
void convert_elements(std::string_view dtype, const std::byte* src, std::size_t n, T* dst) {
  auto each = [&]<class S>(auto&& to_value) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<T>(to_value(load_le<S>(src + i * sizeof(S))));
  };
  auto same = [](auto v) { return v; };
  if (dtype == "F32") each.template operator()<float>(same);
  else if (dtype == "F64") each.template operator()<double>(same);
  else if (dtype == "F16") each.template operator()<std::uint16_t>(half_to_float);
  else if (dtype == "BF16") each.template operator()<std::uint16_t>(bfloat16_to_float);
  else if (dtype == "I64") each.template operator()<std::int64_t>(same);
  else if (dtype == "I32") each.template operator()<std::int32_t>(same);
  else if (dtype == "I16") each.template operator()<std::int16_t>(same);
  else if (dtype == "I8") each.template operator()<std::int8_t>(same);
  else if (dtype == "U64") each.template operator()<std::uint64_t>(same);
  else if (dtype == "U32") each.template operator()<std::uint32_t>(same);
  else if (dtype == "U16") each.template operator()<std::uint16_t>(same);
  else if (dtype == "U8") each.template operator()<std::uint8_t>(same);
  else if (dtype == "BOOL") each.template operator()<std::uint8_t>([](std::uint8_t v) { return v != 0 ? 1 : 0; });
  else throw error(concat("safetensors: cannot convert dtype '", dtype, "' (supported: ", supported_dtypes, ")"));
}

}  // namespace detail

/// One tensor of a safetensors file: its dtype name ("F32", "F64", "I64", ...), shape
/// (empty for a scalar) and raw little-endian bytes.
struct safetensor {
  std::string dtype;
  std::vector<std::size_t> shape;
  std::vector<std::byte> bytes;

  /// Product of the shape (1 for a scalar).
  [[nodiscard]] std::size_t element_count() const {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }

  /// The elements converted to T by static_cast (F16 and BF16 through float, BOOL as 0 / 1).
  template <class T>
  [[nodiscard]] std::vector<T> values() const {
    static_assert(std::is_arithmetic_v<T>, "safetensor::values<T> needs an arithmetic T");
    std::vector<T> out(element_count());
    detail::convert_elements(dtype, bytes.data(), out.size(), out.data());
    return out;
  }

  /// The tensor as an xtensor of rank N; throws unless the file's rank is N.
  template <class T, std::size_t N>
  [[nodiscard]] xt::xtensor<T, N> to_xtensor() const {
    softdiff::detail::require(shape.size() == N, "safetensors: tensor of shape ", detail::shape_string(shape),
                              " has rank ", shape.size(), ", expected rank ", N);
    std::array<std::size_t, N> s{};
    std::copy(shape.begin(), shape.end(), s.begin());
    xt::xtensor<T, N> out(s);
    detail::convert_elements(dtype, bytes.data(), out.size(), out.data());
    return out;
  }
};

/// The tensors and metadata of one safetensors file.
struct safetensors_file {
  std::string path;                              // where it was read from (for messages)
  std::map<std::string, safetensor> tensors;     // by name
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent

  [[nodiscard]] bool contains(std::string_view name) const { return tensors.find(std::string(name)) != tensors.end(); }

  /// The tensor called `name`; a missing name throws listing the names the file has.
  [[nodiscard]] const safetensor& at(std::string_view name) const {
    const auto it = tensors.find(std::string(name));
    if (it != tensors.end()) return it->second;
    std::string have;
    for (const auto& [k, v] : tensors) have += (have.empty() ? "" : ", ") + k;
    throw error(softdiff::detail::concat("safetensors: '", path, "' has no tensor '", name, "' (it has: ",
                                         have.empty() ? "none" : have, ")"));
  }
};

/// Parses a whole safetensors image held in memory; `source` names it in error messages.
[[nodiscard]] inline safetensors_file parse_safetensors(std::span<const std::byte> file, const std::string& source) {
  using softdiff::detail::concat;
  using softdiff::detail::require;
  const std::string where = concat("safetensors: '", source, "'");
  require(file.size() >= 8, where, " is truncated: ", file.size(), " bytes, fewer than the 8-byte header length");
  const std::uint64_t header_len = detail::load_le<std::uint64_t>(file.data());
  require(header_len > 0, where, ": header length is 0");
  require(header_len <= file.size() - 8, where, ": header length ", header_len, " is larger than the ",
          file.size() - 8, " bytes after the length field (truncated file, or not a safetensors file)");
  const auto* text = reinterpret_cast<const char*>(file.data() + 8);
  const auto data = file.subspan(8 + static_cast<std::size_t>(header_len));

  const nlohmann::json header = parse_json(text, text + header_len, concat(where, ": header"));
  require(header.is_object(), where, ": header is a JSON ", header.type_name(), ", expected an object");

  safetensors_file out;
  out.path = source;
  struct span_of {
    std::string name;
    std::uint64_t begin, end;
  };
  std::vector<span_of> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      require(entry.is_object(), where, ": __metadata__ is a JSON ", entry.type_name(), ", expected an object");
      for (const auto& [key, value] : entry.items()) {
        require(value.is_string(), where, ": __metadata__ value of '", key, "' is a JSON ", value.type_name(),
                ", expected a string");
        out.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    const std::string what = concat(where, " tensor '", name, "'");
    require(entry.is_object(), what, " is a JSON ", entry.type_name(), ", expected an object");
    require(entry.contains("dtype") && entry["dtype"].is_string(), what, " has no string \"dtype\"");
    require(entry.contains("shape") && entry["shape"].is_array(), what, " has no array \"shape\"");
    require(entry.contains("data_offsets") && entry["data_offsets"].is_array() && entry["data_offsets"].size() == 2,
            what, " has no \"data_offsets\" pair [begin, end]");
    safetensor t;
    t.dtype = entry["dtype"].get<std::string>();
    const std::size_t elem = detail::dtype_size(t.dtype);
    require(elem != 0, what, " has unsupported dtype '", t.dtype, "' (supported: ", detail::supported_dtypes, ")");
    std::size_t count = 1;
    for (const auto& d : entry["shape"]) {
      SOFTDIFF_REQUIRE(d.is_number_unsigned(), what, " has shape entry ", json_excerpt(d), ", expected a non-negative integer");
      t.shape.push_back(d.get<std::size_t>());
      count = detail::checked_mul(count, t.shape.back(), what);
    }
    const auto& off = entry["data_offsets"];
    SOFTDIFF_REQUIRE(off[0].is_number_unsigned() && off[1].is_number_unsigned(), what, " has data_offsets ",
                     json_excerpt(off), ", expected two non-negative integers");
    const auto begin = off[0].get<std::uint64_t>(), end = off[1].get<std::uint64_t>();
    require(begin <= end, what, " has data_offsets [", begin, ", ", end, "] with begin after end");
    require(end <= data.size(), what, " has data_offsets [", begin, ", ", end, "] past the end of the ", data.size(),
            "-byte data section (truncated file?)");
    const std::size_t nbytes = detail::checked_mul(count, elem, what);
    require(end - begin == nbytes, what, ": shape ", detail::shape_string(t.shape), " of ", t.dtype, " needs ",
            nbytes, " bytes but data_offsets [", begin, ", ", end, "] span ", end - begin);
    const auto* p = data.data() + begin;
    t.bytes.assign(p, p + nbytes);
    spans.push_back({name, begin, end});
    out.tensors.emplace(name, std::move(t));
  }

  // The tensors must tile [0, data.size()) exactly, as the reference implementation requires.
  std::sort(spans.begin(), spans.end(),
            [](const span_of& a, const span_of& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::uint64_t covered = 0;
  const span_of* previous = nullptr;
  for (const auto& s : spans) {
    require(s.begin >= covered, where, ": tensors '", previous ? previous->name : "", "' [", previous ? previous->begin : 0,
            ", ", covered, "] and '", s.name, "' [", s.begin, ", ", s.end, "] overlap");
    require(s.begin == covered, where, ": bytes [", covered, ", ", s.begin,
            ") of the data section belong to no tensor (gap before '", s.name, "')");
    covered = s.end;
    previous = &s;
  }
  require(covered == data.size(), where, ": the data section has ", data.size(), " bytes but the tensors cover only ",
          covered, " (trailing bytes)");
  return out;
}

/// Reads and validates a safetensors file; any malformation throws softdiff::error naming the file.
[[nodiscard]] inline safetensors_file read_safetensors(const std::filesystem::path& path) {
  const auto bytes = detail::read_whole_file(path, "safetensors");
  return parse_safetensors(bytes, path.string());
}

/// Collects named tensors and metadata, then writes one safetensors file
/// (to a temporary name in the target's directory, renamed into place).
class safetensors_writer {
public:
  /// Adds a tensor of F32 data; `values` are row-major with the product of `shape` elements.
  void add(const std::string& name, std::vector<std::size_t> shape, std::span<const float> values) {
    add_values(name, std::move(shape), values, "F32");
  }
  /// Adds a tensor of F64 data.
  void add(const std::string& name, std::vector<std::size_t> shape, std::span<const double> values) {
    add_values(name, std::move(shape), values, "F64");
  }
  /// Adds an xtensor (float -> F32, double -> F64) with its own shape.
  template <class T, std::size_t N>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  void add(const std::string& name, const xt::xtensor<T, N>& t) {
    add(name, std::vector<std::size_t>(t.shape().begin(), t.shape().end()), std::span<const T>(t.data(), t.size()));
  }
  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  void add(const std::string& name, const xt::xarray<T>& t) {
    add(name, std::vector<std::size_t>(t.shape().begin(), t.shape().end()), std::span<const T>(t.data(), t.size()));
  }
  /// Adds a tensor of any supported dtype from its raw little-endian bytes.
  void add_bytes(const std::string& name, const std::string& dtype, std::vector<std::size_t> shape,
                 std::span<const std::byte> bytes) {
    check_name(name);
    const std::size_t elem = detail::dtype_size(dtype);
    softdiff::detail::require(elem != 0, "safetensors_writer: tensor '", name, "' has unsupported dtype '", dtype,
                              "' (supported: ", detail::supported_dtypes, ")");
    const std::size_t n = element_count(name, shape);
    softdiff::detail::require(bytes.size() == detail::checked_mul(n, elem, name), "safetensors_writer: tensor '", name,
                              "' of shape ", detail::shape_string(shape), " and dtype ", dtype, " needs ", n * elem,
                              " bytes, got ", bytes.size());
    entries_.push_back({name, dtype, std::move(shape), std::vector<std::byte>(bytes.begin(), bytes.end())});
  }

  /// Sets a "__metadata__" entry (string to string, as the format requires).
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return metadata_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }

  /// The whole file: length, JSON header padded with spaces to an 8-byte boundary, data.
  [[nodiscard]] std::vector<std::byte> serialize() const {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
      auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
      for (const auto& [k, v] : metadata_) m[k] = v;
    }
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
      offset += e.bytes.size();
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception& e) {
      throw error(softdiff::detail::concat("safetensors_writer: cannot encode the header (names and metadata must be "
                                           "valid UTF-8): ", e.what()));
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    std::vector<std::byte> out(8 + text.size() + offset);
    detail::store_le<std::uint64_t>(out.data(), text.size());
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::byte* dst = out.data() + 8 + text.size();
    for (const auto& e : entries_) dst = std::copy(e.bytes.begin(), e.bytes.end(), dst);
    return out;
  }

  /// Writes the file: to `<path>.tmp.<pid>.<n>` first, renamed onto `path` once complete,
  /// so a failure never leaves a half-written file under the final name.
  void write(const std::filesystem::path& path) const {
    const auto bytes = serialize();
    detail::output_file file(path);
    {
      std::ofstream out(file.temporary(), std::ios::binary | std::ios::trunc);
      softdiff::detail::require(out.is_open(), "safetensors_writer: cannot create '", file.temporary().string(),
                                "' to write '", path.string(), "': ", std::strerror(errno));
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      out.close();
      softdiff::detail::require(!out.fail(), "safetensors_writer: writing '", file.temporary().string(),
                                "' for '", path.string(), "' failed: ", std::strerror(errno));
    }
    file.commit();
  }

private:
  struct entry {
    std::string name, dtype;
    std::vector<std::size_t> shape;
    std::vector<std::byte> bytes;
  };

  void check_name(const std::string& name) const {
    softdiff::detail::require(!name.empty(), "safetensors_writer: empty tensor name");
    softdiff::detail::require(name != "__metadata__", "safetensors_writer: '__metadata__' is reserved, not a tensor name");
    for (const auto& e : entries_)
      softdiff::detail::require(e.name != name, "safetensors_writer: tensor '", name, "' added twice");
  }
  static std::size_t element_count(const std::string& name, const std::vector<std::size_t>& shape) {
    std::size_t n = 1;
    for (auto d : shape) n = detail::checked_mul(n, d, "safetensors_writer: tensor '" + name + "'");
    return n;
  }
  template <class T>
  void add_values(const std::string& name, std::vector<std::size_t> shape, std::span<const T> values,
                  const char* dtype) {
    check_name(name);
    const std::size_t n = element_count(name, shape);
    softdiff::detail::require(values.size() == n, "safetensors_writer: tensor '", name, "' of shape ",
                              detail::shape_string(shape), " needs ", n, " values, got ", values.size());
    // A diverged model must not overwrite a good checkpoint with NaNs.
    for (std::size_t i = 0; i < n; ++i)
      softdiff::detail::require(std::isfinite(values[i]), "safetensors_writer: tensor '", name,
                                "' has non-finite value ", values[i], " at flat index ", i);
    std::vector<std::byte> bytes(n * sizeof(T));
    for (std::size_t i = 0; i < n; ++i) detail::store_le<T>(bytes.data() + i * sizeof(T), values[i]);
    entries_.push_back({name, dtype, std::move(shape), std::move(bytes)});
  }

  std::vector<entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace softdiff::data
