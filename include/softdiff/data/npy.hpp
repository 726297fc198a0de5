#pragma once
// NumPy .npy files (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
// the magic "\x93NUMPY", a version, a little-endian header length (2 bytes in version 1.0,
// 4 bytes in 2.0 and 3.0), an ASCII Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3, 4), }
// padded with spaces to a multiple of 64 bytes and ended by '\n', then the raw data.
//
// Reads versions 1.0, 2.0 and 3.0; writes 1.0 (2.0 only if the header cannot fit 1.0).
// dtypes: '<f4' and '<f8' (read and write) and '|u1' (read and write, values 0..255 unscaled).
// C order only. Every malformed file raises softdiff::error naming the file and the problem.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "softdiff/data/bytes.hpp"
#include "softdiff/data/output_file.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

enum class npy_dtype { float32, float64, uint8 };

/// The dtype string written in the header ('<f4', '<f8', '|u1').
[[nodiscard]] inline const char* npy_descr(npy_dtype d) {
  switch (d) {
    case npy_dtype::float32: return "<f4";
    case npy_dtype::float64: return "<f8";
    case npy_dtype::uint8: return "|u1";
  }
  return "?";
}

[[nodiscard]] inline std::size_t npy_item_size(npy_dtype d) {
  switch (d) {
    case npy_dtype::float32: return 4;
    case npy_dtype::float64: return 8;
    case npy_dtype::uint8: return 1;
  }
  return 0;
}

/// The dtype that stores T exactly (float, double or std::uint8_t).
template <class T>
[[nodiscard]] constexpr npy_dtype npy_dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::uint8_t>,
                "softdiff::data npy: element type must be float, double or std::uint8_t");
  if constexpr (std::is_same_v<T, float>) return npy_dtype::float32;
  else if constexpr (std::is_same_v<T, double>) return npy_dtype::float64;
  else return npy_dtype::uint8;
}

/// What a .npy header says.
struct npy_header {
  npy_dtype dtype = npy_dtype::float32;
  std::vector<std::size_t> shape;
  int major_version = 1;
  int minor_version = 0;
  std::size_t data_offset = 0;  // bytes from the start of the file to the data

  [[nodiscard]] std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t s : shape) n *= s;
    return n;
  }
};

/// An array read from a .npy file, converted to T; `dtype` is what the file stored.
template <class T>
struct npy_array {
  npy_dtype dtype = npy_dtype::float32;
  std::vector<std::size_t> shape;
  std::vector<T> data;  // C order
};

[[nodiscard]] inline std::string npy_shape_string(std::span<const std::size_t> shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += shape.size() == 1 ? "," : ", ";
  }
  return s + ")";
}

namespace detail {

using softdiff::detail::concat;
using softdiff::detail::require;

struct npy_file_closer {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using npy_unique_file = std::unique_ptr<std::FILE, npy_file_closer>;

[[nodiscard]] inline npy_unique_file npy_open(const std::filesystem::path& path, const char* what) {
  std::error_code ec;
  require(std::filesystem::exists(path, ec), path.string(), ": cannot read ", what, ": no such file");
  require(!std::filesystem::is_directory(path, ec), path.string(), ": cannot read ", what,
          ": it is a directory");
  npy_unique_file f(std::fopen(path.c_str(), "rb"));
  require(f != nullptr, path.string(), ": cannot open ", what, " for reading: ", std::strerror(errno));
  return f;
}

/// Parses the Python dict literal of a .npy header (only what numpy writes: string keys,
/// a string descr, True/False, a tuple of non-negative integers).
class npy_dict_parser {
public:
  npy_dict_parser(std::string_view text, const std::string& file) : s_(text), file_(file) {}

