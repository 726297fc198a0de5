// data/plot.hpp: line plots as RGB PNGs, read back with data::read_png: size, white background,
// each series' colour where its points map, gaps in a dashed series, text drawn, nice ticks,
// decades on log axes, and the errors for bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support/data_files.hpp"
#include "softdiff/data/plot.hpp"
#include "softdiff/data/png.hpp"

using namespace softdiff;
using data::detail::rgb;
using Catch::Matchers::Contains;

namespace {

struct image_rgb {
  batch<float> png;
  std::size_t width = 0, height = 0;
  [[nodiscard]] rgb at(long x, long y) const {
    auto byte = [&](std::size_t c) {
      const float v = png.data()[(c * height + static_cast<std::size_t>(y)) * width + static_cast<std::size_t>(x)];
      return static_cast<std::uint8_t>(std::lround((v + 1.0) * 127.5));
    };
    return {byte(0), byte(1), byte(2)};
  }
  /// Whether colour c occurs within `radius` pixels of (x, y).
  [[nodiscard]] bool near(double x, double y, rgb c, long radius) const {
    for (long dy = -radius; dy <= radius; ++dy)
      for (long dx = -radius; dx <= radius; ++dx) {
        const long px = std::lround(x) + dx, py = std::lround(y) + dy;
        if (px >= 0 && py >= 0 && px < static_cast<long>(width) && py < static_cast<long>(height) && at(px, py) == c)
          return true;
      }
    return false;
  }
};

image_rgb read_back(const std::filesystem::path& p) {
  image_rgb im{data::read_png<float>(p)};
  REQUIRE(im.png.shape()[0] == 1);
  REQUIRE(im.png.shape()[1] == 3);
  im.height = im.png.shape()[2];
  im.width = im.png.shape()[3];
  return im;
}

std::vector<data::plot_series> two_series() {
  data::plot_series a{"quadratic", {}, {}, true, false};
  for (int k = 0; k <= 10; ++k) {
    a.x.push_back(k);
    a.y.push_back(k * k);
  }
  data::plot_series b{"floor", {0, 10}, {50, 50}, false, true};
  return {a, b};
}

}  // namespace

TEST_CASE("plot: size, background and each series' colour where its points map", "[plot]") {
  test::temp_dir dir("plot-lin");
  const auto series = two_series();
  data::plot_options o;
  o.title = "Quadratic and a floor";
  o.x_label = "step";
  o.y_label = "value";
  o.width = 640;
  o.height = 480;
  data::write_line_plot(dir / "p.png", series, o);
  const image_rgb im = read_back(dir / "p.png");
  CHECK(im.width == 640);
  CHECK(im.height == 480);
  CHECK(im.at(0, im.height - 1) == rgb{255, 255, 255});
  CHECK(im.at(static_cast<long>(im.width) - 1, 0) == rgb{255, 255, 255});

  const data::detail::plot_layout l = data::detail::layout_line_plot(series, o);
  const rgb blue = data::detail::plot_palette[0], orange = data::detail::plot_palette[1];
  CHECK(blue != orange);
  std::size_t checked = 0;
  for (std::size_t k = 0; k < series[0].x.size(); ++k) {
    const double x = l.px(series[0].x[k]), y = l.py(series[0].y[k]);
    if (l.legend.contains(std::lround(x), std::lround(y))) continue;
    INFO("point " << k << " at " << x << ", " << y);
    CHECK(im.near(x, y, blue, 2));
    if (std::abs(y - l.py(50)) > 6) CHECK_FALSE(im.near(x, y, orange, 2));  // away from the floor line
    ++checked;
  }
  CHECK(checked >= 8);
  // The blue line also joins the points: its colour appears midway between two of them.
  CHECK(im.near((l.px(2) + l.px(3)) / 2, (l.py(4) + l.py(9)) / 2, blue, 2));

  // The dashed floor: along its row, runs of orange separated by gaps, away from the legend.
  const long row = std::lround(l.py(50));
  int runs = 0, gaps = 0;
  bool previous = false, seen = false;
  for (long x = l.area.x0 + 2; x < l.area.x1 - 2; ++x) {
    if (l.legend.contains(x, row) || im.near(static_cast<double>(x), static_cast<double>(row), blue, 3)) {
      previous = false;
      seen = false;
      continue;
    }
    const bool on = im.at(x, row) == orange;
    if (on && !previous) ++runs;
    if (!on && previous && seen) ++gaps;
    seen = seen || on;
    previous = on;
  }
  CHECK(runs >= 10);
  CHECK(gaps >= 9);

  // Text: the title's black pixels above the axes box, the y label's left of the tick labels.
  auto black_in = [&](long x0, long y0, long x1, long y1) {
    for (long y = y0; y < y1; ++y)
      for (long x = x0; x < x1; ++x)
        if (im.at(x, y) == rgb{0, 0, 0}) return true;
    return false;
  };
  CHECK(black_in(0, 0, 640, l.frame.y0 - 2));
  CHECK(black_in(0, 0, 12 * l.scale, 480));
  // The legend shows each series' colour.
  CHECK(im.near((l.legend.x0 + l.legend.x1) / 2.0, (l.legend.y0 + l.legend.y1) / 2.0, rgb{0, 0, 0}, 40));
  bool legend_blue = false, legend_orange = false;
  for (long y = l.legend.y0; y < l.legend.y1; ++y)
    for (long x = l.legend.x0; x < l.legend.x1; ++x) {
      legend_blue = legend_blue || im.at(x, y) == blue;
      legend_orange = legend_orange || im.at(x, y) == orange;
    }
  CHECK(legend_blue);
  CHECK(legend_orange);
}

