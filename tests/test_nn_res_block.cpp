// ResBlock of docs/refunet.md, with and without the 1x1 skip: checkpoint names and order,
// the forward against the same block composed from its layers by hand, every-element
// finite differences for x, temb and every parameter, dtemb accumulation, and the errors.
#include <catch2/catch.hpp>

#include <vector>

#include <xtensor/xview.hpp>

#include "softdiff/nn/res_block.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::check_gradient;
using softdiff::testing::copy_of;
using softdiff::testing::inner;
using softdiff::testing::random_tensor;
using softdiff::testing::span_of;

namespace {
struct block_fixture {
  nn::parameter_store<double> store;
  nn::res_block<double> block;
  block_fixture(std::size_t a, std::size_t b, std::size_t temb_ch) : block(a, b, temb_ch, 2) {
    block.declare(store, "down.0.res.1");
    store.allocate();
    block.bind(store);
    block.init(noise_source{21, 1});
    // non-trivial GroupNorm affine parameters
    for (auto* gn : {&block.norm1, &block.norm2})
      for (std::size_t c = 0; c < gn->channels; ++c) gn->weight[c] = 1.0 + 0.1 * double(c), gn->bias[c] = 0.05 * double(c);
  }
};
}  // namespace

TEST_CASE("res_block registers the spec's names in PyTorch's order", "[nn][res_block]") {
  block_fixture same(4, 4, 8), grow(4, 6, 8);
  std::vector<std::string> names;
  for (const auto& e : same.store.entries()) names.push_back(e.name);
  const std::vector<std::string> expected = {
      "down.0.res.1.norm1.weight", "down.0.res.1.norm1.bias",     "down.0.res.1.conv1.weight",
      "down.0.res.1.conv1.bias",   "down.0.res.1.temb_proj.weight", "down.0.res.1.temb_proj.bias",
      "down.0.res.1.norm2.weight", "down.0.res.1.norm2.bias",     "down.0.res.1.conv2.weight",
      "down.0.res.1.conv2.bias"};
  CHECK(names == expected);
  CHECK_FALSE(same.block.has_skip());
  REQUIRE(grow.store.entries().size() == 12);
  CHECK(grow.store.entries()[10].name == "down.0.res.1.skip.weight");
  CHECK(grow.store.entries()[10].shape == std::vector<std::size_t>{6, 4, 1, 1});
  CHECK(grow.store.entry("down.0.res.1.temb_proj.weight").shape == std::vector<std::size_t>{6, 8});
  CHECK(grow.store.entry("down.0.res.1.conv1.weight").shape == std::vector<std::size_t>{6, 4, 3, 3});
}

TEST_CASE("res_block forward equals its layers composed by hand", "[nn][res_block]") {
  for (std::size_t b : {4, 6}) {
    CAPTURE(b);
    block_fixture f(4, b, 8);
    const auto x = random_tensor<double, 4>({2, 4, 5, 5}, 2, 1);
    const auto temb = random_tensor<double, 2>({2, 8}, 2, 2);
    const batch<double> out = f.block.forward(x, temb);
    REQUIRE(shape_of(out) == shape4{2, b, 5, 5});
    // the same layers, fresh buffers, wired as in the spec
    nn::group_norm<double> n1 = f.block.norm1, n2 = f.block.norm2;
    nn::conv2d<double> c1 = f.block.conv1, c2 = f.block.conv2, sk = f.block.skip;
    nn::silu<double> s1, s2;
    nn::silu<double, 2> st;
    nn::linear<double> tp = f.block.temb_proj;
    batch<double> h = c1.forward(s1.forward(n1.forward(x)));
    const auto& proj = tp.forward(st.forward(temb));
    for (std::size_t n = 0; n < 2; ++n)
      for (std::size_t c = 0; c < b; ++c) xt::view(h, n, c) += proj(n, c);
    const auto& h2 = c2.forward(s2.forward(n2.forward(h)));
    const batch<double> res = b == 4 ? x : sk.forward(x);
    for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(out.data()[i] == Approx(h2.data()[i] + res.data()[i]));
  }
}

TEST_CASE("res_block backward passes finite differences for x, temb and every parameter",
          "[nn][res_block][gradcheck]") {
  for (std::size_t b : {4, 6}) {
    CAPTURE(b);
    block_fixture f(4, b, 8);
    auto x = random_tensor<double, 4>({2, 4, 5, 5}, 3, 1, 1.0, 0.3);
    auto temb = random_tensor<double, 2>({2, 8}, 3, 2, 1.5);
    const auto g = random_tensor<double, 4>({2, b, 5, 5}, 3, 3);
    f.block.forward(x, temb);
    nn::matrix<double> dtemb = xt::zeros<double>({2, 8});
    f.store.zero_grad();
    const auto dx = copy_of(f.block.backward(g, dtemb));
    const auto dt = copy_of(dtemb);
    const auto dp = copy_of(f.store.gradients());
    const auto loss = [&] { return inner(f.block.forward(x, temb), g); };
    const auto rx = check_gradient(span_of(x), dx, loss);
    const auto rt = check_gradient(span_of(temb), dt, loss);
    const auto rp = check_gradient(f.store.parameters(), dp, loss);
    INFO(rx.describe());
    INFO(rt.describe());
    INFO(rp.describe());
    CHECK(rx.max_error < 1e-6);
    CHECK(rt.max_error < 1e-6);
    CHECK(rp.max_error < 1e-6);
    CHECK(rx.nonzero == rx.count);
    CHECK(rt.nonzero == rt.count);
    CHECK(rp.nonzero == rp.count);
    CHECK(rp.count == f.store.size());

    // dtemb is added to, not overwritten: a second backward doubles it
    f.block.forward(x, temb);
    f.block.backward(g, dtemb);
    for (std::size_t i = 0; i < dt.size(); ++i) REQUIRE(dtemb.data()[i] == Approx(2 * dt[i]));
  }
}

TEST_CASE("res_block rejects mismatched temb and gradients", "[nn][res_block][errors]") {
  block_fixture f(4, 6, 8);
  const auto x = random_tensor<double, 4>({2, 4, 5, 5}, 4, 1);
  nn::matrix<double> temb_bad({2, 7}), temb_n({3, 8}), temb({2, 8});
  CHECK_THROWS_WITH(f.block.forward(x, temb_bad), Catch::Contains("temb [2, 7]"));
  CHECK_THROWS_AS(f.block.forward(x, temb_n), softdiff::error);
  batch<double> x_bad({2, 5, 5, 5});
  CHECK_THROWS_WITH(f.block.forward(x_bad, temb), Catch::Contains("channels, expected 4"));
  f.block.forward(x, temb);
  batch<double> g({2, 6, 5, 5}), g_bad({2, 4, 5, 5});
  nn::matrix<double> dt({2, 8}), dt_bad({2, 4});
  CHECK_THROWS_WITH(f.block.backward(g_bad, dt), Catch::Contains("does not match"));
  CHECK_THROWS_WITH(f.block.backward(g, dt_bad), Catch::Contains("dtemb [2, 4]"));
}
