#pragma once
// Line plots as RGB PNG files, for the command-line tool's schedules and evaluation curves:
// a white background, an axes box with about five "nice" ticks per axis (1, 2 or 5 times a power
// of ten; decades on a logarithmic axis) and their numeric labels, light grid lines at the ticks,
// axis labels, a title, one colour per series (solid or dashed line, optional square markers) and a
// legend in the corner of the axes that covers the fewest data. Text is drawn with the built-in
// 5 x 8 font (detail/bitmap_font.hpp), twice its size on plots of 400 pixels or more. The file is
// written to a temporary name and renamed into place (through data/png.hpp).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "softdiff/data/detail/raster.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/error.hpp"

namespace softdiff::data {

struct plot_series {
  std::string label;         // legend text
  std::vector<double> x, y;  // same length >= 1
  bool markers = true;       // draw a small marker at each point
  bool dashed = false;       // dashed line (e.g. a floor / reference line)
};

struct plot_options {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::size_t width = 800, height = 560;
};

namespace detail {

/// Series colours, in order (the "tab10" palette); the i-th series gets palette[i % 10].
inline constexpr rgb plot_palette[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                         {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                         {188, 189, 34}, {23, 190, 207}};

/// One axis: its range [lo, hi] (in the data's units), ticks and their labels.
struct plot_axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;
  /// Where v lies along the axis, 0 at lo and 1 at hi (logarithmically on a log axis).
  [[nodiscard]] double fraction(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
  }
};

[[nodiscard]] inline std::string tick_text(double v, double step) {
  char buf[48];
  if (std::abs(v) < step * 1e-9) v = 0;  // no "-0"
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  if (decimals > 5 || std::abs(v) >= 1e6) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// Linear axis over [lo, hi]: ticks at the multiples of 1, 2 or 5 x 10^k (about five) inside it.
[[nodiscard]] inline plot_axis linear_axis(double lo, double hi) {
  if (hi - lo <= std::max(std::abs(lo), std::abs(hi)) * 1e-12) {  // one value: centre it
    const double d = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  plot_axis a{lo, hi, false, {}, {}};
  const double raw = (hi - lo) / 5.0;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / magnitude;
  const double step = (r < 1.5 ? 1.0 : r < 3.0 ? 2.0 : r < 7.0 ? 5.0 : 10.0) * magnitude;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1.0) {
    a.ticks.push_back(k * step);
    a.labels.push_back(tick_text(k * step, step));
  }
  return a;
}

/// Logarithmic axis: the range widened to whole decades, a tick at each (every m-th if many).
[[nodiscard]] inline plot_axis log_axis(double lo, double hi) {
  auto e0 = static_cast<long>(std::floor(std::log10(lo) + 1e-12));
  auto e1 = static_cast<long>(std::ceil(std::log10(hi) - 1e-12));
  if (e1 <= e0) e1 = e0 + 1;
  plot_axis a{std::pow(10.0, static_cast<double>(e0)), std::pow(10.0, static_cast<double>(e1)), true, {}, {}};
  const long stride = (e1 - e0 + 7) / 8;  // at most 9 labelled decades
  for (long e = e0; e <= e1; e += stride) {
    a.ticks.push_back(std::pow(10.0, static_cast<double>(e)));
    if (e >= -3 && e <= 4) a.labels.push_back(tick_text(a.ticks.back(), std::pow(10.0, static_cast<double>(e))));
    else a.labels.push_back("1e" + std::to_string(e));
  }
  return a;
}

/// Where everything goes: the axes box (`frame`), the data area inside it, the legend.
struct plot_layout {
  plot_axis x, y;
  long scale = 1;        // font pixels per glyph pixel
  pixel_box frame;       // the axes box, outline included
  pixel_box area;        // the data map into this box (inset from the frame by a few pixels)
  pixel_box legend;      // the legend's box
  [[nodiscard]] double px(double v) const {
    return static_cast<double>(area.x0) + x.fraction(v) * static_cast<double>(area.x1 - 1 - area.x0);
  }
  [[nodiscard]] double py(double v) const {
    return static_cast<double>(area.y1 - 1) - y.fraction(v) * static_cast<double>(area.y1 - 1 - area.y0);
  }
};

/// Throws softdiff::error naming the file and the first problem with the input.
inline void check_plot_input(const std::filesystem::path& file, const std::vector<plot_series>& series,
                             const plot_options& o) {
  using softdiff::detail::require;
  const std::string where = file.string() + ": write_line_plot";
  require(o.width > 0 && o.height > 0, where, ": plot size ", o.width, " x ", o.height, " has a zero side");
  require(o.width >= 160 && o.height >= 120 && o.width <= 16384 && o.height <= 16384, where, ": plot size ", o.width,
          " x ", o.height, " is outside 160 x 120 .. 16384 x 16384");
  require(!series.empty(), where, ": no series to plot");
  for (std::size_t i = 0; i < series.size(); ++i) {
    const plot_series& s = series[i];
    const std::string name = softdiff::detail::concat("series ", i, " ('", s.label, "')");
    require(!s.x.empty() || !s.y.empty(), where, ": ", name, " is empty (no points)");
    require(s.x.size() == s.y.size(), where, ": ", name, " has ", s.x.size(), " x values but ", s.y.size(),
            " y values");
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      require(std::isfinite(s.x[k]), where, ": ", name, ": x[", k, "] = ", s.x[k], " is not a finite number");
      require(std::isfinite(s.y[k]), where, ": ", name, ": y[", k, "] = ", s.y[k], " is not a finite number");
      require(!o.log_x || s.x[k] > 0, where, ": ", name, ": x[", k, "] = ", s.x[k],
              " is not positive, but the x axis is logarithmic");
      require(!o.log_y || s.y[k] > 0, where, ": ", name, ": y[", k, "] = ", s.y[k],
              " is not positive, but the y axis is logarithmic");
    }
  }
}

/// The layout of a plot whose input passed check_plot_input.
[[nodiscard]] inline plot_layout layout_line_plot(const std::vector<plot_series>& series, const plot_options& o) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const plot_series& s : series)
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      x0 = std::min(x0, s.x[k]);
      x1 = std::max(x1, s.x[k]);
      y0 = std::min(y0, s.y[k]);
      y1 = std::max(y1, s.y[k]);
    }
  plot_layout l;
  l.x = o.log_x ? log_axis(x0, x1) : linear_axis(x0, x1);
  l.y = o.log_y ? log_axis(y0, y1) : linear_axis(y0, y1);
  const long W = static_cast<long>(o.width), H = static_cast<long>(o.height);
  l.scale = std::min(W, H) >= 400 ? 2 : 1;
  const long s = l.scale, pad = 5 * s, tick = 4 * s, th = canvas::text_height(s);
  long widest = 0;
  for (const std::string& t : l.y.labels) widest = std::max(widest, canvas::text_width(t, s));
  const long last_x = l.x.labels.empty() ? 0 : canvas::text_width(l.x.labels.back(), s);
  const long left = pad + (o.y_label.empty() ? 0 : th + pad) + widest + pad + tick;
  const long top = pad + (o.title.empty() ? 0 : th + 2 * pad);
  const long bottom = tick + pad + th + (o.x_label.empty() ? 0 : pad + th) + pad;
  const long right = std::max(3 * pad, last_x / 2 + pad);
  l.frame = {left, top, W - right, H - bottom};
  const long inset = 4 * s;
  l.area = {l.frame.x0 + inset, l.frame.y0 + inset, l.frame.x1 - inset, l.frame.y1 - inset};
  softdiff::detail::require(l.area.x1 - l.area.x0 >= 20 && l.area.y1 - l.area.y0 >= 20, "write_line_plot: plot size ",
                            W, " x ", H, " leaves no room for the data beside the labels");

  // Legend: a sample line and the label per series, in the corner covering the fewest data.
  long label_w = 0;
  for (const plot_series& sr : series) label_w = std::max(label_w, canvas::text_width(sr.label, s));
  const long lw = pad + 16 * s + pad + label_w + pad, lh = pad + static_cast<long>(series.size()) * (th + pad);
  long best = -1;
  for (int corner = 0; corner < 4; ++corner) {  // top right, top left, bottom right, bottom left
    const long bx = (corner % 2 == 0) ? l.frame.x1 - pad - lw : l.frame.x0 + pad;
    const long by = (corner < 2) ? l.frame.y0 + pad : l.frame.y1 - pad - lh;
    const pixel_box box{bx, by, bx + lw, by + lh};
    long covered = 0;
    for (const plot_series& sr : series)
      for (std::size_t k = 0; k < sr.x.size(); ++k)
        for (int u = 0; u < (k + 1 < sr.x.size() ? 16 : 1); ++u) {  // points and samples of each segment
          const double f = u / 16.0;
          const double px = l.px(sr.x[k]) + (k + 1 < sr.x.size() ? f * (l.px(sr.x[k + 1]) - l.px(sr.x[k])) : 0.0);
          const double py = l.py(sr.y[k]) + (k + 1 < sr.x.size() ? f * (l.py(sr.y[k + 1]) - l.py(sr.y[k])) : 0.0);
          covered += box.contains(std::lround(px), std::lround(py)) ? 1 : 0;
        }
    if (best < 0 || covered < best) {
      best = covered;
      l.legend = box;
    }
  }
  return l;
}

}  // namespace detail

