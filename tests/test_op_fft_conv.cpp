// fft_conv: FFT convolution with zero padding equals the direct float64 convolution
// (tests/support/operator_checks.hpp) for kernels smaller and larger than the image and
// non-square images; its adjoint is exact; level 0 is the identity; bad input throws.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include <xtensor/xview.hpp>

#include "softdiff/op/fft_conv.hpp"
#include "support/operator_checks.hpp"

using namespace softdiff;
using softdiff::testing::adjoint_gap;
using softdiff::testing::dense_conv2d_zero_pad;
using softdiff::testing::max_relative_error;
using softdiff::testing::random_batch;

namespace {

template <class T>
xt::xtensor<double, 4> to_double(const batch<T>& x) {
  return xt::cast<double>(x);
}

/// A fixed asymmetric kernel (so that convolution and correlation differ).
xt::xtensor<double, 2> asymmetric_kernel(std::size_t kh, std::size_t kw) {
  xt::xtensor<double, 2> k({kh, kw});
  for (std::size_t a = 0; a < kh; ++a)
    for (std::size_t b = 0; b < kw; ++b) k(a, b) = std::sin(1.0 + 3.0 * a + 7.0 * b) + 0.3 * a;
  return k;
}

/// (1 - level) delta + level K for level in [0, 1].
op::fft_conv<float>::kernel_family blend_family(xt::xtensor<double, 2> k) {
  return [k](double level) {
    xt::xtensor<double, 2> out = level * k;
    out(k.shape()[0] / 2, k.shape()[1] / 2) += 1.0 - level;
    return out;
  };
}

}  // namespace

TEST_CASE("fft_conv's Gaussian family is the paper's normalised truncated Gaussian", "[op][fft_conv]") {
  const auto k = op::fft_conv<float>::gaussian_kernel(2.5, 6);
  REQUIRE(k.shape()[0] == 13);
  REQUIRE(k.shape()[1] == 13);
  CHECK(xt::sum(k)() == Approx(1.0).epsilon(1e-14));
  // g(a, b) / g(0, 0) = exp(-(a^2 + b^2) / (2 s^2))
  CHECK(k(6 + 2, 6 - 3) / k(6, 6) == Approx(std::exp(-(4.0 + 9.0) / (2 * 2.5 * 2.5))).epsilon(1e-12));
  const auto d = op::fft_conv<float>::gaussian_kernel(0.0, 3);
  CHECK(d(3, 3) == 1.0);
  CHECK(xt::sum(d)() == 1.0);
}

TEST_CASE("fft_conv equals the dense zero-padded convolution (float)", "[op][fft_conv]") {
  SECTION("paper kernel (161 x 161) larger than a 24 x 17 image") {
    op::fft_conv<float> c;  // half_size 80
    const auto x = random_batch<float>({2, 3, 24, 17}, 11);
    for (double s : {0.4, 3.0, 23.0}) {
      batch<float> y;
      c.apply(s, x, y);
      const auto ref = dense_conv2d_zero_pad(to_double(x), c.kernel(s));
      CHECK(max_relative_error(y, ref) < 1e-6);
    }
  }
  SECTION("small Gaussian kernel on a larger non-square image") {
    op::fft_conv<float> c(3);
    const auto x = random_batch<float>({1, 2, 40, 29}, 12);
    batch<float> y;
    c.apply(1.7, x, y);
    CHECK(max_relative_error(y, dense_conv2d_zero_pad(to_double(x), c.kernel(1.7))) < 1e-6);
  }
  SECTION("asymmetric user kernel, non-square, both smaller and larger than the image") {
    const auto k = asymmetric_kernel(7, 3);
    op::fft_conv<float> c(blend_family(k), 0.0, 1.0);
    for (const shape4 s : {shape4{2, 1, 19, 11}, shape4{1, 2, 5, 2}, shape4{1, 1, 1, 1}}) {
      const auto x = random_batch<float>(s, 13);
      batch<float> y, yt;
      c.apply(1.0, x, y);
      CHECK(max_relative_error(y, dense_conv2d_zero_pad(to_double(x), k)) < 1e-6);
      // The adjoint is the correlation: the convolution with the flipped kernel.
      c.apply_adjoint(1.0, x, yt);
      const xt::xtensor<double, 2> flipped = xt::flip(xt::flip(k, 0), 1);
      CHECK(max_relative_error(yt, dense_conv2d_zero_pad(to_double(x), flipped)) < 1e-6);
    }
  }
}

TEST_CASE("fft_conv equals the dense convolution in double to rounding", "[op][fft_conv]") {
  op::fft_conv<double> c(5);
  const auto x = random_batch<double>({1, 2, 13, 21}, 21);
  batch<double> y;
  c.apply(2.0, x, y);
  CHECK(max_relative_error(y, dense_conv2d_zero_pad(x, c.kernel(2.0))) < 1e-13);
}

TEST_CASE("fft_conv's adjoint is exact", "[op][fft_conv]") {
  const auto k = asymmetric_kernel(5, 9);
  SECTION("float") {
    op::fft_conv<float> g;
    op::fft_conv<float> u(blend_family(k), 0.0, 1.0);
    for (double s : {0.5, 4.0, 20.0}) CHECK(adjoint_gap(g, s, {2, 3, 16, 12}, 31) < 1e-6);
    CHECK(adjoint_gap(u, 0.7, {2, 2, 9, 14}, 32) < 1e-6);
  }
  SECTION("double") {
    op::fft_conv<double> g(20);
    op::fft_conv<double> u(blend_family(k), 0.0, 1.0);
    for (double s : {0.5, 4.0, 20.0}) CHECK(adjoint_gap(g, s, {2, 3, 16, 12}, 33) < 1e-12);
    CHECK(adjoint_gap(u, 0.7, {2, 2, 9, 14}, 34) < 1e-12);
  }
}

