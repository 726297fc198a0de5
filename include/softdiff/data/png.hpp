#pragma once
// PNG images <-> batches with values in [-1, 1] (libpng).
//
// Writing: 8-bit grayscale (C = 1) or RGB (C = 3); values are clamped to [-1, 1] and mapped
// to 0..255 by round((v + 1) * 127.5). One image, a grid of images, or rows of images.
// Reading: any PNG (gray, gray+alpha, RGB, RGBA, palette, 1..16 bits) becomes [1, C, H, W]
// with C = 1 for gray files and C = 3 otherwise; alpha is dropped (colour values are kept as
// stored, not composited), 16-bit samples keep their precision (v / 65535 * 2 - 1), and no
// gamma conversion is applied. Files wider or taller than 16384 pixels are refused.
//
// libpng reports errors by longjmp. Only the two small functions that call setjmp
// (detail::png_read_*_stage) run between setjmp and longjmp, and they own no object with a
// destructor, so the jump is well defined; their callers turn a failure into softdiff::error
// naming the file. Writes go through libpng's simplified API, which catches its own errors,
// into a temporary file that is renamed into place.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <png.h>

#include "softdiff/data/output_file.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

namespace detail {

/// [-1, 1] -> 0..255: round((clamp(v) + 1) * 127.5).
template <class T>
[[nodiscard]] inline std::uint8_t png_byte_of(T v) {
  const double c = std::clamp(static_cast<double>(v), -1.0, 1.0);
  return static_cast<std::uint8_t>(std::lround((c + 1.0) * 127.5));
}

/// Encodes H x W pixels of `channels` planes (CHW, starting at `src`) as an 8-bit PNG at `path`.
template <class T>
void write_png_planes(const std::filesystem::path& path, const T* src, std::size_t channels, std::size_t height,
                      std::size_t width) {
  const std::string file = path.string();
  softdiff::detail::require(channels == 1 || channels == 3, file, ": write_png: images have C = ", channels,
                            " channels; a PNG needs 1 (gray) or 3 (RGB)");
  softdiff::detail::require(height > 0 && width > 0 && height <= 0x7fffffffu && width <= 0x7fffffffu, file,
                            ": write_png: image size ", height, " x ", width, " cannot be stored in a PNG");
  const std::size_t plane = height * width;
  for (std::size_t i = 0; i < channels * plane; ++i)
    softdiff::detail::require(std::isfinite(src[i]), file, ": write_png: non-finite value ", src[i],
                              " at channel ", i / plane, ", row ", (i % plane) / width, ", column ", i % width);
  std::vector<std::uint8_t> pixels(channels * plane);
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t p = 0; p < plane; ++p) pixels[p * channels + c] = png_byte_of(src[c * plane + p]);

  output_file out(path);
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const int ok = png_image_write_to_file(&image, out.temporary().c_str(), 0, pixels.data(), 0, nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  softdiff::detail::require(ok != 0, file, ": cannot write PNG (temporary ", out.temporary().string(),
                            "): ", message.empty() ? std::strerror(errno) : message);
  out.commit();
}

/// What the read stages share with libpng's error callback.
struct png_read_state {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::FILE* file = nullptr;
  char message[256] = {};
};

inline void png_error_callback(png_structp png, png_const_charp message) {
  auto* state = static_cast<png_read_state*>(png_get_error_ptr(png));
  const char* text = message ? message : "unknown libpng error";
  if (std::strcmp(text, "Read Error") == 0) text = "unexpected end of file (Read Error)";
  std::snprintf(state->message, sizeof state->message, "%s", text);
  png_longjmp(png, 1);
}
inline void png_warning_callback(png_structp, png_const_charp) {}  // warnings are not errors; stay quiet

/// Frees libpng's structures and closes the file on every path out of read_png.
struct png_read_guard {
  png_read_state& s;
  ~png_read_guard() {
    if (s.png) png_destroy_read_struct(&s.png, s.info ? &s.info : nullptr, nullptr);
    if (s.file) std::fclose(s.file);
  }
};

/// Reads the header and sets the transforms: expand palette and low bit depths to 8 bits,
/// drop alpha, 16-bit samples in host order. No C++ object with a destructor lives here.
inline bool png_read_header_stage(png_read_state& s, png_uint_32* width, png_uint_32* height, int* channels,
                                  int* depth, int* color_type) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_init_io(s.png, s.file);
  png_set_sig_bytes(s.png, 8);
  png_set_user_limits(s.png, 1u << 14, 1u << 14);  // bounds the allocation a corrupt header can cause
  png_read_info(s.png, s.info);
  const int color = png_get_color_type(s.png, s.info);
  const int bits = png_get_bit_depth(s.png, s.info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s.png);
  if (color == PNG_COLOR_TYPE_GRAY && bits < 8) png_set_expand_gray_1_2_4_to_8(s.png);
  if ((color & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(s.png, s.info, PNG_INFO_tRNS) != 0)
    png_set_strip_alpha(s.png);
  if (bits == 16 && std::endian::native == std::endian::little) png_set_swap(s.png);  // PNG is big-endian
  png_set_interlace_handling(s.png);
  png_read_update_info(s.png, s.info);
  *width = png_get_image_width(s.png, s.info);
  *height = png_get_image_height(s.png, s.info);
  *channels = png_get_channels(s.png, s.info);
  *depth = png_get_bit_depth(s.png, s.info);
  *color_type = color;
  return true;
}

/// Decodes every row (and checks the rest of the file up to IEND).
inline bool png_read_rows_stage(png_read_state& s, png_bytepp rows) {
  if (setjmp(png_jmpbuf(s.png))) return false;
  png_read_image(s.png, rows);
  png_read_end(s.png, nullptr);
  return true;
}

}  // namespace detail

