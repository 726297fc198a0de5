#pragma once
// Byte-level helpers shared by softdiff's file readers and writers: endian-explicit
// loads and stores, overflow-checked sizes and whole-file reads.
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "softdiff/error.hpp"

namespace softdiff::data::detail {

using softdiff::detail::concat;
using softdiff::detail::require;

/// Little-endian load of an arithmetic T from unaligned memory.
template <class T>
[[nodiscard]] T load_le(const void* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::array<unsigned char, sizeof(T)> b{};
  std::memcpy(b.data(), p, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(b.begin(), b.end());
  return std::bit_cast<T>(b);
}

/// Little-endian store of an arithmetic T to unaligned memory.
template <class T>
void store_le(void* p, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  auto b = std::bit_cast<std::array<unsigned char, sizeof(T)>>(v);
  if constexpr (std::endian::native == std::endian::big) std::reverse(b.begin(), b.end());
  std::memcpy(p, b.data(), sizeof(T));
}

/// Big-endian 32-bit integer at p (IDX stores its dimensions this way).
[[nodiscard]] inline std::uint32_t load_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

/// a * b, or an error naming `what` when the product does not fit in size_t.
[[nodiscard]] inline std::size_t checked_mul(std::size_t a, std::size_t b, std::string_view what) {
  require(b == 0 || a <= SIZE_MAX / b, what, ": size ", a, " x ", b, " overflows");
  return a * b;
}

/// "[2, 1, 28, 28]": a shape for messages.
[[nodiscard]] inline std::string shape_text(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// Refuses a shape that a tensor could not index, naming `what`: xtensor's strides multiply the
/// dimensions in ptrdiff_t whatever they are, so even an empty array (a zero dimension) must have
/// the product of its other dimensions within PTRDIFF_MAX elements.
inline void check_shape_indexable(std::span<const std::size_t> shape, std::string_view what) {
  std::size_t product = 1;
  for (const std::size_t d : shape) {
    const std::size_t f = d == 0 ? 1 : d;
    require(product <= static_cast<std::size_t>(PTRDIFF_MAX) / f, what, ": shape ", shape_text(shape),
            " is too large to index (its dimensions, zeros counted as one, multiply past 2^63)");
    product *= f;
  }
}

/// The lookup table u8 -> x / 127.5 - 1, mapping [0, 255] onto [-1, 1] exactly at both ends.
template <class T>
[[nodiscard]] std::array<T, 256> unit_range_table() {
  std::array<T, 256> t{};
  for (int v = 0; v < 256; ++v) t[static_cast<std::size_t>(v)] = static_cast<T>(v / 127.5 - 1.0);
  return t;
}

/// The whole file as bytes; `reader` names the caller in messages.
[[nodiscard]] inline std::vector<std::byte> read_whole_file(const std::filesystem::path& path,
                                                            std::string_view reader) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  require(std::filesystem::exists(st), reader, ": file '", path.string(), "' does not exist");
  require(std::filesystem::is_regular_file(st), reader, ": '", path.string(), "' is not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  require(!ec, reader, ": cannot get the size of '", path.string(), "': ", ec.message());
  std::ifstream in(path, std::ios::binary);
  require(in.is_open(), reader, ": cannot open '", path.string(), "': ", std::strerror(errno));
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  require(static_cast<std::uintmax_t>(in.gcount()) == size, reader, ": could read only ", in.gcount(), " of the ",
          size, " bytes of '", path.string(), "'");
  return bytes;
}

}  // namespace softdiff::data::detail
