// op::gaussian_blur against a direct dense 2-D zero-padded convolution in float64 with the
// paper's kernel (appendix G), for images smaller and larger than the kernel, square and not,
// with each exact representation forced in turn; the adjoint identity; identity at level 0;
// bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "softdiff/op/gaussian_blur.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using softdiff::backend::detail::axis_kind;

namespace {

/// Appendix G, written out independently of the library: (2R+1)^2 taps g_a g_b,
/// g_k = exp(-k^2 / (2 s^2)) normalised to sum 1 over |k| <= R.
xt::xtensor<double, 2> paper_kernel(double s, int half_size) {
  std::vector<double> g(2 * half_size + 1);
  double z = 0;
  for (int k = -half_size; k <= half_size; ++k) z += g[k + half_size] = std::exp(-double(k) * k / (2 * s * s));
  const std::size_t n = g.size();
  xt::xtensor<double, 2> k2({n, n});
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b) k2(a, b) = g[a] / z * (g[b] / z);
  return k2;
}

/// The dense float64 convolution with the paper's kernel. Taps farther than side - 1 from the
/// centre only ever meet the zero padding, so the kernel is cropped to them first (same result,
/// a faster reference).
template <class T>
xt::xtensor<double, 4> reference(const batch<T>& x, double s, int half_size) {
  xt::xtensor<double, 4> xd = xt::zeros<double>(x.shape());
  for (std::size_t i = 0; i < x.size(); ++i) xd.data()[i] = static_cast<double>(x.data()[i]);
  const xt::xtensor<double, 2> k = paper_kernel(s, half_size);
  const int ra = std::min<int>(half_size, int(x.shape()[2]) - 1), rb = std::min<int>(half_size, int(x.shape()[3]) - 1);
  xt::xtensor<double, 2> cropped({std::size_t(2 * ra + 1), std::size_t(2 * rb + 1)});
  for (int a = -ra; a <= ra; ++a)
    for (int b = -rb; b <= rb; ++b) cropped(a + ra, b + rb) = k(a + half_size, b + half_size);
  return testing::dense_conv2d_zero_pad(xd, cropped);
}

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-12;
}

const std::vector<double> stds = {0.3, 1.0, 3.0, 10.0, 23.0};
const axis_kind kinds[] = {axis_kind::band, axis_kind::folded_dense, axis_kind::folded_low_rank};

}  // namespace

TEMPLATE_TEST_CASE("gaussian_blur equals the dense zero-padded convolution", "[op][blur]", float, double) {
  struct geometry {
    int half_size;
    shape4 shape;
    std::vector<double> stds;
  };
  // smaller than the kernel (the paper's CelebA setting), larger than it, non-square, odd sides
  const geometry cases[] = {{80, {1, 2, 64, 64}, stds},
                            {5, {2, 1, 23, 31}, stds},
                            {80, {1, 1, 170, 24}, {3.0, 23.0}},
                            {3, {1, 1, 1, 9}, stds}};
  for (const auto& c : cases) {
    const op::gaussian_blur<TestType> blur(c.half_size);
    const batch<TestType> x = testing::random_batch<TestType>(c.shape, 7);
    for (double s : c.stds) {
      batch<TestType> y;
      blur.apply(s, x, y);
      const double err = testing::max_relative_error(y, reference(x, s, c.half_size));
      INFO("half_size " << c.half_size << ", shape " << to_string(c.shape) << ", std " << s << ": "
                        << blur.describe(s, int(c.shape[2]), int(c.shape[3])) << ", error " << err);
      CHECK(err < tolerance<TestType>());
    }
  }
}

TEMPLATE_TEST_CASE("every exact representation, on either axis, matches the reference", "[op][blur]", float, double) {
  struct geometry {
    int half_size;
    shape4 shape;
    double std;
  };
  const geometry cases[] = {{80, {1, 1, 64, 64}, 3.0}, {80, {1, 1, 64, 64}, 23.0}, {5, {1, 1, 23, 31}, 3.0},
                            {80, {1, 1, 24, 17}, 2.0}, {80, {1, 1, 2, 33}, 10.0}};
  for (const auto& c : cases) {
    const op::gaussian_blur<TestType> blur(c.half_size);
    const batch<TestType> x = testing::random_batch<TestType>(c.shape, 11);
    const auto ref = reference(x, c.std, c.half_size);
    for (axis_kind kh : kinds)
      for (axis_kind kw : kinds) {
        const bool low_rank = kh == axis_kind::folded_low_rank || kw == axis_kind::folded_low_rank;
        INFO("shape " << to_string(c.shape) << ", std " << c.std << ", rows " << to_string(kh) << ", columns "
                      << to_string(kw));
        batch<TestType> y;
        if (low_rank && std::is_same_v<TestType, double>) {  // offered for float only
          CHECK_THROWS_WITH(blur.apply_using(kh, kw, c.std, x, y), Catch::Contains("not available"));
          continue;
        }
        blur.apply_using(kh, kw, c.std, x, y);
        CHECK(testing::max_relative_error(y, ref) < tolerance<TestType>());
      }
  }
}

