// The attention core (softmax(Q^T K / sqrt(d)) V over positions) and the AttnBlock of
// docs/refunet.md: rows of the attention sum to 1, a direct float64 reference, uniform
// attention for q = 0, every-element finite differences for q, k, v, the block's input
// and every block parameter, and the errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <tuple>
#include <vector>

#include "softdiff/nn/attn_block.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::check_gradient;
using softdiff::testing::check_layer_gradients;
using softdiff::testing::copy_of;
using softdiff::testing::inner;
using softdiff::testing::random_tensor;
using softdiff::testing::span_of;

namespace {
/// o[n, c, i] = sum_j softmax_j(sum_e q[n,e,i] k[n,e,j] / sqrt(d)) v[n, c, j], from the definition.
xt::xtensor<double, 4> reference_attention(const batch<double>& q, const batch<double>& k, const batch<double>& v) {
  const std::size_t N = q.shape()[0], d = q.shape()[1], L = q.shape()[2] * q.shape()[3];
  xt::xtensor<double, 4> o(q.shape());
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t i = 0; i < L; ++i) {
      std::vector<double> s(L);
      double m = -1e300, z = 0;
      for (std::size_t j = 0; j < L; ++j) {
        double acc = 0;
        for (std::size_t e = 0; e < d; ++e) acc += q.data()[(n * d + e) * L + i] * k.data()[(n * d + e) * L + j];
        s[j] = acc / std::sqrt(double(d));
        m = std::max(m, s[j]);
      }
      for (double& x : s) z += (x = std::exp(x - m));
      for (std::size_t c = 0; c < d; ++c) {
        double acc = 0;
        for (std::size_t j = 0; j < L; ++j) acc += s[j] / z * v.data()[(n * d + c) * L + j];
        o.data()[(n * d + c) * L + i] = acc;
      }
    }
  return o;
}
}  // namespace

TEST_CASE("attention rows sum to 1 and the output matches the definition", "[nn][attention]") {
  nn::attention<double> att(4);
  const auto q = random_tensor<double, 4>({2, 4, 3, 5}, 1, 1, 1.5);
  const auto k = random_tensor<double, 4>({2, 4, 3, 5}, 1, 2, 1.5);
  const auto v = random_tensor<double, 4>({2, 4, 3, 5}, 1, 3);
  const auto& o = att.forward(q, k, v);
  const auto A = att.probabilities();
  REQUIRE(A.size() == 2 * 15 * 15);
  for (std::size_t r = 0; r < 2 * 15; ++r) {
    double s = 0;
    for (std::size_t j = 0; j < 15; ++j) {
      REQUIRE(A[r * 15 + j] > 0);
      s += A[r * 15 + j];
    }
    REQUIRE(s == Approx(1.0).epsilon(1e-14));
  }
  const auto ref = reference_attention(q, k, v);
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(o.data()[i] == Approx(ref.data()[i]).margin(1e-12));

  // float through sgemm and the float exp
  nn::attention<float> attf(4);
  const batch<float> qf = xt::cast<float>(q), kf = xt::cast<float>(k), vf = xt::cast<float>(v);
  const auto& of = attf.forward(qf, kf, vf);
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(of.data()[i] == Approx(ref.data()[i]).margin(1e-5));
}

TEST_CASE("attention with q = 0 averages v over positions", "[nn][attention]") {
  nn::attention<double> att(2);
  batch<double> q = xt::zeros<double>({1, 2, 2, 2});
  const auto k = random_tensor<double, 4>({1, 2, 2, 2}, 2, 1);
  batch<double> v({1, 2, 2, 2});
  const double vv[8] = {1, 2, 3, 4, 10, 0, 0, -2};
  std::copy(vv, vv + 8, v.data());
  const auto& o = att.forward(q, k, v);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(o.data()[i] == Approx(2.5));
    CHECK(o.data()[4 + i] == Approx(2.0));
  }
}

TEST_CASE("attention backward passes finite differences for q, k and v", "[nn][attention][gradcheck]") {
  nn::attention<double> att(4);
  auto q = random_tensor<double, 4>({2, 4, 5, 5}, 3, 1);
  auto k = random_tensor<double, 4>({2, 4, 5, 5}, 3, 2);
  auto v = random_tensor<double, 4>({2, 4, 5, 5}, 3, 3);
  const auto g = random_tensor<double, 4>({2, 4, 5, 5}, 3, 4);
  att.forward(q, k, v);
  const auto grads = att.backward(g);
  const auto dq = copy_of(grads.dq), dk = copy_of(grads.dk), dv = copy_of(grads.dv);
  const auto loss = [&] { return inner(att.forward(q, k, v), g); };
  for (auto [x, d, name] : {std::tuple{&q, &dq, "q"}, std::tuple{&k, &dk, "k"}, std::tuple{&v, &dv, "v"}}) {
    const auto r = check_gradient(span_of(*x), *d, loss);
    INFO(name << ": " << r.describe());
    CHECK(r.max_error < 1e-6);
    CHECK(r.nonzero == r.count);
  }
}

