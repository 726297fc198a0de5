// SiLU, Linear, nearest x2 upsampling, channel concatenation and the sinusoidal time
// embedding with its MLP: hand-computed forwards, every-element finite differences in
// float64 for inputs and parameters, and the shape errors.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <xtensor/xview.hpp>

#include "softdiff/nn/concat.hpp"
#include "softdiff/nn/linear.hpp"
#include "softdiff/nn/silu.hpp"
#include "softdiff/nn/time_embedding.hpp"
#include "softdiff/nn/upsample.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::check_gradient;
using softdiff::testing::check_layer_gradients;
using softdiff::testing::copy_of;
using softdiff::testing::inner;
using softdiff::testing::random_tensor;
using softdiff::testing::span_of;

TEST_CASE("silu forward is x sigmoid(x), also far in the tails", "[nn][silu]") {
  nn::silu<float> act;
  batch<float> x({1, 1, 1, 7});
  const float v[7] = {-100.f, -20.f, -1.f, 0.f, 0.5f, 3.f, 100.f};
  std::copy(v, v + 7, x.data());
  const auto& y = act.forward(x);
  for (std::size_t i = 0; i < 7; ++i) {
    const double ref = double(v[i]) / (1 + std::exp(-double(v[i])));
    CHECK(y.data()[i] == Approx(ref).epsilon(1e-6).margin(1e-30));
  }
  // the float exp stays within a few ulp over the whole range used by sigmoid
  for (float t = -87.f; t <= 88.f; t += 0.01f)
    REQUIRE(nn::detail::exp_f32(t) == Approx(std::exp(double(t))).epsilon(3e-7));
}