TEMPLATE_TEST_CASE("gaussian_blur is self-adjoint: <Cx, y> = <x, C^T y>", "[op][blur]", float, double) {
  const op::gaussian_blur<TestType> blur(80);
  const double tol = std::is_same_v<TestType, float> ? 1e-6 : 1e-13;
  for (double s : stds) {
    CHECK(testing::adjoint_gap(blur, s, {2, 3, 64, 64}, 3) < tol);
    CHECK(testing::adjoint_gap(blur, s, {1, 2, 23, 40}, 5) < tol);
  }
  if constexpr (std::is_same_v<TestType, float>) {
    // the forms themselves, at a level where each is available
    for (axis_kind kh : kinds)
      for (axis_kind kw : kinds) {
        const batch<float> x = testing::random_batch<float>({1, 2, 31, 64}, 1);
        const batch<float> z = testing::random_batch<float>({1, 2, 31, 64}, 2);
        batch<float> cx, cz;
        blur.apply_using(kh, kw, 5.0, x, cx);
        blur.apply_using(kh, kw, 5.0, z, cz);
        CHECK(std::abs(testing::dot(cx, z) - testing::dot(x, cz)) / std::sqrt(testing::dot(cx, cx) * testing::dot(z, z)) <
              1e-6);
      }
  }
}

TEST_CASE("gaussian_blur at level 0 is exactly the identity; in place equals out of place", "[op][blur]") {
  const op::gaussian_blur<float> blur;
  const batch<float> x = testing::random_batch<float>({2, 3, 64, 64}, 5);
  batch<float> y;
  blur.apply(0.0, x, y);
  CHECK((y == x));
  batch<float> z = x;
  blur.apply_adjoint(0.0, z, z);
  CHECK((z == x));

  for (double s : {0.5, 3.0, 23.0}) {
    blur.apply(s, x, y);
    z = x;
    blur.apply(s, z, z);
    CHECK((z == y));
    batch<float> again;
    blur.apply(s, x, again);  // the cached plan gives the same bits
    CHECK((again == y));
  }
}

TEST_CASE("gaussian_blur chooses the cheapest exact form; low rank only for float", "[op][blur]") {
  const op::gaussian_blur<float> f;
  const op::gaussian_blur<double> d;
  CHECK(f.describe(0.0, 64, 64) == "identity");
  CHECK_THAT(f.describe(0.5, 64, 64), Catch::Contains("rows (H=64): band(r=3)"));
  CHECK_THAT(f.describe(23.0, 64, 64), Catch::Contains("folded-low-rank"));
  CHECK_THAT(d.describe(23.0, 64, 64), !Catch::Contains("low-rank"));
  // a large image with a narrow kernel stays a band on both axes
  CHECK_THAT(f.describe(1.0, 512, 300), Catch::Contains("band") && !Catch::Contains("folded"));
}

TEST_CASE("gaussian_blur's kernel is the paper's normalised kernel; huge levels give the box filter", "[op][blur]") {
  const op::gaussian_blur<double> blur(4);
  const auto g = blur.kernel(2.0);
  REQUIRE(g.size() == 5);
  double z = g[0];
  for (int k = 1; k <= 4; ++k) z += 2 * g[k];
  CHECK(z == Approx(1.0).epsilon(1e-15));
  CHECK(g[1] / g[0] == Approx(std::exp(-1.0 / 8)).epsilon(1e-14));
  const batch<double> x = testing::random_batch<double>({1, 1, 12, 7}, 9);
  const xt::xtensor<double, 2> box = xt::ones<double>({9, 9}) / 81.0;
  const xt::xtensor<double, 4> xd = x;
  batch<double> y;
  blur.apply(std::numeric_limits<double>::max(), x, y);
  CHECK(testing::max_relative_error(y, testing::dense_conv2d_zero_pad(xd, box)) < 1e-13);
  blur.apply(1e6, x, y);  // g_4 / g_0 = exp(-8e-12)
  CHECK(testing::max_relative_error(y, testing::dense_conv2d_zero_pad(xd, box)) < 1e-10);
  // in float the box's odd blocks are numerically zero: low-rank forms with an empty block
  const op::gaussian_blur<float> fblur(4);
  const batch<float> xf = testing::random_batch<float>({1, 1, 5, 4}, 9);
  const xt::xtensor<double, 4> xfd = xf;
  batch<float> yf;
  fblur.apply_using(axis_kind::folded_low_rank, axis_kind::folded_low_rank, 1e30, xf, yf);
  CHECK(testing::max_relative_error(yf, testing::dense_conv2d_zero_pad(xfd, box)) < 1e-6);
}