TEST_CASE("attention rejects mismatched shapes", "[nn][attention][errors]") {
  nn::attention<float> att(4);
  batch<float> q({1, 4, 3, 3}), k({1, 4, 3, 3}), v({1, 4, 3, 2}), wrong({1, 3, 3, 3});
  CHECK_THROWS_WITH(att.backward(q), Catch::Contains("before forward"));
  CHECK_THROWS_WITH(att.forward(q, k, v), Catch::Contains("must have one shape"));
  CHECK_THROWS_WITH(att.forward(wrong, wrong, wrong), Catch::Contains("3 channels, expected 4"));
  att.forward(q, k, k);
  CHECK_THROWS_WITH(att.backward(v), Catch::Contains("does not match"));
}

namespace {
struct block_fixture {
  nn::parameter_store<double> store;
  nn::attn_block<double> block;
  block_fixture(std::size_t ch, std::size_t groups) : block(ch, groups) {
    block.declare(store, "mid.attn");
    store.allocate();
    block.bind(store);
    block.init(noise_source{12, 3});
    // non-trivial GroupNorm affine parameters
    const auto w = random_tensor<double, 1>({ch}, 12, 4, 0.3, 1.0);
    for (std::size_t c = 0; c < ch; ++c) block.norm.weight[c] = w(c), block.norm.bias[c] = 0.1 * double(c);
  }
};
}  // namespace

TEST_CASE("attn_block registers the spec's names and is x plus the projected attention", "[nn][attn_block]") {
  block_fixture f(4, 2);
  const char* names[] = {"mid.attn.norm.weight", "mid.attn.norm.bias", "mid.attn.q.weight", "mid.attn.q.bias",
                         "mid.attn.k.weight",    "mid.attn.k.bias",    "mid.attn.v.weight", "mid.attn.v.bias",
                         "mid.attn.proj.weight", "mid.attn.proj.bias"};
  REQUIRE(f.store.entries().size() == 10);
  for (std::size_t i = 0; i < 10; ++i) CHECK(f.store.entries()[i].name == names[i]);
  CHECK(f.store.entry("mid.attn.q.weight").shape == std::vector<std::size_t>{4, 4, 1, 1});
  const auto x = random_tensor<double, 4>({2, 4, 3, 3}, 5, 5);
  // out - x is proj applied to the core's output
  const auto& out = f.block.forward(x);
  const auto& p = f.block.proj.y;
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(out.data()[i] == Approx(x.data()[i] + p.data()[i]));
  // the core sees the 1x1 projections of GN(x): compare with the reference attention on them
  const auto ref = reference_attention(f.block.q.y, f.block.k.y, f.block.v.y);
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(f.block.core.o.data()[i] == Approx(ref.data()[i]));
  // with a zero projection the block is the identity
  std::fill(f.block.proj.weight.begin(), f.block.proj.weight.end(), 0.0);
  std::fill(f.block.proj.bias.begin(), f.block.proj.bias.end(), 0.0);
  const auto& id = f.block.forward(x);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(id.data()[i] == x.data()[i]);
}

TEST_CASE("attn_block backward passes finite differences for x and every parameter", "[nn][attn_block][gradcheck]") {
  block_fixture f(4, 2);
  auto x = random_tensor<double, 4>({2, 4, 5, 5}, 6, 1, 1.0, 0.2);
  const auto r = check_layer_gradients(f.block, &f.store, x, 31);
  INFO(r.input.describe());
  INFO(r.parameters.describe());
  CHECK(r.input.max_error < 1e-6);
  CHECK(r.parameters.max_error < 1e-6);
  CHECK(r.input.nonzero == r.input.count);
  CHECK(r.parameters.count == 8 + 4 * (16 + 4));
  // the key bias cancels in the softmax (adds the same q_i . b_k to every j): its gradient is 0
  CHECK(r.parameters.nonzero >= r.parameters.count - 4);
  batch<double> bad({2, 4, 5, 4});
  CHECK_THROWS_WITH(f.block.backward(bad), Catch::Contains("does not match"));
}