TEST_CASE("plot: a solid line has no gaps, a dashed one has", "[plot]") {
  test::temp_dir dir("plot-dash");
  data::plot_series solid{"solid", {0, 1}, {1, 1}, false, false}, dashed{"dashed", {0, 1}, {0, 0}, false, true};
  data::plot_options o;
  o.width = 400;
  o.height = 300;
  data::write_line_plot(dir / "d.png", {solid, dashed}, o);
  const image_rgb im = read_back(dir / "d.png");
  const auto l = data::detail::layout_line_plot({solid, dashed}, o);
  for (int which = 0; which < 2; ++which) {
    const long row = std::lround(l.py(which == 0 ? 1.0 : 0.0));
    const rgb c = data::detail::plot_palette[which];
    std::size_t on = 0, off = 0;
    for (long x = std::lround(l.px(0)); x <= std::lround(l.px(1)); ++x) {
      if (l.legend.contains(x, row)) continue;
      (im.at(x, row) == c ? on : off) += 1;
    }
    INFO("series " << which << ": " << on << " pixels on, " << off << " off");
    CHECK(on > 100);
    if (which == 0) CHECK(off == 0);
    else CHECK(off > on / 4);
  }
}

TEST_CASE("plot: ticks are nice numbers, decades on log axes", "[plot]") {
  const auto a = data::detail::linear_axis(0.0, 15.75);
  CHECK(a.ticks == std::vector<double>{0, 5, 10, 15});
  CHECK(a.labels == std::vector<std::string>{"0", "5", "10", "15"});
  const auto b = data::detail::linear_axis(0.0, 1.0);
  REQUIRE(b.ticks.size() == 6);
  CHECK(b.labels.front() == "0.0");
  CHECK(b.labels[1] == "0.2");
  CHECK(b.labels.back() == "1.0");
  const auto c = data::detail::linear_axis(-3.0, -3.0);  // one value: a range around it
  CHECK(c.lo < -3.0);
  CHECK(c.hi > -3.0);
  CHECK_FALSE(c.ticks.empty());
  const auto d = data::detail::log_axis(2.0, 500.0);
  CHECK(d.lo == 1.0);
  CHECK(d.hi == Approx(1000.0));
  CHECK(d.labels == std::vector<std::string>{"1", "10", "100", "1000"});
  const auto e = data::detail::log_axis(1e-7, 1e9);
  CHECK(e.labels.front() == "1e-7");
  CHECK(e.ticks.size() <= 9);
}

TEST_CASE("plot: log axes and single-point series", "[plot]") {
  test::temp_dir dir("plot-log");
  data::plot_series s{"loss", {1, 10, 100, 1000}, {1, 0.1, 0.03, 0.001}, true, false};
  data::plot_series one{"one point", {30}, {0.5}, true, false};
  data::plot_options o;
  o.log_x = o.log_y = true;
  data::write_line_plot(dir / "log.png", {s, one}, o);
  const image_rgb im = read_back(dir / "log.png");
  CHECK(im.width == 800);
  CHECK(im.height == 560);
  const auto l = data::detail::layout_line_plot({s, one}, o);
  CHECK(l.x.labels == std::vector<std::string>{"1", "10", "100", "1000"});
  // Decades are evenly spaced on a log axis.
  CHECK(l.px(10) - l.px(1) == Approx(l.px(1000) - l.px(100)).margin(1e-9));
  for (std::size_t k = 0; k < s.x.size(); ++k) {
    if (l.legend.contains(std::lround(l.px(s.x[k])), std::lround(l.py(s.y[k])))) continue;
    CHECK(im.near(l.px(s.x[k]), l.py(s.y[k]), data::detail::plot_palette[0], 2));
  }
  CHECK(im.near(l.px(30), l.py(0.5), data::detail::plot_palette[1], 2));
}

TEST_CASE("plot: bad input throws naming the problem and writes nothing", "[plot]") {
  test::temp_dir dir("plot-bad");
  const auto file = dir / "bad.png";
  const data::plot_options o;
  const data::plot_series ok{"ok", {0, 1}, {0, 1}};
  auto fails = [&](const std::vector<data::plot_series>& s, const data::plot_options& opt, const std::string& text) {
    INFO(text);
    CHECK_THROWS_WITH(data::write_line_plot(file, s, opt), Contains(text));
    CHECK_FALSE(std::filesystem::exists(file));
  };
  fails({}, o, "no series");
  fails({ok, data::plot_series{"hollow", {}, {}}}, o, "series 1 ('hollow') is empty");
  fails({data::plot_series{"m", {0, 1, 2}, {0, 1}}}, o, "has 3 x values but 2 y values");
  fails({data::plot_series{"n", {0, 1}, {0, std::nan("")}}}, o, "y[1] = nan is not a finite number");
  fails({data::plot_series{"i", {0, INFINITY}, {0, 1}}}, o, "x[1] = inf is not a finite number");
  data::plot_options lx = o;
  lx.log_x = true;
  fails({ok}, lx, "x[0] = 0 is not positive, but the x axis is logarithmic");
  data::plot_options ly = o;
  ly.log_y = true;
  fails({data::plot_series{"neg", {1, 2}, {1, -1}}}, ly, "y[1] = -1 is not positive, but the y axis is logarithmic");
  data::plot_options zero = o;
  zero.width = 0;
  fails({ok}, zero, "has a zero side");
  data::plot_options tiny = o;
  tiny.height = 40;
  fails({ok}, tiny, "is outside");
  CHECK(std::filesystem::is_empty(dir.path()));
}