TEST_CASE("gaussian_blur rejects bad input with clear messages", "[op][blur]") {
  CHECK_THROWS_WITH(op::gaussian_blur<float>(0), Catch::Contains("half_size must be at least 1"));
  CHECK_THROWS_AS(op::gaussian_blur<float>(-3), error);
  const op::gaussian_blur<float> blur;
  batch<float> x = testing::random_batch<float>({2, 3, 16, 16}, 1), y;
  CHECK_THROWS_WITH(blur.apply(-0.5, x, y), Catch::Contains("outside the range") && Catch::Contains("gaussian-blur"));
  CHECK_THROWS_WITH(blur.apply(std::nan(""), x, y), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(blur.apply_adjoint(std::numeric_limits<double>::infinity(), x, y), Catch::Contains("non-finite"));
  x(1, 2, 5, 7) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(blur.apply(2.0, x, y), Catch::Contains("non-finite") && Catch::Contains("plane 5") &&
                                               Catch::Contains("sample 1, channel 2"));
  x(1, 2, 5, 7) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(blur.apply(2.0, x, y), error);
  x(1, 2, 5, 7) = 0;
  CHECK_NOTHROW(blur.apply(2.0, x, y));
  const batch<float> one_row = testing::random_batch<float>({1, 1, 1, 16}, 1);
  CHECK_THROWS_WITH(blur.apply_using(axis_kind::folded_dense, axis_kind::band, 0.5, one_row, y),
                    Catch::Contains("not available for an axis of length 1"));
}

TEST_CASE("gaussian_blur handles empty batches and one-pixel sides", "[op][blur]") {
  const op::gaussian_blur<float> blur(80);
  batch<float> empty({0, 3, 64, 64}), y;
  CHECK_NOTHROW(blur.apply(3.0, empty, y));
  CHECK(shape_of(y) == shape4{0, 3, 64, 64});
  const batch<float> x = testing::random_batch<float>({3, 1, 1, 1}, 4);
  blur.apply(5.0, x, y);  // a lone pixel keeps g_0^2 of itself: the rest of the kernel falls on the padding
  CHECK(testing::max_relative_error(y, reference(x, 5.0, 80)) < 1e-6);
  const batch<float> row = testing::random_batch<float>({1, 2, 1, 50}, 4), col = testing::random_batch<float>({1, 2, 50, 1}, 4);
  blur.apply(5.0, row, y);
  CHECK(testing::max_relative_error(y, reference(row, 5.0, 80)) < 1e-6);
  blur.apply(5.0, col, y);
  CHECK(testing::max_relative_error(y, reference(col, 5.0, 80)) < 1e-6);
}

TEST_CASE("gaussian_blur may be applied concurrently from several threads", "[op][blur]") {
  const op::gaussian_blur<float> blur;
  const batch<float> x = testing::random_batch<float>({2, 3, 40, 48}, 6);
  const double levels[] = {0.7, 3.0, 9.0, 23.0};
  batch<float> expected[4];
  for (int i = 0; i < 4; ++i) blur.apply(levels[i], x, expected[i]);
  const op::gaussian_blur<float> shared;  // a fresh cache, filled by the threads as they race
  int mismatches[4] = {0, 0, 0, 0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      batch<float> y;
      for (int rep = 0; rep < 5; ++rep) {
        shared.apply(levels[(i + rep) % 4], x, y);
        mismatches[i] += !(y == expected[(i + rep) % 4]);
      }
    });
  for (auto& t : threads) t.join();
  for (int m : mismatches) CHECK(m == 0);
}
