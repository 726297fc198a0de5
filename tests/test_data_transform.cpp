// Padding, resizing (against values PyTorch 1.13's F.interpolate printed for the same
// input) and per-channel statistics.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "softdiff/data/transform.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

template <class T>
batch<T> from(shape4 s, const std::vector<double>& v) {
  batch<T> x(s);
  REQUIRE(v.size() == x.size());
  for (std::size_t i = 0; i < v.size(); ++i) x.data()[i] = static_cast<T>(v[i]);
  return x;
}

template <class T>
void check_values(const batch<T>& y, shape4 s, const std::vector<double>& expected, double tol) {
  REQUIRE(shape_of(y) == s);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("flat index " << i);
    CHECK(static_cast<double>(y.data()[i]) == Approx(expected[i]).margin(tol));
  }
}

// torch.tensor([[0,1,4,9,16],[-1,2,3,5,7],[2,-2,0.5,1.5,3]]) as [1, 1, 3, 5]
const std::vector<double> input{0, 1, 4, 9, 16, -1, 2, 3, 5, 7, 2, -2, 0.5, 1.5, 3};

}  // namespace

TEMPLATE_TEST_CASE("resizes match torch.nn.functional.interpolate", "[data][transform]", float, double) {
  const auto x = from<TestType>({1, 1, 3, 5}, input);
  const double tol = std::is_same_v<TestType, float> ? 1e-5 : 1e-11;
  // mode="nearest-exact"
  check_values(data::resize_nearest(x, 5, 7), {1, 1, 5, 7},
               {0, 1, 1, 4, 9, 9, 16, 0, 1, 1, 4, 9, 9, 16, -1, 2, 2, 3, 5, 5, 7, 2, -2, -2,
                0.5, 1.5, 1.5, 3, 2, -2, -2, 0.5, 1.5, 1.5, 3},
               tol);
  check_values(data::resize_nearest(x, 2, 3), {1, 1, 2, 3}, {0, 4, 16, 2, 0.5, 3}, tol);
  // mode="bilinear", align_corners=False
  check_values(data::resize_bilinear(x, 5, 7), {1, 1, 5, 7},
               {0.0, 0.571428571429, 1.857142857143, 4.0, 7.571428571429, 12.0, 16.0,
                -0.4, 0.628571428571, 2.028571428571, 3.6, 6.314285714286, 9.542857142857, 12.4,
                -1.0, 0.714285714286, 2.285714285714, 3.0, 4.428571428571, 5.857142857143, 7.0,
                0.8, 0.114285714286, 0.142857142857, 1.5, 2.5, 3.628571428571, 4.6,
                2.0, -0.285714285714, -1.285714285714, 0.5, 1.214285714286, 2.142857142857, 3.0},
               tol);
  check_values(data::resize_bilinear(x, 2, 3), {1, 1, 2, 3}, {0.25, 3.75, 11.833333333333, 0.5, 1.125, 3.458333333333},
               tol);
  // mode="area"
  check_values(data::resize_area(x, 5, 7), {1, 1, 5, 7},
               {0.0, 0.5, 2.5, 4.0, 6.5, 12.5, 16.0, -0.5, 0.5, 2.5, 3.5, 5.25, 9.25, 11.5,
                -1.0, 0.5, 2.5, 3.0, 4.0, 6.0, 7.0, 0.5, 0.25, 0.875, 1.75, 2.5, 4.125, 5.0,
                2.0, 0.0, -0.75, 0.5, 1.0, 2.25, 3.0},
               tol);
  check_values(data::resize_area(x, 2, 3), {1, 1, 2, 3}, {0.5, 4.0, 9.25, 0.25, 1.666666666667, 4.125}, tol);
}

TEST_CASE("resizing to the same size is the identity, per image and channel", "[data][transform]") {
  batch<double> x(shape4{2, 3, 4, 6});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::cos(0.7 * static_cast<double>(i));
  CHECK(bool(data::resize_nearest(x, 4, 6) == x));
  CHECK(bool(data::resize_bilinear(x, 4, 6) == x));
  CHECK(bool(data::resize_area(x, 4, 6) == x));
  // Planes are independent: image 1, channel 2 resized alone gives the same result.
  const auto all = data::resize_bilinear(x, 7, 3);
  batch<double> one(shape4{1, 1, 4, 6});
  std::copy(x.data() + 5 * 24, x.data() + 6 * 24, one.data());
  const auto alone = data::resize_bilinear(one, 7, 3);
  for (std::size_t i = 0; i < 21; ++i) CHECK(all.data()[5 * 21 + i] == alone.data()[i]);
  REQUIRE_THROWS_WITH(data::resize_bilinear(x, 0, 3), Contains("resize_bilinear: target size 0x3 is empty"));
  REQUIRE_THROWS_WITH(data::resize_area(batch<double>(shape4{1, 1, 0, 2}), 2, 2), Contains("has no pixels"));
}