  void parse(npy_header& h) {
    bool have_descr = false, have_order = false, have_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (eat('}')) break;
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        require(peek() != '[', file_, ": structured (record) .npy dtypes are not supported; expected '<f4', '<f8' or '|u1'");
        h.dtype = dtype_from(string_literal());
        have_descr = true;
      } else if (key == "fortran_order") {
        const bool fortran = boolean();
        require(!fortran, file_, ": .npy array is in Fortran order (fortran_order: True); only C order is "
                "supported (save np.ascontiguousarray(a))");
        have_order = true;
      } else if (key == "shape") {
        h.shape = shape_tuple();
        have_shape = true;
      } else {
        fail(concat("unexpected key '", key, "'"));
      }
      skip_space();
      if (eat('}')) break;
      expect(',');
    }
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t' || s_[i_] == '\0'))
      ++i_;
    if (i_ != s_.size()) fail("unexpected text after the closing '}'");
    require(have_descr && have_order && have_shape, file_,
            ": malformed .npy header: it must name 'descr', 'fortran_order' and 'shape'");
  }

private:
  [[noreturn]] void fail(const std::string& what) const {
    throw error(concat(file_, ": malformed .npy header (", what, " at character ", i_, " of '", s_, "')"));
  }
  [[nodiscard]] char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  void expect(char c) {
    if (!eat(c)) fail(concat("expected '", c, "'"));
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++i_;
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) fail("unterminated string");
    return std::string(s_.substr(start, i_++ - start));
  }
  bool boolean() {
    if (s_.substr(i_, 4) == "True") return i_ += 4, true;
    if (s_.substr(i_, 5) == "False") return i_ += 5, false;
    fail("expected True or False");
  }
  std::vector<std::size_t> shape_tuple() {
    std::vector<std::size_t> shape;
    expect('(');
    for (;;) {
      skip_space();
      if (eat(')')) break;
      if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in the shape");
      std::size_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const std::size_t digit = static_cast<std::size_t>(s_[i_++] - '0');
        if (v > (std::numeric_limits<std::size_t>::max() - digit) / 10) fail("shape dimension too large");
        v = v * 10 + digit;
      }
      if (eat('L')) {}  // Python 2 long suffix
      shape.push_back(v);
      skip_space();
      if (eat(')')) break;
      expect(',');
    }
    return shape;
  }
  npy_dtype dtype_from(const std::string& d) const {
    if (d == "<f4") return npy_dtype::float32;
    if (d == "<f8") return npy_dtype::float64;
    if (d == "|u1" || d == "<u1" || d == "u1" || d == "B") return npy_dtype::uint8;
    throw error(concat(file_, ": unsupported .npy dtype '", d,
                       "' (supported: '<f4' float32, '<f8' float64, '|u1' uint8, little-endian)"));
  }

  std::string_view s_;
  const std::string& file_;
  std::size_t i_ = 0;
};

