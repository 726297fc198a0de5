// conv2d, both algorithms (tiled and im2col_blas): a hand-computed case, a direct float64
// reference over kernels, strides, paddings and odd/even sizes, float against double for the
// forward and every gradient, every-element finite differences for x, W and bias, gradient
// accumulation, need_dx = false, a batch of one, and the shape errors.
#include <catch2/catch.hpp>

#include <cmath>

#include <xtensor/xview.hpp>

#include "softdiff/nn/conv2d.hpp"
#include "support/conv_checks.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::check_layer_gradients;
using softdiff::testing::random_tensor;

namespace {

template <class T>
struct conv_fixture {
  nn::parameter_store<T> store;
  nn::conv2d<T> conv;
  conv_fixture(std::size_t a, std::size_t b, std::size_t k, std::size_t s, std::size_t p, std::uint64_t seed = 3,
               nn::conv_algorithm alg = nn::conv_algorithm::automatic)
      : conv(a, b, k, s, p) {
    conv.algorithm = alg;
    conv.declare(store, "layer");
    store.allocate();
    conv.bind(store);
    conv.init(noise_source{seed, 1});
  }
};

/// y[n,o,i,j] = bias[o] + sum W[o,c,u,v] x[n,c,i*s-p+u,j*s-p+v], straight from the definition.
xt::xtensor<double, 4> reference_conv(const xt::xtensor<double, 4>& x, std::span<const double> w,
                                      std::span<const double> bias, std::size_t b, std::size_t k, std::size_t s,
                                      std::size_t p) {
  const std::size_t N = x.shape()[0], a = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::size_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  xt::xtensor<double, 4> y({N, b, Ho, Wo});
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < b; ++o)
      for (std::size_t i = 0; i < Ho; ++i)
        for (std::size_t j = 0; j < Wo; ++j) {
          double acc = bias[o];
          for (std::size_t c = 0; c < a; ++c)
            for (std::size_t u = 0; u < k; ++u)
              for (std::size_t v = 0; v < k; ++v) {
                const long iy = long(i * s + u) - long(p), ix = long(j * s + v) - long(p);
                if (iy < 0 || ix < 0 || iy >= long(H) || ix >= long(W)) continue;
                acc += w[((o * a + c) * k + u) * k + v] * x(n, c, std::size_t(iy), std::size_t(ix));
              }
          y(n, o, i, j) = acc;
        }
  return y;
}

constexpr nn::conv_algorithm algorithms[] = {nn::conv_algorithm::tiled, nn::conv_algorithm::im2col_blas,
                                             nn::conv_algorithm::winograd, nn::conv_algorithm::winograd4};

struct cfg {
  std::size_t k, s, p, h, w;
};
// 3x3 same, stride 2 on odd / even / non-square sizes, 1x1, unpadded, 1x1 stride 2, p = k-1, p > k-1
constexpr cfg configs[] = {{3, 1, 1, 5, 5}, {3, 2, 1, 5, 5}, {3, 2, 1, 6, 6}, {3, 2, 1, 7, 4}, {1, 1, 0, 5, 5},
                           {3, 1, 0, 5, 6}, {1, 2, 0, 5, 5}, {3, 1, 2, 4, 4}, {3, 1, 3, 3, 4}, {1, 1, 1, 4, 3}};

}  // namespace