TEST_CASE("pad_to centres the images on a canvas of -1 (black)", "[data][transform]") {
  const auto x = from<float>({1, 2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  const auto y = data::pad_to(x, 5, 6);
  REQUIRE(shape_of(y) == shape4{1, 2, 5, 6});
  // top = (5 - 2) / 2 = 1, left = (6 - 3) / 2 = 1; the odd pixel goes bottom / right.
  CHECK(y(0, 0, 1, 1) == 1.f);
  CHECK(y(0, 0, 2, 3) == 6.f);
  CHECK(y(0, 1, 1, 1) == 7.f);
  CHECK(y(0, 1, 2, 3) == 12.f);
  float sum = 0;
  for (float v : y) sum += v;
  CHECK(sum == 78.f - (60 - 12));  // 78 from the images, -1 for each of the 2 * 30 - 12 padded pixels
  CHECK(y(0, 0, 0, 0) == -1.f);
  CHECK(y(0, 1, 4, 5) == -1.f);
  CHECK(data::pad_to(x, 2, 5, 0.f)(0, 0, 0, 0) == 0.f);
  CHECK(bool(data::pad_to(x, 2, 3) == x));
  REQUIRE_THROWS_WITH(data::pad_to(x, 1, 5), Contains("pad_to: cannot pad [1, 2, 2, 3] to 1x5"));
}

TEST_CASE("pad_to_multiple reaches a size the U-Net's levels divide", "[data][transform]") {
  CHECK(data::size_multiple_for_levels(1) == 1);
  CHECK(data::size_multiple_for_levels(3) == 4);
  CHECK(data::size_multiple_for_levels(4) == 8);
  CHECK(data::round_up_to_multiple(28, 8) == 32);
  CHECK(data::round_up_to_multiple(32, 8) == 32);
  REQUIRE_THROWS_WITH(data::size_multiple_for_levels(0), Contains("levels = 0"));
  batch<double> x(shape4{3, 1, 28, 27}, 0.5);
  const auto y = data::pad_to_multiple(x, data::size_multiple_for_levels(4));
  REQUIRE(shape_of(y) == shape4{3, 1, 32, 32});
  CHECK(y(2, 0, 2, 2) == 0.5);  // top = left = 2
  CHECK(y(2, 0, 1, 2) == -1.0);
  CHECK(y(2, 0, 29, 28) == 0.5);
  CHECK(y(2, 0, 29, 29) == -1.0);
  CHECK(shape_of(data::pad_to_multiple(x, 1)) == shape_of(x));
}

TEST_CASE("channel statistics and per-image mean colours", "[data][transform]") {
  // Two images, two channels of 2 pixels each.
  const auto x = from<double>({2, 2, 1, 2}, {1, 3, 10, 10, 5, 7, -2, 2});
  const auto st = data::channel_stats(x);
  CHECK(st.mean[0] == Approx(4.0));  // {1, 3, 5, 7}
  CHECK(st.stddev[0] == Approx(std::sqrt(5.0)));
  CHECK(st.mean[1] == Approx(5.0));  // {10, 10, -2, 2}
  CHECK(st.stddev[1] == Approx(std::sqrt((25 + 25 + 49 + 9) / 4.0)));
  const auto m = data::mean_colours(x);
  REQUIRE(m.shape()[0] == 2);
  REQUIRE(m.shape()[1] == 2);
  CHECK(m(0, 0) == 2.0);
  CHECK(m(0, 1) == 10.0);
  CHECK(m(1, 0) == 6.0);
  CHECK(m(1, 1) == 0.0);
  REQUIRE_THROWS_WITH(data::channel_stats(batch<float>(shape4{0, 3, 4, 4})), Contains("is empty"));
}