/// Draws `series` as a line plot into an RGB PNG of options.width x options.height at `file`.
/// Throws softdiff::error for no series, an empty series, x and y of different lengths, a value
/// that is not finite, a value <= 0 on a logarithmic axis, or a size too small to draw in.
inline void write_line_plot(const std::filesystem::path& file, const std::vector<plot_series>& series,
                            const plot_options& options) {
  detail::check_plot_input(file, series, options);
  const detail::plot_layout l = detail::layout_line_plot(series, options);
  const detail::rgb white{255, 255, 255}, black{0, 0, 0}, grid{225, 225, 225}, border{160, 160, 160};
  detail::canvas c(options.width, options.height, white);
  const long s = l.scale, pad = 5 * s, tick = 4 * s, th = detail::canvas::text_height(s);
  const detail::pixel_box inside{l.frame.x0 + 1, l.frame.y0 + 1, l.frame.x1 - 1, l.frame.y1 - 1};

  for (const double v : l.x.ticks) c.fill({std::lround(l.px(v)), inside.y0, std::lround(l.px(v)) + 1, inside.y1}, grid);
  for (const double v : l.y.ticks) c.fill({inside.x0, std::lround(l.py(v)), inside.x1, std::lround(l.py(v)) + 1}, grid);

  for (std::size_t i = 0; i < series.size(); ++i) {
    const plot_series& sr = series[i];
    const detail::rgb colour = detail::plot_palette[i % 10];
    std::vector<double> xs(sr.x.size()), ys(sr.y.size());
    for (std::size_t k = 0; k < xs.size(); ++k) {
      xs[k] = l.px(sr.x[k]);
      ys[k] = l.py(sr.y[k]);
    }
    c.polyline(xs, ys, colour, s, sr.dashed, inside, 6.0 * static_cast<double>(s), 4.0 * static_cast<double>(s));
    if (sr.markers)
      for (std::size_t k = 0; k < xs.size(); ++k) c.square(xs[k], ys[k], s + 1, colour, inside);
  }

  c.frame(l.frame, black);
  for (std::size_t k = 0; k < l.x.ticks.size(); ++k) {
    const long x = std::lround(l.px(l.x.ticks[k]));
    c.fill({x, l.frame.y1, x + 1, l.frame.y1 + tick}, black);
    c.text(x - detail::canvas::text_width(l.x.labels[k], s) / 2, l.frame.y1 + tick + pad, l.x.labels[k], black, s);
  }
  for (std::size_t k = 0; k < l.y.ticks.size(); ++k) {
    const long y = std::lround(l.py(l.y.ticks[k]));
    c.fill({l.frame.x0 - tick, y, l.frame.x0, y + 1}, black);
    c.text(l.frame.x0 - tick - pad - detail::canvas::text_width(l.y.labels[k], s), y - (th - s) / 2, l.y.labels[k], black,
           s);
  }
  const long W = static_cast<long>(options.width), H = static_cast<long>(options.height);
  if (!options.x_label.empty())
    c.text((l.frame.x0 + l.frame.x1 - detail::canvas::text_width(options.x_label, s)) / 2, H - pad - th,
           options.x_label, black, s);
  if (!options.y_label.empty())
    c.text_up(pad, (l.frame.y0 + l.frame.y1 - detail::canvas::text_width(options.y_label, s)) / 2, options.y_label,
              black, s);
  if (!options.title.empty()) {  // a title too long for the large font gets the small one
    const long ts = detail::canvas::text_width(options.title, s) <= W - 2 * pad ? s : 1;
    c.text((W - detail::canvas::text_width(options.title, ts)) / 2, pad, options.title, black, ts);
  }

  c.fill(l.legend, white);
  c.frame(l.legend, border);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const detail::rgb colour = detail::plot_palette[i % 10];
    const long y = l.legend.y0 + pad + static_cast<long>(i) * (th + pad), mid = y + th / 2;
    const double x0 = static_cast<double>(l.legend.x0 + pad), x1 = x0 + 16.0 * static_cast<double>(s);
    c.polyline({x0, x1}, {static_cast<double>(mid), static_cast<double>(mid)}, colour, s, series[i].dashed,
               c.bounds(), 6.0 * static_cast<double>(s), 4.0 * static_cast<double>(s));
    if (series[i].markers) c.square((x0 + x1) / 2, static_cast<double>(mid), s + 1, colour, c.bounds());
    c.text(l.legend.x0 + pad + 16 * s + pad, y, series[i].label, black, s);
  }

  const std::vector<double> planes = c.planes();
  detail::write_png_planes(file, planes.data(), 3, options.height, options.width);
}

}  // namespace softdiff::data
