// dct_blur: the DCT heat blur equals its dense float64 construction D^T M D (with the
// 1-D orthonormal DCT-II matrix built here), is symmetric, is the identity at level 0,
// preserves constant images (Neumann boundary) and is a semigroup in sigma^2.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>

#include <xtensor/xview.hpp>

#include "softdiff/op/dct_blur.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using softdiff::testing::adjoint_gap;
using softdiff::testing::max_relative_error;
using softdiff::testing::random_batch;

namespace {

/// Orthonormal DCT-II: D[k, n] = s_k cos(pi k (2n + 1) / (2N)), s_0 = sqrt(1/N), s_k = sqrt(2/N).
xt::xtensor<double, 2> dct_matrix(std::size_t n) {
  xt::xtensor<double, 2> d({n, n});
  for (std::size_t k = 0; k < n; ++k)
    for (std::size_t i = 0; i < n; ++i)
      d(k, i) = std::sqrt((k == 0 ? 1.0 : 2.0) / n) * std::cos(std::numbers::pi * k * (2.0 * i + 1) / (2.0 * n));
  return d;
}

/// Y = D_H^T (M .* (D_H X D_W^T)) D_W per plane, M[k, l] = exp(-((pi k/H)^2 + (pi l/W)^2) s^2 / 2).
template <class T>
xt::xtensor<double, 4> dense_dct_blur(const batch<T>& x, double s) {
  const std::size_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const auto dh = dct_matrix(H), dw = dct_matrix(W);
  xt::xtensor<double, 4> y = xt::zeros<double>(x.shape());
  xt::xtensor<double, 2> a({H, W}), b({H, W});
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c) {
      // a = D_H X D_W^T
      for (std::size_t k = 0; k < H; ++k)
        for (std::size_t l = 0; l < W; ++l) {
          double acc = 0;
          for (std::size_t i = 0; i < H; ++i)
            for (std::size_t j = 0; j < W; ++j) acc += dh(k, i) * static_cast<double>(x(n, c, i, j)) * dw(l, j);
          const double lam = std::pow(std::numbers::pi * k / H, 2) + std::pow(std::numbers::pi * l / W, 2);
          a(k, l) = acc * std::exp(-lam * s * s / 2);
        }
      // y = D_H^T a D_W
      for (std::size_t i = 0; i < H; ++i)
        for (std::size_t j = 0; j < W; ++j) {
          double acc = 0;
          for (std::size_t k = 0; k < H; ++k)
            for (std::size_t l = 0; l < W; ++l) acc += dh(k, i) * a(k, l) * dw(l, j);
          y(n, c, i, j) = acc;
        }
    }
  return y;
}

}  // namespace

TEST_CASE("dct_blur equals the dense DCT construction", "[op][dct_blur]") {
  const op::dct_blur<float> cf;
  const op::dct_blur<double> cd;
  for (const shape4 s : {shape4{2, 3, 8, 8}, shape4{1, 2, 13, 6}, shape4{1, 1, 1, 9}}) {
    const auto xf = random_batch<float>(s, 7);
    const auto xd = random_batch<double>(s, 7);
    for (double sigma : {0.3, 1.5, 6.0}) {
      batch<float> yf;
      batch<double> yd;
      cf.apply(sigma, xf, yf);
      cd.apply(sigma, xd, yd);
      CHECK(max_relative_error(yf, dense_dct_blur(xf, sigma)) < 1e-6);
      CHECK(max_relative_error(yd, dense_dct_blur(xd, sigma)) < 1e-12);
    }
  }
}

TEST_CASE("dct_blur is symmetric: the adjoint identity holds", "[op][dct_blur]") {
  STATIC_REQUIRE(op::dct_blur<float>::self_adjoint);
  for (double sigma : {0.5, 2.0, 10.0}) {
    CHECK(adjoint_gap(op::dct_blur<float>{}, sigma, {2, 3, 16, 11}, 17) < 1e-6);
    CHECK(adjoint_gap(op::dct_blur<double>{}, sigma, {2, 3, 16, 11}, 18) < 1e-12);
  }
}

TEST_CASE("dct_blur: level 0 is the identity, in place equals out of place", "[op][dct_blur]") {
  const op::dct_blur<float> c;
  const auto x = random_batch<float>({2, 3, 9, 12}, 21);
  batch<float> y;
  c.apply(0.0, x, y);
  CHECK((y == x));
  // a tiny sigma is close to the identity too (the transform path, not the shortcut)
  c.apply(1e-6, x, y);
  CHECK(max_relative_error(y, xt::xtensor<double, 4>(xt::cast<double>(x))) < 1e-6);

  batch<float> out, in_place = x;
  c.apply(1.3, x, out);
  c.apply(1.3, in_place, in_place);
  CHECK((in_place == out));
}

TEST_CASE("dct_blur preserves constants and the mean (Neumann boundary)", "[op][dct_blur]") {
  const op::dct_blur<double> c;
  batch<double> k = xt::ones<double>({1, 2, 10, 7}) * 0.37, y;
  c.apply(4.0, k, y);
  CHECK(xt::amax(xt::abs(y - 0.37))() < 1e-14);
  c.apply(1e6, k, y);  // the limit of blurring is the constant image
  CHECK(xt::amax(xt::abs(y - 0.37))() < 1e-14);

  const auto x = random_batch<double>({1, 1, 10, 7}, 31);
  c.apply(2.5, x, y);
  CHECK(xt::mean(y)() == Approx(xt::mean(x)()).margin(1e-14));
  c.apply(1e6, x, y);  // infinite blur: every pixel becomes the mean
  CHECK(xt::amax(xt::abs(y - xt::mean(x)()))() < 1e-13);
  c.apply(c.max_level(), x, y);
  CHECK(xt::amax(xt::abs(y - xt::mean(x)()))() < 1e-13);
}

TEST_CASE("dct_blur is a semigroup: C(s1) C(s2) = C(sqrt(s1^2 + s2^2))", "[op][dct_blur]") {
  const op::dct_blur<double> c;
  const auto x = random_batch<double>({2, 1, 12, 9}, 41);
  batch<double> a, b;
  c.apply(1.2, x, a);
  c.apply(2.1, a, a);
  c.apply(std::hypot(1.2, 2.1), x, b);
  CHECK(max_relative_error(a, b) < 1e-13);
}

TEST_CASE("dct_blur rejects bad levels with a message naming the problem", "[op][dct_blur]") {
  const op::dct_blur<float> c;
  const auto x = random_batch<float>({1, 1, 4, 4}, 51);
  batch<float> y;
  CHECK_THROWS_WITH(c.apply(-1.0, x, y), Catch::Contains("outside the range") && Catch::Contains("dct-blur"));
  CHECK_THROWS_WITH(c.apply(std::nan(""), x, y), Catch::Contains("non-finite") && Catch::Contains("dct_blur"));
  CHECK_THROWS_WITH(c.apply_adjoint(std::numeric_limits<double>::infinity(), x, y),
                    Catch::Contains("non-finite") && Catch::Contains("apply_adjoint"));
  const batch<float> empty = xt::zeros<float>({1, 1, 0, 4});
  CHECK_THROWS_WITH(c.apply(1.0, empty, y), Catch::Contains("empty image"));
}