/// Writes image `index` of `images` ([N, C, H, W], C = 1 or 3, values in [-1, 1]) as a PNG.
template <class T>
void write_png(const std::filesystem::path& path, const batch<T>& images, std::size_t index) {
  const shape4 s = shape_of(images);
  softdiff::detail::require(index < s[0], path.string(), ": write_png: image index ", index,
                            " is out of range for a batch of ", s[0]);
  detail::write_png_planes(path, images.data() + index * s[1] * s[2] * s[3], s[1], s[2], s[3]);
}

/// Lays the N images out row-major in a grid of `columns` columns with `padding` pixels
/// between and around them (as torchvision's make_grid), filled with `background`.
/// Result: [1, C, rows * (H + p) + p, columns * (W + p) + p].
template <class T>
[[nodiscard]] batch<T> tile_grid(const batch<T>& images, std::size_t columns, int padding = 2,
                                 T background = T(-1)) {
  const shape4 s = shape_of(images);
  softdiff::detail::require(s[0] > 0, "tile_grid: the batch is empty");
  softdiff::detail::require(columns > 0, "tile_grid: columns must be positive");
  softdiff::detail::require(padding >= 0, "tile_grid: padding ", padding, " is negative");
  const std::size_t p = static_cast<std::size_t>(padding);
  const std::size_t cols = std::min(columns, s[0]);
  const std::size_t rows = (s[0] + cols - 1) / cols;
  const std::size_t gh = rows * (s[2] + p) + p, gw = cols * (s[3] + p) + p;
  batch<T> grid(shape4{1, s[1], gh, gw}, background);
  for (std::size_t n = 0; n < s[0]; ++n) {
    const std::size_t y0 = p + (n / cols) * (s[2] + p), x0 = p + (n % cols) * (s[3] + p);
    for (std::size_t c = 0; c < s[1]; ++c)
      for (std::size_t y = 0; y < s[2]; ++y) {
        const T* src = images.data() + ((n * s[1] + c) * s[2] + y) * s[3];
        std::copy(src, src + s[3], grid.data() + (c * gh + y0 + y) * gw + x0);
      }
  }
  return grid;
}

/// Writes all images of `images` as one PNG grid with `columns` columns (see tile_grid).
template <class T>
void write_png_grid(const std::filesystem::path& path, const batch<T>& images, std::size_t columns,
                    int padding = 2) {
  softdiff::detail::require(images.shape()[0] > 0, path.string(), ": write_png_grid: the batch is empty");
  write_png(path, tile_grid(images, columns, padding), 0);
}

