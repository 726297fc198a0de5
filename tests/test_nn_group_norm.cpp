// group_norm: normalised output per group (zero mean, unit variance before the affine map),
// the affine map itself, a direct float64 reference, float against double, every-element
// finite differences for x, gamma and beta, and the errors.
#include <catch2/catch.hpp>

#include <cmath>

#include <xtensor/xview.hpp>

#include "softdiff/nn/group_norm.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::check_layer_gradients;
using softdiff::testing::random_tensor;

namespace {

template <class T>
struct gn_fixture {
  nn::parameter_store<T> store;
  nn::group_norm<T> gn;
  gn_fixture(std::size_t groups, std::size_t ch, double eps = 1e-5) : gn(groups, ch, eps) {
    gn.declare(store, "norm");
    store.allocate();
    gn.bind(store);
    gn.init();
  }
  void randomise_affine(std::uint64_t seed) {
    const auto w = random_tensor<double, 1>({gn.channels}, seed, 1, 0.5, 1.0);
    const auto b = random_tensor<double, 1>({gn.channels}, seed, 2, 0.5, 0.0);
    for (std::size_t c = 0; c < gn.channels; ++c) gn.weight[c] = T(w(c)), gn.bias[c] = T(b(c));
  }
};

}  // namespace

TEST_CASE("group_norm output has zero mean and unit variance per group before the affine map", "[nn][group_norm]") {
  gn_fixture<double> f(2, 4, 1e-5);
  auto x = random_tensor<double, 4>({2, 4, 5, 5}, 4, 1, 3.0, 0.0);
  for (std::size_t c = 0; c < 4; ++c) xt::view(x, xt::all(), c) += double(c) * 2.0 - 1.0;  // unequal channel means
  const auto& y = f.gn.forward(x);
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t g = 0; g < 2; ++g) {
      double s = 0, s2 = 0, sx = 0, sx2 = 0;
      for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
        for (std::size_t i = 0; i < 5; ++i)
          for (std::size_t j = 0; j < 5; ++j) s += y(n, c, i, j), s2 += y(n, c, i, j) * y(n, c, i, j), sx += x(n, c, i, j);
      const double mean = s / 50, var = s2 / 50 - mean * mean;
      CHECK(std::abs(mean) < 1e-12);
      // biased variance of x over the group, then var(y) = var / (var + eps)
      for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
        for (std::size_t i = 0; i < 5; ++i)
          for (std::size_t j = 0; j < 5; ++j) sx2 += (x(n, c, i, j) - sx / 50) * (x(n, c, i, j) - sx / 50);
      const double vx = sx2 / 50;
      CHECK(var == Approx(vx / (vx + 1e-5)).epsilon(1e-12));
      CHECK(f.gn.saved_mean()[n * 2 + g] == Approx(sx / 50));
      CHECK(f.gn.saved_rstd()[n * 2 + g] == Approx(1 / std::sqrt(vx + 1e-5)));
    }
}

TEST_CASE("group_norm applies gamma and beta per channel", "[nn][group_norm]") {
  // one group of one channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25
  gn_fixture<double> f(1, 1, 1e-5);
  f.gn.weight[0] = 2.0, f.gn.bias[0] = -1.0;
  batch<double> x({1, 1, 2, 2});
  for (std::size_t i = 0; i < 4; ++i) x.data()[i] = double(i + 1);
  const auto& y = f.gn.forward(x);
  const double r = 1 / std::sqrt(1.25 + 1e-5);
  for (std::size_t i = 0; i < 4; ++i) CHECK(y.data()[i] == Approx(2.0 * (double(i + 1) - 2.5) * r - 1.0));
}