/// Reads and checks the header from an open file positioned at its start.
[[nodiscard]] inline npy_header npy_read_header(std::FILE* f, const std::filesystem::path& path) {
  const std::string file = path.string();
  std::error_code ec;
  const std::uintmax_t file_size = std::filesystem::file_size(path, ec);
  require(!ec, file, ": cannot get the file size: ", ec.message());

  unsigned char pre[12];
  const std::size_t got = std::fread(pre, 1, 10, f);
  require(got >= 6 && std::memcmp(pre, "\x93NUMPY", 6) == 0, file,
          ": not a .npy file (bad magic bytes; expected \\x93NUMPY)");
  require(got == 10, file, ": truncated .npy header (the file has only ", file_size, " bytes)");
  npy_header h;
  h.major_version = pre[6];
  h.minor_version = pre[7];
  std::size_t header_len = 0, preamble = 10;
  if (h.major_version == 1) {
    header_len = std::size_t{pre[8]} | (std::size_t{pre[9]} << 8);
  } else if (h.major_version == 2 || h.major_version == 3) {
    require(std::fread(pre + 10, 1, 2, f) == 2, file, ": truncated .npy header (the file has only ",
            file_size, " bytes)");
    header_len = std::size_t{pre[8]} | (std::size_t{pre[9]} << 8) | (std::size_t{pre[10]} << 16) |
                 (std::size_t{pre[11]} << 24);
    preamble = 12;
  } else {
    throw error(concat(file, ": unsupported .npy format version ", h.major_version, ".", h.minor_version,
                       " (supported: 1.0, 2.0, 3.0)"));
  }
  require(preamble + header_len <= file_size, file, ": truncated .npy header (it claims ", header_len,
          " bytes but the file has only ", file_size - preamble, " after the preamble)");
  std::string text(header_len, '\0');
  require(std::fread(text.data(), 1, header_len, f) == header_len, file, ": truncated .npy header");
  npy_dict_parser(text, file).parse(h);
  h.data_offset = preamble + header_len;

  const std::size_t item = npy_item_size(h.dtype);
  std::size_t count = 1;
  for (std::size_t s : h.shape) {
    require(s == 0 || count <= std::numeric_limits<std::size_t>::max() / item / s, file,
            ": .npy shape ", npy_shape_string(h.shape), " is too large");
    count *= s;
  }
  check_shape_indexable(h.shape, file);
  const std::uintmax_t need = static_cast<std::uintmax_t>(count) * item;
  const std::uintmax_t have = file_size - h.data_offset;
  require(have >= need, file, ": truncated .npy data: shape ", npy_shape_string(h.shape), " of ",
          npy_descr(h.dtype), " needs ", need, " bytes after the header but the file has ", have);
  require(have == need, file, ": .npy size mismatch: shape ", npy_shape_string(h.shape), " of ",
          npy_descr(h.dtype), " needs ", need, " bytes after the header but the file has ", have,
          " (trailing data)");
  return h;
}

template <class S>
[[nodiscard]] S npy_load_little_endian(const unsigned char* p) {
  S v;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof(S));
  } else {
    unsigned char r[sizeof(S)];
    for (std::size_t i = 0; i < sizeof(S); ++i) r[i] = p[sizeof(S) - 1 - i];
    std::memcpy(&v, r, sizeof(S));
  }
  return v;
}

/// Reads `count` stored elements from `f` (at the data offset) into `out`, converting to T.
template <class T>
void npy_read_data(std::FILE* f, const npy_header& h, T* out, std::size_t count, const std::string& file) {
  const std::size_t item = npy_item_size(h.dtype);
  constexpr std::size_t chunk_items = 1 << 16;
  std::vector<unsigned char> buf(std::min(count, chunk_items) * item);
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(chunk_items, count - done);
    require(std::fread(buf.data(), item, n, f) == n, file, ": truncated .npy data (read failed at element ",
            done, " of ", count, ")");
    const unsigned char* p = buf.data();
    for (std::size_t i = 0; i < n; ++i, p += item) {
      switch (h.dtype) {
        case npy_dtype::float32: out[done + i] = static_cast<T>(npy_load_little_endian<float>(p)); break;
        case npy_dtype::float64: out[done + i] = static_cast<T>(npy_load_little_endian<double>(p)); break;
        case npy_dtype::uint8: out[done + i] = static_cast<T>(*p); break;
      }
    }
    done += n;
  }
}

/// The header text for `descr` and `shape`, padded so the data starts at a multiple of 64 bytes.
[[nodiscard]] inline std::string npy_header_bytes(npy_dtype d, std::span<const std::size_t> shape) {
  std::string dict = concat("{'descr': '", npy_descr(d), "', 'fortran_order': False, 'shape': ",
                            npy_shape_string(shape), ", }");
  const bool v1 = (10 + dict.size() + 1 + 63) / 64 * 64 - 10 <= 65535;
  const std::size_t preamble = v1 ? 10 : 12;
  const std::size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - preamble - dict.size() - 1, ' ');
  dict += '\n';
  const std::size_t len = dict.size();
  std::string out = v1 ? std::string("\x93NUMPY\x01\x00", 8) : std::string("\x93NUMPY\x02\x00", 8);
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (!v1) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  return out + dict;
}

}  // namespace detail

