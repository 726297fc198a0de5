#pragma once
// A small RGB canvas for softdiff's plots (data/plot.hpp): filled rectangles, thick solid or
// dashed polylines, square markers and text in the 5 x 8 bitmap font (detail/bitmap_font.hpp),
// horizontal or turned 90 degrees anticlockwise, each clipped to a rectangle.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "softdiff/data/detail/bitmap_font.hpp"

namespace softdiff::data::detail {

struct rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const rgb&, const rgb&) = default;
};

/// Pixel rectangle [x0, x1) x [y0, y1).
struct pixel_box {
  long x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  [[nodiscard]] bool contains(long x, long y) const { return x >= x0 && x < x1 && y >= y0 && y < y1; }
};

class canvas {
public:
  canvas(std::size_t width, std::size_t height, rgb background)
      : width_(width), height_(height), pixels_(width * height, background) {}

  [[nodiscard]] std::size_t width() const { return width_; }
  [[nodiscard]] std::size_t height() const { return height_; }
  [[nodiscard]] pixel_box bounds() const { return {0, 0, static_cast<long>(width_), static_cast<long>(height_)}; }
  [[nodiscard]] rgb at(std::size_t x, std::size_t y) const { return pixels_[y * width_ + x]; }

  void set(long x, long y, rgb c, const pixel_box& clip) {
    if (clip.contains(x, y) && bounds().contains(x, y))
      pixels_[static_cast<std::size_t>(y) * width_ + static_cast<std::size_t>(x)] = c;
  }

  void fill(const pixel_box& box, rgb c) {
    for (long y = box.y0; y < box.y1; ++y)
      for (long x = box.x0; x < box.x1; ++x) set(x, y, c, bounds());
  }

  /// The outline of `box`, `thickness` pixels wide, inside it.
  void frame(const pixel_box& box, rgb c, long thickness = 1) {
    fill({box.x0, box.y0, box.x1, box.y0 + thickness}, c);
    fill({box.x0, box.y1 - thickness, box.x1, box.y1}, c);
    fill({box.x0, box.y0, box.x0 + thickness, box.y1}, c);
    fill({box.x1 - thickness, box.y0, box.x1, box.y1}, c);
  }

  /// A square of side 2 * half + 1 centred on (x, y).
  void square(double x, double y, long half, rgb c, const pixel_box& clip) {
    const long cx = std::lround(x), cy = std::lround(y);
    for (long dy = -half; dy <= half; ++dy)
      for (long dx = -half; dx <= half; ++dx) set(cx + dx, cy + dy, c, clip);
  }

  /// A polyline through (xs[k], ys[k]), `width` pixels thick. Dashed: `dash` pixels drawn, then
  /// `gap` pixels left blank, measured along the line, the pattern continuing across vertices.
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, rgb c, long width, bool dashed,
                const pixel_box& clip, double dash = 10, double gap = 7) {
    const long lo = -(width - 1) / 2, hi = width / 2;
    auto stamp = [&](double x, double y, double along) {
      if (dashed && std::fmod(along, dash + gap) >= dash) return;
      const long cx = std::lround(x), cy = std::lround(y);
      for (long dy = lo; dy <= hi; ++dy)
        for (long dx = lo; dx <= hi; ++dx) set(cx + dx, cy + dy, c, clip);
    };
    if (xs.size() == 1) stamp(xs[0], ys[0], 0.0);
    double travelled = 0;
    for (std::size_t k = 1; k < xs.size(); ++k) {
      const double dx = xs[k] - xs[k - 1], dy = ys[k] - ys[k - 1];
      const double length = std::hypot(dx, dy);
      const auto samples = static_cast<std::size_t>(std::ceil(length * 2.0));  // half-pixel steps
      for (std::size_t s = 0; s <= samples; ++s) {
        const double u = samples == 0 ? 0.0 : static_cast<double>(s) / static_cast<double>(samples);
        stamp(xs[k - 1] + u * dx, ys[k - 1] + u * dy, travelled + u * length);
      }
      travelled += length;
    }
  }

  /// Text with its top-left corner at (x, y), each font pixel drawn as scale x scale pixels.
  void text(long x, long y, const std::string& s, rgb c, long scale) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      const glyph& g = glyph_of(s[i]);
      const long left = x + static_cast<long>(i) * glyph_advance * scale;
      for (int row = 0; row < glyph_height; ++row)
        for (int col = 0; col < glyph_width; ++col)
          if ((g[static_cast<std::size_t>(row)] >> (glyph_width - 1 - col)) & 1)
            fill({left + col * scale, y + row * scale, left + (col + 1) * scale, y + (row + 1) * scale}, c);
    }
  }

  /// Text turned 90 degrees anticlockwise (read bottom to top), its bounding box's top-left at (x, y).
  void text_up(long x, long y, const std::string& s, rgb c, long scale) {
    const long length = text_width(s, scale);
    for (std::size_t i = 0; i < s.size(); ++i) {
      const glyph& g = glyph_of(s[i]);
      const long along = static_cast<long>(i) * glyph_advance * scale;  // distance from the string's start
      for (int row = 0; row < glyph_height; ++row)
        for (int col = 0; col < glyph_width; ++col)
          if ((g[static_cast<std::size_t>(row)] >> (glyph_width - 1 - col)) & 1) {
            const long px = x + row * scale, py = y + length - along - (col + 1) * scale;
            fill({px, py, px + scale, py + scale}, c);
          }
    }
  }

  [[nodiscard]] static long text_width(const std::string& s, long scale) {
    return s.empty() ? 0 : (static_cast<long>(s.size()) * glyph_advance - 1) * scale;
  }
  [[nodiscard]] static long text_height(long scale) { return glyph_height * scale; }

  /// Channel planes (R, G, B) with values in [-1, 1] as data::detail::write_png_planes takes
  /// them: byte b -> b / 127.5 - 1, which it maps back to b exactly.
  [[nodiscard]] std::vector<double> planes() const {
    const std::size_t n = width_ * height_;
    std::vector<double> out(3 * n);
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = pixels_[i].r / 127.5 - 1.0;
      out[n + i] = pixels_[i].g / 127.5 - 1.0;
      out[2 * n + i] = pixels_[i].b / 127.5 - 1.0;
    }
    return out;
  }

private:
  std::size_t width_, height_;
  std::vector<rgb> pixels_;
};

}  // namespace softdiff::data::detail