TEST_CASE("group_norm in float matches double", "[nn][group_norm]") {
  gn_fixture<double> d(8, 32);
  gn_fixture<float> f(8, 32);
  d.randomise_affine(3), f.randomise_affine(3);
  // large enough to run on several threads
  const auto x = random_tensor<double, 4>({4, 32, 16, 16}, 5, 1, 2.0, 0.5);
  const batch<float> xf = xt::cast<float>(x);
  const auto g = random_tensor<double, 4>({4, 32, 16, 16}, 5, 2);
  const batch<float> gf = xt::cast<float>(g);
  const auto& yd = d.gn.forward(x);
  const auto& yf = f.gn.forward(xf);
  for (std::size_t i = 0; i < yd.size(); ++i) REQUIRE(yf.data()[i] == Approx(yd.data()[i]).margin(2e-5));
  const auto& dxd = d.gn.backward(g);
  const auto& dxf = f.gn.backward(gf);
  for (std::size_t i = 0; i < dxd.size(); ++i) REQUIRE(dxf.data()[i] == Approx(dxd.data()[i]).margin(2e-5));
  for (std::size_t i = 0; i < d.store.size(); ++i)
    REQUIRE(f.store.gradients()[i] == Approx(d.store.gradients()[i]).epsilon(1e-4).margin(1e-2));
}

TEST_CASE("group_norm backward passes finite differences for x, gamma and beta", "[nn][group_norm][gradcheck]") {
  for (std::size_t groups : {1, 2, 4}) {
    CAPTURE(groups);
    gn_fixture<double> f(groups, 4);
    f.randomise_affine(7 + groups);
    auto x = random_tensor<double, 4>({2, 4, 5, 5}, 8, groups, 1.5, 0.4);
    const auto r = check_layer_gradients(f.gn, &f.store, x, 17);
    INFO(r.input.describe());
    INFO(r.parameters.describe());
    CHECK(r.input.max_error < 1e-6);
    CHECK(r.parameters.max_error < 1e-6);
    CHECK(r.input.nonzero == r.input.count);
    CHECK(r.parameters.nonzero == r.parameters.count);
    CHECK(r.parameters.count == 8);
  }
}

TEST_CASE("group_norm adds parameter gradients and can skip dx", "[nn][group_norm]") {
  gn_fixture<double> f(2, 4);
  const auto x = random_tensor<double, 4>({2, 4, 3, 3}, 1, 1);
  const auto g = random_tensor<double, 4>({2, 4, 3, 3}, 1, 2);
  f.gn.forward(x);
  f.gn.backward(g);
  const auto once = testing::copy_of(f.store.gradients());
  f.gn.dx.fill(3.0);
  f.gn.backward(g, false);
  for (double v : f.gn.dx) REQUIRE(v == 3.0);
  for (std::size_t i = 0; i < once.size(); ++i) REQUIRE(f.store.gradients()[i] == Approx(2 * once[i]));
  // the beta gradient is the plain sum of dy per channel
  for (std::size_t c = 0; c < 4; ++c) CHECK(once[4 + c] == Approx(xt::sum(xt::view(g, xt::all(), c))()));
}

TEST_CASE("group_norm rejects bad configurations and shapes", "[nn][group_norm][errors]") {
  CHECK_THROWS_WITH(nn::group_norm<float>(3, 8), Catch::Contains("cannot be split into 3 groups"));
  CHECK_THROWS_AS(nn::group_norm<float>(0, 8), softdiff::error);
  CHECK_THROWS_WITH(nn::group_norm<float>(2, 8, 0.0), Catch::Contains("eps"));
  gn_fixture<float> f(2, 4);
  batch<float> x({1, 6, 3, 3});
  CHECK_THROWS_WITH(f.gn.forward(x), Catch::Contains("6 channels, expected 4"));
  batch<float> g({1, 4, 3, 3});
  CHECK_THROWS_WITH(f.gn.backward(g), Catch::Contains("before forward"));
  batch<float> ok({1, 4, 3, 3});
  f.gn.forward(ok);
  batch<float> bad({1, 4, 3, 2});
  CHECK_THROWS_WITH(f.gn.backward(bad), Catch::Contains("does not match"));
  nn::group_norm<float> unbound(2, 4);
  CHECK_THROWS_WITH(unbound.forward(ok), Catch::Contains("not bound"));
}