TEST_CASE("fft_conv: level 0 is the identity; in place equals out of place", "[op][fft_conv]") {
  op::fft_conv<float> c(10);
  const auto x = random_batch<float>({2, 3, 8, 8}, 41);
  batch<float> y;
  c.apply(0.0, x, y);
  CHECK((y == x));
  c.apply_adjoint(0.0, x, y);
  CHECK((y == x));

  batch<float> out, in_place = x;
  c.apply(2.0, x, out);
  c.apply(2.0, in_place, in_place);
  CHECK((in_place == out));
  c.apply_adjoint(2.0, x, out);
  in_place = x;
  c.apply_adjoint(2.0, in_place, in_place);
  CHECK((in_place == out));
}

TEST_CASE("fft_conv's spectrum cache stays correct past its capacity and across copies", "[op][fft_conv]") {
  op::fft_conv<double> c(4);
  const auto x = random_batch<double>({1, 1, 10, 7}, 51);
  batch<double> y;
  for (int i = 1; i <= 40; ++i) c.apply(0.1 * i, x, y);  // more levels than the cache holds
  const auto check = [&](const op::fft_conv<double>& op, double s) {
    batch<double> z;
    op.apply(s, x, z);
    return max_relative_error(z, dense_conv2d_zero_pad(x, op.kernel(s)));
  };
  CHECK(check(c, 0.3) < 1e-13);
  CHECK(check(c, 3.9) < 1e-13);
  const op::fft_conv<double> copy = c;
  CHECK(check(copy, 1.1) < 1e-13);
  // Another image size reuses nothing from the 10 x 7 spectra.
  const auto x2 = random_batch<double>({1, 1, 6, 15}, 52);
  c.apply(0.3, x2, y);
  CHECK(max_relative_error(y, dense_conv2d_zero_pad(x2, c.kernel(0.3))) < 1e-13);
}

TEST_CASE("fft_conv gives the same results when called from several threads at once", "[op][fft_conv]") {
  // Plan creation goes through FFTW's non-thread-safe planner (guarded by a mutex) and the
  // spectrum cache is shared: concurrent calls on one operator must still agree with serial ones.
  const op::fft_conv<float> c(6);
  std::vector<batch<float>> xs, serial(4), parallel(4);
  for (std::size_t t = 0; t < 4; ++t) xs.push_back(random_batch<float>({1, 2, 9 + 4 * t, 23 - 3 * t}, 70 + t));
  for (int t = 0; t < 4; ++t) c.apply(0.5 + t, xs[t], serial[t]);
  const op::fft_conv<float> fresh(6);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) fresh.apply(0.5 + t, xs[t], parallel[t]);
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) CHECK((parallel[t] == serial[t]));
}

TEST_CASE("fft_conv rejects bad input with a message naming the problem", "[op][fft_conv]") {
  op::fft_conv<float> c(3);
  const auto x = random_batch<float>({1, 1, 6, 6}, 61);
  batch<float> y;
  CHECK_THROWS_WITH(c.apply(-0.5, x, y), Catch::Contains("outside the range") && Catch::Contains("fft-conv"));
  CHECK_THROWS_WITH(c.apply(std::nan(""), x, y), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(c.apply_adjoint(std::numeric_limits<double>::infinity(), x, y), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(op::fft_conv<float>(-1), Catch::Contains("half_size"));

  using K = xt::xtensor<double, 2>;
  const auto delta = [](std::size_t kh, std::size_t kw) {
    K k = xt::zeros<double>({kh, kw});
    k(kh / 2, kw / 2) = 1.0;
    return k;
  };
  // even kernel sizes
  CHECK_THROWS_WITH(op::fft_conv<float>([&](double) { return delta(4, 3); }, 0.0, 1.0),
                    Catch::Contains("odd") && Catch::Contains("4 x 3"));
  // the kernel at min_level is not the delta
  CHECK_THROWS_WITH(op::fft_conv<float>([&](double) { return K(xt::ones<double>({3, 3}) / 9.0); }, 0.0, 1.0),
                    Catch::Contains("must be the delta"));
  // mismatched kernel sizes across levels
  op::fft_conv<float> grows([&](double l) { return l == 0 ? delta(3, 3) : K(xt::ones<double>({5, 5}) / 25.0); },
                            0.0, 1.0);
  CHECK_THROWS_WITH(grows.apply(0.5, x, y), Catch::Contains("mismatched") && Catch::Contains("5 x 5"));
  // NaN in a kernel
  op::fft_conv<float> nan_kernel(
      [&](double l) {
        K k = delta(3, 3);
        if (l > 0) k(0, 2) = std::nan("");
        return k;
      },
      0.0, 1.0);
  CHECK_THROWS_WITH(nan_kernel.apply(0.5, x, y), Catch::Contains("non-finite entry") && Catch::Contains("(0, 2)"));
  // a bad range or an empty family
  CHECK_THROWS_WITH(op::fft_conv<float>([&](double) { return delta(1, 1); }, 1.0, 0.0), Catch::Contains("max_level"));
  CHECK_THROWS_WITH(op::fft_conv<float>(op::fft_conv<float>::kernel_family{}, 0.0, 1.0), Catch::Contains("empty"));
  CHECK_THROWS_WITH(op::fft_conv<float>::gaussian_kernel(-1.0, 3), Catch::Contains("blur std"));
}