TEST_CASE("SiLU rows give each element the scalar arithmetic's bits, whatever the vector width",
          "[nn][silu]") {
  // affine_silu_row runs sixteen lanes (channel_affine.hpp); a one-element call takes the
  // scalar path, so the two agree bit for bit only if the width changes no element's value
  const std::size_t n = 16 * 7 + 13;  // full vectors and a tail
  std::vector<float> x(n), row(n), one(n), act_row(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = 12.0f * std::sin(0.37f * static_cast<float>(i)) + 1e-3f * static_cast<float>(i);
  x[3] = -100.f, x[5] = 95.f, x[8] = 0.f, x[13] = -0.f;
  const float a = 1.37f, b = -0.21f;
  nn::detail::affine_silu_row(x.data(), n, a, b, row.data());
  for (std::size_t i = 0; i < n; ++i) nn::detail::affine_silu_row(x.data() + i, 1, a, b, one.data() + i);
  std::size_t differ = 0, nonzero = 0;
  for (std::size_t i = 0; i < n; ++i) {
    differ += std::bit_cast<std::uint32_t>(row[i]) != std::bit_cast<std::uint32_t>(one[i]);
    nonzero += row[i] != 0.0f;
    const double v = a * static_cast<double>(x[i]) + b;
    REQUIRE(std::abs(row[i] - v / (1.0 + std::exp(-v))) <= 1e-6 * std::max(1.0, std::abs(v)));
  }
  CHECK(differ == 0);
  CHECK(nonzero > n / 2);
  // the silu layer's sixteen-lane loop against the same per-element arithmetic
  nn::silu<float> act;
  batch<float> xb({1, 1, 1, n});
  std::copy(x.begin(), x.end(), xb.data());
  std::copy_n(act.forward(xb).data(), n, act_row.data());
  nn::silu<float> single;
  batch<float> xi({1, 1, 1, 1});
  for (std::size_t i = 0; i < n; ++i) {
    xi.data()[0] = x[i];
    REQUIRE(std::bit_cast<std::uint32_t>(single.forward(xi).data()[0]) == std::bit_cast<std::uint32_t>(act_row[i]));
  }
}

TEST_CASE("silu backward passes finite differences", "[nn][silu][gradcheck]") {
  nn::silu<double> act;
  auto x = random_tensor<double, 4>({2, 4, 5, 5}, 3, 1, 2.0, 0.0);
  const auto r = check_layer_gradients(act, static_cast<nn::parameter_store<double>*>(nullptr), x, 5);
  INFO(r.input.describe());
  CHECK(r.input.max_error < 1e-6);
  CHECK(r.input.nonzero == r.input.count);
  // the rank-2 instance (time embedding)
  nn::silu<double, 2> act2;
  auto m = random_tensor<double, 2>({3, 6}, 3, 2, 2.0);
  const auto g = random_tensor<double, 2>({3, 6}, 3, 3);
  act2.forward(m);
  const auto dm = copy_of(act2.backward(g));
  const auto r2 = check_gradient(span_of(m), dm, [&] { return inner(act2.forward(m), g); });
  INFO(r2.describe());
  CHECK(r2.max_error < 1e-6);
  batch<double> bad({2, 4, 5, 4});
  CHECK_THROWS_WITH(act.backward(bad), Catch::Contains("does not match"));
  nn::silu<double> fresh;
  CHECK_THROWS_WITH(fresh.backward(bad), Catch::Contains("before forward"));
}

namespace {
template <class T>
struct linear_fixture {
  nn::parameter_store<T> store;
  nn::linear<T> fc;
  linear_fixture(std::size_t a, std::size_t b) : fc(a, b) {
    fc.declare(store, "temb.0");
    store.allocate();
    fc.bind(store);
    fc.init(noise_source{9, 1});
  }
};
}  // namespace

TEST_CASE("linear computes x W^T + bias", "[nn][linear]") {
  linear_fixture<double> f(3, 2);
  const double w[6] = {1, 2, 3, -1, 0, 4};
  std::copy(w, w + 6, f.fc.weight.begin());
  f.fc.bias[0] = 0.5, f.fc.bias[1] = -0.5;
  nn::matrix<double> x({2, 3});
  const double xv[6] = {1, 1, 1, 2, -1, 0.5};
  std::copy(xv, xv + 6, x.data());
  const auto& y = f.fc.forward(x);
  CHECK(y(0, 0) == Approx(6.5));
  CHECK(y(0, 1) == Approx(2.5));
  CHECK(y(1, 0) == Approx(2 - 2 + 1.5 + 0.5));
  CHECK(y(1, 1) == Approx(-2 + 2 - 0.5));
  CHECK(f.store.entry("temb.0.weight").shape == std::vector<std::size_t>{2, 3});
}

TEST_CASE("linear backward passes finite differences for x, W and bias", "[nn][linear][gradcheck]") {
  linear_fixture<double> f(5, 4);
  auto x = random_tensor<double, 2>({3, 5}, 2, 1, 1.0, 0.2);
  const auto g = random_tensor<double, 2>({3, 4}, 2, 2);
  f.fc.forward(x);
  const auto dx = copy_of(f.fc.backward(g));
  const auto dp = copy_of(f.store.gradients());
  const auto loss = [&] { return inner(f.fc.forward(x), g); };
  const auto rx = check_gradient(span_of(x), dx, loss);
  const auto rp = check_gradient(f.store.parameters(), dp, loss);
  INFO(rx.describe());
  INFO(rp.describe());
  CHECK(rx.max_error < 1e-6);
  CHECK(rp.max_error < 1e-6);
  CHECK(rx.nonzero == rx.count);
  CHECK(rp.nonzero == rp.count);
  nn::matrix<double> bad({3, 6});
  CHECK_THROWS_WITH(f.fc.forward(bad), Catch::Contains("6 features, expected 5"));
  nn::matrix<double> bad_g({3, 3});
  CHECK_THROWS_WITH(f.fc.backward(bad_g), Catch::Contains("does not match"));
  CHECK_THROWS_AS(nn::linear<float>(0, 3), softdiff::error);
}

TEST_CASE("upsample_nearest2x repeats each pixel in a 2x2 block", "[nn][upsample]") {
  nn::upsample_nearest2x<double> up;
  batch<double> x({1, 2, 2, 3});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = double(i);
  const auto& y = up.forward(x);
  REQUIRE(shape_of(y) == shape4{1, 2, 4, 6});
  for (std::size_t c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t j = 0; j < 6; ++j) REQUIRE(y(0, c, i, j) == x(0, c, i / 2, j / 2));
}

TEST_CASE("upsample_nearest2x backward passes finite differences", "[nn][upsample][gradcheck]") {
  nn::upsample_nearest2x<double> up;
  auto x = random_tensor<double, 4>({2, 4, 5, 5}, 6, 1);
  const auto r = check_layer_gradients(up, static_cast<nn::parameter_store<double>*>(nullptr), x, 8);
  INFO(r.input.describe());
  CHECK(r.input.max_error < 1e-6);
  CHECK(r.input.nonzero == r.input.count);
  batch<double> bad({2, 4, 10, 9});
  CHECK_THROWS_WITH(up.backward(bad), Catch::Contains("does not match"));
  nn::upsample_nearest2x<double> fresh;
  CHECK_THROWS_WITH(fresh.backward(bad), Catch::Contains("before forward"));
}

TEST_CASE("concat_channels puts the current activation first, then the skip", "[nn][concat][gradcheck]") {
  nn::concat_channels<double> cat;
  auto a = random_tensor<double, 4>({2, 3, 5, 5}, 1, 1);
  auto b = random_tensor<double, 4>({2, 4, 5, 5}, 1, 2);
  const auto& y = cat.forward(a, b);
  REQUIRE(shape_of(y) == shape4{2, 7, 5, 5});
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 7; ++c)
      for (std::size_t i = 0; i < 25; ++i)
        REQUIRE(y(n, c, i / 5, i % 5) == (c < 3 ? a(n, c, i / 5, i % 5) : b(n, c - 3, i / 5, i % 5)));
  const auto g = random_tensor<double, 4>({2, 7, 5, 5}, 1, 3);
  const auto d = cat.backward(g);
  const auto da = copy_of(d.first), db = copy_of(d.second);
  const auto loss = [&] { return inner(cat.forward(a, b), g); };
  const auto ra = check_gradient(span_of(a), da, loss);
  const auto rb = check_gradient(span_of(b), db, loss);
  INFO(ra.describe());
  INFO(rb.describe());
  CHECK(ra.max_error < 1e-6);
  CHECK(rb.max_error < 1e-6);
  CHECK(ra.nonzero == ra.count);
  CHECK(rb.nonzero == rb.count);
  batch<double> other({2, 4, 5, 6});
  CHECK_THROWS_WITH(cat.forward(a, other), Catch::Contains("differ outside the channel axis"));
  batch<double> bad({2, 6, 5, 5});
  CHECK_THROWS_WITH(cat.backward(bad), Catch::Contains("does not match"));
}