/// Reads only the header of a .npy file (dtype, shape, version), checking that the data size matches.
[[nodiscard]] inline npy_header read_npy_header(const std::filesystem::path& path) {
  auto f = detail::npy_open(path, ".npy file");
  return detail::npy_read_header(f.get(), path);
}

/// Reads a .npy array of any rank, converting its elements to T.
template <class T>
[[nodiscard]] npy_array<T> read_npy(const std::filesystem::path& path) {
  static_assert(std::is_arithmetic_v<T>, "read_npy: T must be an arithmetic type");
  auto f = detail::npy_open(path, ".npy file");
  const npy_header h = detail::npy_read_header(f.get(), path);
  npy_array<T> a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  a.data.resize(h.size());
  detail::npy_read_data(f.get(), h, a.data.data(), a.data.size(), path.string());
  return a;
}

/// Reads a 4-D (NCHW) .npy array as a batch, converting its elements to T.
template <class T>
[[nodiscard]] batch<T> read_npy_batch(const std::filesystem::path& path) {
  auto f = detail::npy_open(path, ".npy file");
  const npy_header h = detail::npy_read_header(f.get(), path);
  softdiff::detail::require(h.shape.size() == 4, path.string(), ": expected a 4-D NCHW array, got shape ",
                  npy_shape_string(h.shape));
  batch<T> x(shape4{h.shape[0], h.shape[1], h.shape[2], h.shape[3]});
  detail::npy_read_data(f.get(), h, x.data(), x.size(), path.string());
  return x;
}

/// Writes `data` (C order, `shape`) as a version 1.0 .npy file, via a temporary file and rename.
template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, std::span<const std::size_t> shape) {
  constexpr npy_dtype dtype = npy_dtype_of<T>();
  std::size_t count = 1;
  for (std::size_t s : shape) count *= s;
  softdiff::detail::require(count == data.size(), path.string(), ": write_npy: shape ", npy_shape_string(shape), " has ",
                  count, " elements but ", data.size(), " were given");
  const std::string header = detail::npy_header_bytes(dtype, shape);

  data::detail::output_file out(path);
  const std::string tmp = out.temporary().string();
  {
    detail::npy_unique_file f(std::fopen(out.temporary().c_str(), "wb"));
    softdiff::detail::require(f != nullptr, path.string(), ": cannot create ", tmp, ": ", std::strerror(errno));
    bool ok = std::fwrite(header.data(), 1, header.size(), f.get()) == header.size();
    if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
      // an empty array's data() may be null, which fwrite must not receive
      ok = ok && (data.empty() || std::fwrite(data.data(), sizeof(T), data.size(), f.get()) == data.size());
    } else {
      for (std::size_t i = 0; ok && i < data.size(); ++i) {
        unsigned char b[sizeof(T)];
        std::memcpy(b, &data[i], sizeof(T));
        for (std::size_t k = 0; k < sizeof(T) / 2; ++k) std::swap(b[k], b[sizeof(T) - 1 - k]);
        ok = std::fwrite(b, 1, sizeof(T), f.get()) == sizeof(T);
      }
    }
    softdiff::detail::require(ok, path.string(), ": write to ", tmp, " failed: ", std::strerror(errno));
    std::FILE* raw = f.release();
    softdiff::detail::require(std::fclose(raw) == 0, path.string(), ": closing ", tmp, " failed: ", std::strerror(errno));
  }
  out.commit();
}

/// Writes a batch [N, C, H, W] as a 4-D .npy file ('<f4' for float, '<f8' for double).
template <class T>
void write_npy(const std::filesystem::path& path, const batch<T>& x) {
  const std::size_t shape[4] = {x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]};
  write_npy<T>(path, std::span<const T>(x.data(), x.size()), std::span<const std::size_t>(shape, 4));
}

}  // namespace softdiff::data