/// Writes one PNG whose r-th row shows the images of rows[r] side by side (e.g. one image
/// corrupted at increasing t, one row per operator). Every row must have the same shape.
template <class T>
void write_png_rows(const std::filesystem::path& path, std::span<const batch<T>> rows, int padding = 2) {
  softdiff::detail::require(!rows.empty(), path.string(), ": write_png_rows: no rows given");
  const shape4 s = shape_of(rows[0]);
  softdiff::detail::require(s[0] > 0, path.string(), ": write_png_rows: row 0 is empty");
  for (std::size_t r = 1; r < rows.size(); ++r)
    softdiff::detail::require(shape_of(rows[r]) == s, path.string(), ": write_png_rows: row ", r, " has shape ",
                              to_string(shape_of(rows[r])), " but row 0 has ", to_string(s));
  batch<T> all(shape4{rows.size() * s[0], s[1], s[2], s[3]});
  const std::size_t per_row = s[0] * s[1] * s[2] * s[3];
  for (std::size_t r = 0; r < rows.size(); ++r)
    std::copy(rows[r].data(), rows[r].data() + per_row, all.data() + r * per_row);
  write_png_grid(path, all, s[0], padding);
}

/// Reads a PNG as [1, C, H, W] with values in [-1, 1]; C = 1 for gray files, 3 otherwise.
template <class T>
[[nodiscard]] batch<T> read_png(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::error_code ec;
  softdiff::detail::require(std::filesystem::exists(path, ec), file, ": cannot read PNG: no such file");
  softdiff::detail::require(!std::filesystem::is_directory(path, ec), file, ": cannot read PNG: it is a directory");
  detail::png_read_state s;
  detail::png_read_guard guard{s};
  s.file = std::fopen(path.c_str(), "rb");
  softdiff::detail::require(s.file != nullptr, file, ": cannot open PNG for reading: ", std::strerror(errno));
  png_byte signature[8];
  const std::size_t got = std::fread(signature, 1, 8, s.file);
  softdiff::detail::require(got == 8 && png_sig_cmp(signature, 0, 8) == 0, file,
                            ": not a PNG file (bad or missing signature)");
  s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, detail::png_error_callback,
                                 detail::png_warning_callback);
  softdiff::detail::require(s.png != nullptr, file, ": libpng could not allocate a reader");
  s.info = png_create_info_struct(s.png);
  softdiff::detail::require(s.info != nullptr, file, ": libpng could not allocate a reader");

  png_uint_32 width = 0, height = 0;
  int channels = 0, depth = 0, color = 0;
  softdiff::detail::require(detail::png_read_header_stage(s, &width, &height, &channels, &depth, &color), file,
                            ": corrupt or unreadable PNG header: ", s.message);
  softdiff::detail::require((channels == 1 || channels == 3) && (depth == 8 || depth == 16), file,
                            ": unsupported PNG layout after conversion (", channels, " channels of ", depth,
                            " bits, colour type ", color, ")");
  const std::size_t bytes_per_sample = static_cast<std::size_t>(depth) / 8;
  const std::size_t row_bytes = std::size_t{width} * static_cast<std::size_t>(channels) * bytes_per_sample;
  softdiff::detail::require(png_get_rowbytes(s.png, s.info) == row_bytes, file, ": unexpected PNG row size");
  std::vector<png_byte> pixels(row_bytes * height);
  std::vector<png_bytep> rows(height);
  for (std::size_t y = 0; y < height; ++y) rows[y] = pixels.data() + y * row_bytes;
  softdiff::detail::require(detail::png_read_rows_stage(s, rows.data()), file,
                            ": corrupt or truncated PNG data: ", s.message);

  const std::size_t C = static_cast<std::size_t>(channels), H = height, W = width;
  batch<T> image(shape4{1, C, H, W});
  T* dst = image.data();
  for (std::size_t y = 0; y < H; ++y)
    for (std::size_t x = 0; x < W; ++x)
      for (std::size_t c = 0; c < C; ++c) {
        const std::size_t k = (y * W + x) * C + c;
        double v;
        if (depth == 8) {
          v = pixels[k] / 127.5 - 1.0;
        } else {
          std::uint16_t w16;
          std::memcpy(&w16, pixels.data() + 2 * k, 2);
          v = w16 / 32767.5 - 1.0;
        }
        dst[(c * H + y) * W + x] = static_cast<T>(v);
      }
  return image;
}

}  // namespace softdiff::data