TEST_CASE("sinusoidal_embedding follows the spec's formula", "[nn][time_embedding]") {
  const std::vector<double> t = {0.0, 0.25, 1.0};
  nn::matrix<double> e;
  nn::sinusoidal_embedding<double>(t, 8, e);
  REQUIRE(e.shape()[0] == 3);
  REQUIRE(e.shape()[1] == 8);
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t k = 0; k < 4; ++k) {
      const double f = std::pow(10000.0, -double(k) / 3.0);  // exp(-ln(10000) k / (h - 1)), h = 4
      CHECK(e(n, k) == Approx(std::sin(t[n] * f * 1000)).margin(1e-12));
      CHECK(e(n, 4 + k) == Approx(std::cos(t[n] * f * 1000)).margin(1e-12));
    }
  // t = 0: all sines 0, all cosines 1; the last frequency is 1 / 10000
  CHECK(e(0, 0) == 0.0);
  CHECK(e(0, 7) == 1.0);
  CHECK(e(2, 3) == Approx(std::sin(0.1)));
  std::vector<double> nan_t = {0.5, std::nan("")};
  CHECK_THROWS_WITH(nn::sinusoidal_embedding<double>(nan_t, 8, e), Catch::Contains("non-finite t"));
  CHECK_THROWS_WITH(nn::sinusoidal_embedding<double>(t, 7, e), Catch::Contains("must be even"));
}

TEST_CASE("time_embedding MLP registers temb.0 and temb.2 and passes finite differences",
          "[nn][time_embedding][gradcheck]") {
  nn::parameter_store<double> store;
  nn::time_embedding<double> te(4);
  te.declare(store, "temb");
  store.allocate();
  te.bind(store);
  te.init(noise_source{4, 4});
  REQUIRE(store.entries().size() == 4);
  CHECK(store.entries()[0].name == "temb.0.weight");
  CHECK(store.entries()[0].shape == std::vector<std::size_t>{16, 4});
  CHECK(store.entries()[3].name == "temb.2.bias");
  CHECK(store.entries()[3].shape == std::vector<std::size_t>{16});
  const std::vector<double> t = {0.1, 0.7, 0.35};
  const auto& temb = te.forward(t);
  REQUIRE(temb.shape()[0] == 3);
  REQUIRE(temb.shape()[1] == 16);
  const auto g = random_tensor<double, 2>({3, 16}, 4, 5);
  te.backward(g);
  const auto dp = copy_of(store.gradients());
  const auto r = check_gradient(store.parameters(), dp, [&] { return inner(te.forward(t), g); });
  INFO(r.describe());
  CHECK(r.max_error < 1e-6);
  CHECK(r.nonzero == r.count);
}
