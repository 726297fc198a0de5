// parameter_store: layout in registration order, named views, one flat span for the
// optimiser, the two phases and their errors; and the finite-difference checker itself
// (it must flag a wrong gradient, not only pass right ones).
#include <catch2/catch.hpp>

#include <cmath>
#include <utility>
#include <vector>

#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;

TEST_CASE("parameter_store lays tensors out in registration order", "[nn][parameter_store]") {
  nn::parameter_store<float> store;
  const auto a = store.add("conv_in.weight", {32, 1, 3, 3});
  const auto b = store.add("conv_in.bias", {32});
  CHECK(a.offset == 0);
  CHECK(a.size == 288);
  CHECK(b.offset == 288);
  CHECK(store.size() == 320);
  CHECK_FALSE(store.allocated());
  store.allocate();
  CHECK(store.parameters().size() == 320);
  CHECK(store.gradients().size() == 320);
  for (float v : store.parameters()) REQUIRE(v == 0.f);
  store.values("conv_in.bias")[3] = 2.5f;
  CHECK(store.parameters()[288 + 3] == 2.5f);
  CHECK(store.values(b).data() == store.parameters().data() + 288);
  CHECK(store.grads(a).data() == store.gradients().data());
  store.grads("conv_in.bias")[0] = 1.f;
  store.zero_grad();
  CHECK(store.gradients()[288] == 0.f);
  REQUIRE(store.entries().size() == 2);
  CHECK(store.entries()[1].name == "conv_in.bias");
  CHECK(store.entries()[1].shape == std::vector<std::size_t>{32});
  CHECK(store.find("nope") == nullptr);
  CHECK(store.entry("conv_in.weight").size == 288);
  const auto& cstore = store;
  CHECK(cstore.values("conv_in.bias")[3] == 2.5f);
}

TEST_CASE("parameter_store refuses bad registrations and early access", "[nn][parameter_store][errors]") {
  nn::parameter_store<double> store;
  store.add("a.weight", {2, 3});
  CHECK_THROWS_WITH(store.add("a.weight", {1}), Catch::Contains("duplicate parameter name 'a.weight'"));
  CHECK_THROWS_WITH(store.add("b", {2, 0}), Catch::Contains("zero extent"));
  CHECK_THROWS_WITH(store.add("c", {}), Catch::Contains("empty shape"));
  CHECK_THROWS_WITH(store.add("", {1}), Catch::Contains("empty parameter name"));
  CHECK_THROWS_WITH(store.parameters(), Catch::Contains("allocate() has not been called"));
  CHECK_THROWS_WITH(store.values("a.weight"), Catch::Contains("before allocate()"));
  store.allocate();
  CHECK_THROWS_WITH(store.add("d", {1}), Catch::Contains("after allocate()"));
  CHECK_THROWS_WITH(store.allocate(), Catch::Contains("twice"));
  CHECK_THROWS_WITH(store.values("zzz"), Catch::Contains("no parameter named 'zzz'"));
  CHECK_THROWS_AS(store.values(nn::parameter_slot{5, 4}), softdiff::error);
}

TEST_CASE("layers bound to a store see one flat parameter span; views survive a move", "[nn][parameter_store]") {
  nn::parameter_store<float> store;
  nn::conv2d<float> conv(2, 4, 3);
  nn::group_norm<float> gn(2, 4);
  conv.declare(store, "conv");
  gn.declare(store, "norm");
  store.allocate();
  conv.bind(store);
  gn.bind(store);
  CHECK(store.size() == 4 * 2 * 9 + 4 + 4 + 4);
  CHECK(gn.weight.data() == store.parameters().data() + 4 * 2 * 9 + 4);
  conv.init(noise_source{1, 1});
  gn.init();
  // one noise_source for the whole network: deviates are indexed by store offset, so layers differ
  CHECK(conv.bias[0] != conv.weight[0]);
  CHECK(gn.weight[2] == 1.f);
  const float* before = store.parameters().data();
  nn::parameter_store<float> moved = std::move(store);
  CHECK(moved.parameters().data() == before);
  CHECK(conv.weight.data() == before);
  // a copy owns new buffers; binding again points the layer at them
  nn::parameter_store<float> copy = moved;
  CHECK(copy.parameters().data() != before);
  conv.bind(copy);
  CHECK(conv.weight.data() == copy.parameters().data());
}

TEST_CASE("check_gradient flags a wrong gradient and passes the right one", "[nn][grad_check]") {
  // L(v) = sum_i sin(v_i) * (i + 1): dL/dv_i = cos(v_i) (i + 1)
  std::vector<double> v = {0.3, -1.2, 2.0, 0.7};
  const auto loss = [&] {
    double s = 0;
    for (std::size_t i = 0; i < v.size(); ++i) s += std::sin(v[i]) * double(i + 1);
    return s;
  };
  std::vector<double> right(4), wrong(4);
  for (std::size_t i = 0; i < 4; ++i) right[i] = std::cos(v[i]) * double(i + 1);
  wrong = right;
  wrong[2] *= 1.001;
  const auto ok = testing::check_gradient(std::span<double>(v), right, loss);
  const auto bad = testing::check_gradient(std::span<double>(v), wrong, loss);
  CHECK(ok.max_error < 1e-9);
  CHECK(bad.max_error > 1e-4);
  CHECK(bad.worst == 2);
  CHECK(v[2] == 2.0);  // restored
  CHECK(ok.nonzero == 4);
}