TEST_CASE("conv2d 3x3 with a known kernel matches the hand computation", "[nn][conv2d]") {
  conv_fixture<double> f(1, 1, 3, 1, 1);
  std::fill(f.conv.weight.begin(), f.conv.weight.end(), 1.0);  // box sum
  f.conv.bias[0] = 0.5;
  batch<double> x({1, 1, 3, 3});
  for (std::size_t i = 0; i < 9; ++i) x.data()[i] = double(i + 1);  // 1..9
  const auto& y = f.conv.forward(x);
  REQUIRE(shape_of(y) == shape4{1, 1, 3, 3});
  // corners: 1+2+4+5, 2+3+5+6, ...; edges: three rows/cols of two or three; centre: 45
  const double expected[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  for (std::size_t i = 0; i < 9; ++i) CHECK(y.data()[i] == Approx(expected[i] + 0.5));

  conv_fixture<double> s2(1, 1, 3, 2, 1);  // stride 2 on 3x3 -> 2x2: the corners of the box sums
  std::fill(s2.conv.weight.begin(), s2.conv.weight.end(), 1.0);
  const auto& y2 = s2.conv.forward(x);
  REQUIRE(shape_of(y2) == shape4{1, 1, 2, 2});
  CHECK(y2(0, 0, 0, 0) == Approx(12 + s2.conv.bias[0]));
  CHECK(y2(0, 0, 0, 1) == Approx(16 + s2.conv.bias[0]));
  CHECK(y2(0, 0, 1, 0) == Approx(24 + s2.conv.bias[0]));
  CHECK(y2(0, 0, 1, 1) == Approx(28 + s2.conv.bias[0]));
}

TEST_CASE("conv2d forward matches the direct definition", "[nn][conv2d]") {
  for (const auto alg : algorithms)
    for (const cfg& c : configs) {
      CAPTURE(int(alg), c.k, c.s, c.p, c.h, c.w);
      conv_fixture<double> f(4, 3, c.k, c.s, c.p, 3, alg);
      const auto x = random_tensor<double, 4>({3, 4, c.h, c.w}, 11, 2);
      const auto ref = reference_conv(x, f.conv.weight, f.conv.bias, 3, c.k, c.s, c.p);
      const auto& y = f.conv.forward(x);
      REQUIRE(shape_of(y) == shape4{ref.shape()[0], ref.shape()[1], ref.shape()[2], ref.shape()[3]});
      for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(y.data()[i] == Approx(ref.data()[i]).margin(1e-12));
    }
}

TEST_CASE("conv2d in float matches double for the output and every gradient", "[nn][conv2d]") {
  // channel counts that leave partial register tiles (rows and columns) in both GEMM roles
  struct chans {
    std::size_t a, b, n;
  };
  for (const auto alg : algorithms)
    for (const chans ch : {chans{4, 3, 3}, chans{9, 17, 2}, chans{1, 8, 4}, chans{16, 1, 1}})
      for (const cfg& c : configs) {
        CAPTURE(int(alg), ch.a, ch.b, ch.n, c.k, c.s, c.p, c.h, c.w);
        conv_fixture<double> d(ch.a, ch.b, c.k, c.s, c.p, 4, nn::conv_algorithm::im2col_blas);
        conv_fixture<float> f(ch.a, ch.b, c.k, c.s, c.p, 4, alg);
        const batch<double> x = random_tensor<double, 4>({ch.n, ch.a, c.h, c.w}, 12, 2);
        softdiff::testing::check_float_matches_double(d, f, x, 12, 3, {2e-5, 2e-5, 1e-4});
      }
}

TEST_CASE("conv2d backward passes finite differences for x, weight and bias", "[nn][conv2d][gradcheck]") {
  for (const auto alg : algorithms)
    for (const cfg& c : configs) {
      CAPTURE(int(alg), c.k, c.s, c.p, c.h, c.w);
      conv_fixture<double> f(4, 3, c.k, c.s, c.p, 5, alg);
      auto x = random_tensor<double, 4>({2, 4, c.h, c.w}, 21, 3, 1.0, 0.3);
      const auto r = check_layer_gradients(f.conv, &f.store, x, 99);
      INFO(r.input.describe());
      INFO(r.parameters.describe());
      CHECK(r.input.max_error < 1e-6);
      CHECK(r.parameters.max_error < 1e-6);
      CHECK(r.parameters.nonzero == r.parameters.count);
      CHECK(r.parameters.count == 3 * 4 * c.k * c.k + 3);
      // stride 2 with a 1x1 kernel never reads odd rows and columns: their gradient is 0
      if (c.k > 1 || c.s == 1) CHECK(r.input.nonzero == r.input.count);
      else CHECK(r.input.nonzero > 0);
    }
}

TEST_CASE("conv2d accumulates parameter gradients and can skip dx", "[nn][conv2d]") {
  const auto alg = GENERATE(nn::conv_algorithm::tiled, nn::conv_algorithm::im2col_blas, nn::conv_algorithm::winograd,
                            nn::conv_algorithm::winograd4);
  conv_fixture<double> f(2, 3, 3, 1, 1, 3, alg);
  const auto x = random_tensor<double, 4>({2, 2, 4, 4}, 1, 1);
  const auto g = random_tensor<double, 4>({2, 3, 4, 4}, 1, 2);
  f.conv.forward(x);
  const auto dx1 = testing::copy_of(f.conv.backward(g));
  const auto once = testing::copy_of(f.store.gradients());
  f.conv.dx.fill(-7.0);
  f.conv.backward(g, false);
  for (double v : f.conv.dx) REQUIRE(v == -7.0);  // untouched
  for (std::size_t i = 0; i < once.size(); ++i) REQUIRE(f.store.gradients()[i] == Approx(2 * once[i]));
  const auto dx2 = testing::copy_of(f.conv.backward(g));
  for (std::size_t i = 0; i < dx1.size(); ++i) REQUIRE(dx2[i] == dx1[i]);  // dx is written, not added
}

TEST_CASE("conv2d: an empty batch adds nothing to the gradients", "[nn][conv2d]") {
  for (const auto alg : algorithms)
    for (const std::size_t stride : {1, 2}) {
      CAPTURE(int(alg), stride);
      conv_fixture<float> f(4, 3, 3, stride, 1, 3, alg);
      const auto x = random_tensor<float, 4>({2, 4, 6, 6}, 5, 1);
      f.conv.forward(x);
      f.conv.backward(random_tensor<float, 4>(shape_of(f.conv.y), 5, 2));  // leaves partial sums behind
      f.store.zero_grad();
      const batch<float> empty({0, 4, 6, 6});
      REQUIRE(f.conv.forward(empty).shape()[0] == 0);
      REQUIRE(f.conv.backward(batch<float>(shape_of(f.conv.y))).shape()[0] == 0);
      for (const float g : f.store.gradients()) REQUIRE(g == 0.0f);
    }
}

TEST_CASE("conv2d gives the same result per sample as for the batch (both threading plans)", "[nn][conv2d]") {
  // large enough to be spread over threads: samples over threads for the batch of 3,
  // each GEMM's tiles over threads for a batch of one
  const auto alg = GENERATE(nn::conv_algorithm::tiled, nn::conv_algorithm::im2col_blas, nn::conv_algorithm::winograd,
                            nn::conv_algorithm::winograd4);
  const std::size_t stride = GENERATE(1, 2);
  CAPTURE(int(alg), stride);
  conv_fixture<float> f(16, 24, 3, stride, 1, 3, alg);
  const auto x = random_tensor<float, 4>({3, 16, 16, 16}, 2, 2);
  const batch<float> y = f.conv.forward(x);
  const auto g = random_tensor<float, 4>(shape_of(y), 2, 3);
  const batch<float> dx = f.conv.backward(g);
  const auto dw_all = testing::copy_of(f.store.gradients());
  f.store.zero_grad();
  for (std::size_t n = 0; n < 3; ++n) {
    batch<float> xn = xt::view(x, xt::range(n, n + 1));
    batch<float> gn = xt::view(g, xt::range(n, n + 1));
    const auto& yn = f.conv.forward(xn);
    for (std::size_t i = 0; i < yn.size(); ++i) REQUIRE(yn.data()[i] == Approx(y.data()[n * yn.size() + i]).margin(1e-5));
    const auto& dxn = f.conv.backward(gn);
    for (std::size_t i = 0; i < dxn.size(); ++i)
      REQUIRE(dxn.data()[i] == Approx(dx.data()[n * dxn.size() + i]).margin(1e-5));
  }
  for (std::size_t i = 0; i < dw_all.size(); ++i) REQUIRE(f.store.gradients()[i] == Approx(dw_all[i]).margin(1e-3));
}

TEST_CASE("conv2d rejects bad shapes and use before binding or forward", "[nn][conv2d][errors]") {
  conv_fixture<float> f(4, 3, 3, 1, 1);
  batch<float> wrong_c({2, 5, 6, 6});
  CHECK_THROWS_AS(f.conv.forward(wrong_c), softdiff::error);
  CHECK_THROWS_WITH(f.conv.forward(wrong_c), Catch::Contains("5 channels, expected 4"));
  batch<float> g({2, 3, 6, 6});
  CHECK_THROWS_WITH(f.conv.backward(g), Catch::Contains("before forward"));
  batch<float> x({2, 4, 6, 6});
  f.conv.forward(x);
  batch<float> bad_g({2, 3, 5, 6});
  CHECK_THROWS_WITH(f.conv.backward(bad_g), Catch::Contains("does not match"));
  nn::conv2d<float> valid(4, 3, 3, 1, 0);
  CHECK_THROWS_AS(valid.forward(x), softdiff::error);  // not bound
  conv_fixture<float> unpadded(4, 3, 3, 1, 0);
  batch<float> tiny({1, 4, 2, 2});
  CHECK_THROWS_WITH(unpadded.conv.forward(tiny), Catch::Contains("smaller than the kernel"));
  CHECK_THROWS_AS(nn::conv2d<float>(0, 3, 3), softdiff::error);
  CHECK_THROWS_AS(nn::conv2d<float>(4, 3, 3, 0), softdiff::error);
}

TEST_CASE("conv2d registers PyTorch names and shapes", "[nn][conv2d]") {
  nn::parameter_store<float> store;
  nn::conv2d<float> conv(4, 8, 3, 2);
  conv.declare(store, "down.0.down.conv");
  store.allocate();
  conv.bind(store);
  const auto& w = store.entry("down.0.down.conv.weight");
  CHECK(w.shape == std::vector<std::size_t>{8, 4, 3, 3});
  CHECK(w.offset == 0);
  CHECK(store.entry("down.0.down.conv.bias").shape == std::vector<std::size_t>{8});
  CHECK(conv.padding == 1);
  conv.init(noise_source{1, 2});
  const double bound = 1 / std::sqrt(36.0);
  bool spread = false;
  for (float v : conv.weight) {
    REQUIRE(std::abs(v) <= bound);
    spread = spread || std::abs(v) > bound / 2;
  }
  CHECK(spread);
}
