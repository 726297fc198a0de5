// RefUNet (docs/refunet.md): parameter count and names of the default configuration, the
// configuration's validation and JSON form, deterministic initialisation, shapes the network
// accepts and rejects, steady-state calls without heap allocation, and a whole-network float64
// central-difference gradient check on a tiny configuration (every tensor, and the input).
// The PyTorch comparison is in test_refunet_golden.cpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "softdiff/concepts.hpp"
#include "softdiff/nn/refunet.hpp"
#include "support/allocation_counter.hpp"
#include "support/grad_check.hpp"
#include "support/omp_threads.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;
using softdiff::testing::inner;
using softdiff::testing::random_tensor;

static_assert(TrainableDenoiser<nn::refunet<float>>);
static_assert(TrainableDenoiser<nn::refunet<double>>);

namespace {

/// Three levels (so 28 and 32 both fit), few channels: fast enough for shape tests.
nn::refunet_config small_config() {
  nn::refunet_config c;
  c.base_channels = 8;
  c.groups = 4;
  c.num_res_blocks = 1;
  return c;
}

/// The gradient-check network: two levels, one block each, two groups, attention on.
nn::refunet_config tiny_config() {
  nn::refunet_config c;
  c.base_channels = 8;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.groups = 2;
  return c;
}

std::vector<double> times(std::size_t n) {
  std::vector<double> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = 0.05 + 0.9 * double(i) / double(std::max<std::size_t>(n, 2) - 1);
  return t;
}

}  // namespace

TEST_CASE("refunet default configuration has 1,539,329 parameters under the spec's names", "[nn][refunet]") {
  nn::refunet<float> net;
  CHECK(net.parameter_count() == 1539329);
  CHECK(net.parameters().size() == 1539329);
  CHECK(net.gradients().size() == 1539329);
  const auto& entries = net.store().entries();
  REQUIRE(entries.size() == 218);  // len(RefUNet().state_dict()) in PyTorch
  // PyTorch's state_dict() order: temb, conv_in, encoder, middle, decoder (up.0 first), output
  CHECK(entries.front().name == "temb.0.weight");
  CHECK(entries.front().shape == std::vector<std::size_t>{128, 32});
  CHECK(entries[4].name == "conv_in.weight");
  CHECK(entries[4].shape == std::vector<std::size_t>{32, 1, 3, 3});
  CHECK(entries.back().name == "conv_out.bias");
  CHECK(entries.back().shape == std::vector<std::size_t>{1});
  const auto shape = [&](const char* n) { return net.store().entry(n).shape; };
  using v = std::vector<std::size_t>;
  CHECK(shape("temb.2.weight") == v{128, 128});
  CHECK(shape("down.0.res.1.conv2.weight") == v{32, 32, 3, 3});
  CHECK(shape("down.1.res.0.skip.weight") == v{64, 32, 1, 1});
  CHECK(shape("down.1.res.0.temb_proj.weight") == v{64, 128});
  CHECK(shape("down.0.down.conv.weight") == v{32, 32, 3, 3});
  CHECK(shape("mid.attn.q.weight") == v{64, 64, 1, 1});
  CHECK(shape("mid.attn.norm.weight") == v{64});
  CHECK(shape("up.2.res.0.norm1.weight") == v{128});  // 64 (h) + 64 (skip)
  CHECK(shape("up.0.res.2.conv1.weight") == v{32, 64, 3, 3});
  CHECK(shape("up.1.up.conv.weight") == v{64, 64, 3, 3});
  CHECK(net.store().find("up.0.up.conv.weight") == nullptr);
  CHECK(net.store().find("down.2.down.conv.weight") == nullptr);
  CHECK(shape("norm_out.weight") == v{32});
  // the decoder's input channel counts: concat(h, skip) for every block
  CHECK(shape("up.2.res.2.conv1.weight") == v{64, 128, 3, 3});
  CHECK(shape("up.1.res.2.conv1.weight") == v{64, 96, 3, 3});
  CHECK(shape("up.0.res.0.conv1.weight") == v{32, 96, 3, 3});
  std::size_t total = 0;
  for (const auto& e : entries) total += e.size;
  CHECK(total == 1539329);
  // three channels in, three out
  nn::refunet_config rgb;
  rgb.in_channels = 3;
  nn::refunet<float> net3(rgb);
  CHECK(net3.store().entry("conv_out.weight").shape == v{3, 32, 3, 3});
  CHECK(net3.parameter_count() == 1539329 + 2 * 9 * 32 + 2 * 9 * 32 + 2);
}

TEST_CASE("refunet_config validates its fields and round-trips through JSON", "[nn][refunet][config]") {
  const nn::refunet_config d;
  CHECK(d.base_channels == 32);
  CHECK(d.channel_mult == std::vector<std::size_t>{1, 2, 2});
  CHECK(d.num_res_blocks == 2);
  CHECK(d.attn_at_lowest);
  CHECK(d.groups == 8);
  CHECK(d.norm_eps == 1e-5);
  CHECK(d.size_multiple() == 4);
  CHECK_NOTHROW(d.validate());
  CHECK_NOTHROW(d.check_image_size(28, 28));
  CHECK_NOTHROW(d.check_image_size(32, 32));
  CHECK_THROWS_WITH(d.check_image_size(30, 30), Contains("30x30") && Contains("multiple of 2^(levels - 1) = 4"));

  auto bad = [](auto edit) {
    nn::refunet_config c;
    edit(c);
    return c;
  };
  CHECK_THROWS_WITH(bad([](auto& c) { c.groups = 3; }).validate(), Contains("not divisible by groups 3"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.channel_mult = {1, 3}; c.base_channels = 12; c.groups = 8; }).validate(),
                    Contains("base_channels 12 is not divisible"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.base_channels = 6; c.groups = 3; c.channel_mult = {1, 1}; c.base_channels = 7; }).validate(),
                    Contains("even"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.channel_mult.clear(); }).validate(), Contains("channel_mult has 0 levels"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.channel_mult = {1, 0, 2}; }).validate(), Contains("channel_mult[1]"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.num_res_blocks = 0; }).validate(), Contains("num_res_blocks"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.in_channels = 0; }).validate(), Contains("in_channels"));
  CHECK_THROWS_WITH(bad([](auto& c) { c.norm_eps = 0; }).validate(), Contains("norm_eps"));
  CHECK_THROWS_WITH(nn::refunet<float>(bad([](auto& c) { c.groups = 5; })), Contains("groups 5"));

  // JSON: the spec's field names, round trip, defaults for missing keys, errors for the rest
  nn::refunet_config c = small_config();
  c.attn_at_lowest = false;
  c.norm_eps = 1e-6;
  c.channel_mult = {1, 2, 4};
  const nlohmann::json j = c;
  CHECK(j.at("base_channels") == 8);
  CHECK(j.at("channel_mult") == nlohmann::json::array({1, 2, 4}));
  CHECK(j.at("attn_at_lowest") == false);
  CHECK(j.size() == 7);
  CHECK(j.get<nn::refunet_config>() == c);
  CHECK(nn::refunet_config_from_json_text(nn::to_json_text(c)) == c);
  CHECK(nn::refunet_config_from_json_text("{}") == nn::refunet_config{});
  CHECK(nn::refunet_config_from_json_text(R"({"base_channels": 16, "groups": 4})").base_channels == 16);
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text(R"({"base_channel": 16})"), Contains("unknown key \"base_channel\""));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text(R"({"groups": "8"})"), Contains("\"groups\" must be"));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text(R"({"groups": -8})"), Contains("\"groups\" must be"));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text(R"({"channel_mult": 2})"), Contains("channel_mult"));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text(R"({"attn_at_lowest": 1})"), Contains("attn_at_lowest"));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text(R"({"groups": 7})"), Contains("not divisible by groups 7"));
  CHECK_THROWS_WITH(nn::refunet_config_from_json_text("[1, 2"), Contains("not valid JSON"));
  CHECK(std::string(nn::refunet_config::metadata_key) == "refunet_config");
}

TEST_CASE("refunet::init is PyTorch's default initialisation, deterministic and thread-independent",
          "[nn][refunet][init]") {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  nn::refunet<float> one(small_config(), 42);
  omp_set_num_threads(std::max(2, threads));
  nn::refunet<float> two(small_config(), 42), other(small_config(), 43);
  omp_set_num_threads(threads);
  const auto p1 = one.parameters(), p2 = two.parameters(), p3 = other.parameters();
  CHECK(std::equal(p1.begin(), p1.end(), p2.begin()));
  CHECK_FALSE(std::equal(p1.begin(), p1.end(), p3.begin()));
  for (const auto& e : one.store().entries()) {
    INFO(e.name);
    const auto v = one.store().values(e.name);
    double lo = 1e9, hi = -1e9;
    for (float x : v) lo = std::min(lo, double(x)), hi = std::max(hi, double(x));
    const bool norm = e.name.find("norm") != std::string::npos;
    if (norm) {  // GroupNorm: weight 1, bias 0
      const double want = e.name.ends_with(".weight") ? 1.0 : 0.0;
      CHECK(lo == want);
      CHECK(hi == want);
      continue;
    }
    // Conv2d / Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias alike
    const auto& w = one.store().entry(e.name.substr(0, e.name.rfind('.')) + ".weight").shape;
    std::size_t fan_in = 1;
    for (std::size_t i = 1; i < w.size(); ++i) fan_in *= w[i];
    const double bound = 1.0 / std::sqrt(double(fan_in));
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    if (v.size() >= 64) {  // spread over most of the range
      CHECK(lo < -0.8 * bound);
      CHECK(hi > 0.8 * bound);
    }
  }
  // re-initialising gives the same values again and clears the gradients
  two.gradients()[3] = 1.0f;
  two.parameters()[5] = 9.0f;
  two.init(42);
  CHECK(std::equal(p1.begin(), p1.end(), two.parameters().begin()));
  CHECK(two.gradients()[3] == 0.0f);
}

TEST_CASE("refunet takes any batch size and 28x28 or 32x32 images; samples are independent",
          "[nn][refunet][shapes]") {
  nn::refunet<float> net(small_config(), 7);
  for (std::size_t size : {28, 32}) {
    const auto x = random_tensor<float, 4>({3, 1, size, size}, 1, size);
    const auto t = times(3);
    batch<float> phi;
    net.predict(x, t, phi);
    REQUIRE(shape_of(phi) == shape4{3, 1, size, size});
    // GroupNorm works per sample: image 1 alone gives the same output as inside the batch
    batch<float> x1({1, 1, size, size}), phi1;
    std::copy(x.data() + size * size, x.data() + 2 * size * size, x1.data());
    const double t1[] = {t[1]};
    net.predict(x1, t1, phi1);
    REQUIRE(shape_of(phi1) == shape4{1, 1, size, size});
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < size * size; ++i) {
      worst = std::max(worst, std::abs(double(phi1.data()[i]) - double(phi.data()[size * size + i])));
      scale = std::max(scale, std::abs(double(phi1.data()[i])));
    }
    CHECK(scale > 1e-3);
    CHECK(worst <= 1e-5 * scale);
    // the output depends on t
    const double t2[] = {0.9};
    batch<float> phi2;
    net.predict(x1, t2, phi2);
    CHECK(std::abs(double(phi2.data()[17]) - double(phi1.data()[17])) > 1e-6);
    // phi may be x itself
    batch<float> inplace = x;
    net.predict(inplace, t, inplace);
    CHECK(std::equal(inplace.begin(), inplace.end(), phi.begin()));
  }
}

TEST_CASE("refunet rejects inputs it cannot take, naming the problem", "[nn][refunet][errors]") {
  nn::refunet<float> net(small_config(), 7);
  batch<float> phi;
  const auto t2 = times(2);
  CHECK_THROWS_WITH(net.backward(batch<float>({2, 1, 28, 28})), Contains("before forward"));
  CHECK_THROWS_WITH(net.predict(batch<float>({2, 1, 30, 30}), t2, phi), Contains("30x30") && Contains("= 4"));
  CHECK_THROWS_WITH(net.predict(batch<float>({2, 1, 28, 30}), t2, phi), Contains("28x30"));
  net.predict(batch<float>({2, 1, 28, 32}, 0.5f), t2, phi);  // H != W is fine when both fit
  CHECK(shape_of(phi) == shape4{2, 1, 28, 32});
  CHECK_THROWS_WITH(net.predict(batch<float>({2, 3, 28, 28}), t2, phi), Contains("3 channels") && Contains("in_channels = 1"));
  CHECK_THROWS_WITH(net.predict(batch<float>({0, 1, 28, 28}), {}, phi), Contains("empty batch"));
  CHECK_THROWS_WITH(net.predict(batch<float>({2, 1, 28, 28}), times(3), phi), Contains("3 times t for a batch of 2"));
  const double bad_t[] = {0.5, std::numeric_limits<double>::quiet_NaN()};
  CHECK_THROWS_WITH(net.predict(batch<float>({2, 1, 28, 28}), bad_t, phi), Contains("non-finite t") && Contains("image 1"));
  batch<float> x({2, 1, 28, 28});
  x.fill(0.5f);
  x(1, 0, 3, 4) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(net.predict(x, t2, phi), Contains("non-finite value") && Contains("refunet::forward"));
  x(1, 0, 3, 4) = 0.0f;
  net.forward(x, t2, phi);
  CHECK_THROWS_WITH(net.backward(batch<float>({2, 1, 32, 32})), Contains("does not match"));
  batch<float> g({2, 1, 28, 28});
  g.fill(1.0f);
  g(0, 0, 0, 0) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(net.backward(g), Contains("dphi"));
  CHECK_THROWS_WITH(net.input_gradient(), Contains("backward(dphi, true)"));
}

TEST_CASE("refunet: steady-state forward and backward allocate nothing; gradients accumulate",
          "[nn][refunet][alloc]") {
  nn::refunet<float> net(small_config(), 3);
  // batch 20 (10 per thread on two threads): shape strings such as "[10, 16, 14, 14]" no longer
  // fit std::string's inline buffer, so a message built eagerly on every call would allocate
  const auto x = random_tensor<float, 4>({20, 1, 28, 28}, 5, 1);
  const auto g = random_tensor<float, 4>({20, 1, 28, 28}, 5, 2);
  const auto t = times(20);
  batch<float> phi;
  for (int warm = 0; warm < 2; ++warm) {
    net.forward(x, t, phi);
    net.backward(g);
  }
  const float* phi_data = phi.data();
  const auto& in = net.internals();
  const float* buffers[] = {in.conv_in.y.data(), in.down[0].res[0].conv2.y.data(), in.mid0.norm1.dx.data(),
                            in.up[0].cat[0].d_second.data(), in.attn.out.data(), in.conv_out.y.data()};
  net.zero_grad();
  const std::size_t before = test::allocations.load();
  net.forward(x, t, phi);
  net.backward(g);
  const std::size_t during = test::allocations.load() - before;
  INFO("heap allocations in one steady-state forward + backward: " << during);
  CHECK(during == 0);
  CHECK(phi.data() == phi_data);
  const float* after[] = {in.conv_in.y.data(), in.down[0].res[0].conv2.y.data(), in.mid0.norm1.dx.data(),
                          in.up[0].cat[0].d_second.data(), in.attn.out.data(), in.conv_out.y.data()};
  CHECK(std::equal(std::begin(buffers), std::end(buffers), std::begin(after)));
  // a second backward adds the same gradient again
  const std::vector<float> once(net.gradients().begin(), net.gradients().end());
  net.backward(g);
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < once.size(); ++i) {
    worst = std::max(worst, std::abs(double(net.gradients()[i]) - 2.0 * double(once[i])));
    scale = std::max(scale, std::abs(double(once[i])));
  }
  CHECK(scale > 0);
  CHECK(worst <= 1e-5 * scale);
  net.zero_grad();
  CHECK(std::all_of(net.gradients().begin(), net.gradients().end(), [](float v) { return v == 0.0f; }));
  // a copy is independent and computes the same function
  nn::refunet<float> copy = net;
  batch<float> phi_copy;
  copy.predict(x, t, phi_copy);
  net.predict(x, t, phi);
  CHECK(std::equal(phi.begin(), phi.end(), phi_copy.begin()));
  copy.parameters()[0] += 1.0f;
  CHECK(copy.parameters()[0] != net.parameters()[0]);
  nn::refunet<float> moved = std::move(copy);
  CHECK(moved.parameter_count() == net.parameter_count());
}

TEST_CASE("refunet: splitting the batch over replicas changes nothing", "[nn][refunet][threads]") {
  const testing::omp_threads_scope threads_scope(std::max(2, omp_get_max_threads()));
  for (std::size_t n : {3, 8, 11}) {  // one sample per replica, an even and an uneven split over 4
    CAPTURE(n);
    nn::refunet<float> one(small_config(), 9), split(small_config(), 9);
    one.set_max_replicas(1);
    const auto x = random_tensor<float, 4>({n, 1, 28, 28}, 6, n);
    const auto g = random_tensor<float, 4>({n, 1, 28, 28}, 6, n + 100);
    const auto t = times(n);
    batch<float> phi1, phi2;
    one.forward(x, t, phi1);
    split.forward(x, t, phi2);
    CHECK(one.replicas_in_use() == 1);
    CHECK(split.replicas_in_use() == std::min<std::size_t>(n, 4));  // min(N, 4) for any thread count
    CHECK(std::equal(phi1.begin(), phi1.end(), phi2.begin()));  // per-sample arithmetic: bit for bit
    one.backward(g, true);
    split.backward(g, true);
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < one.parameter_count(); ++i) {
      worst = std::max(worst, std::abs(double(one.gradients()[i]) - double(split.gradients()[i])));
      scale = std::max(scale, std::abs(double(one.gradients()[i])));
    }
    CHECK(scale > 0);
    CHECK(worst <= 1e-5 * scale);  // sums over the batch in another order
    const auto &dx1 = one.input_gradient(), &dx2 = split.input_gradient();
    REQUIRE(shape_of(dx2) == shape_of(x));
    double dx_worst = 0, dx_scale = 0;
    for (std::size_t i = 0; i < dx1.size(); ++i) {
      dx_worst = std::max(dx_worst, std::abs(double(dx1.data()[i]) - double(dx2.data()[i])));
      dx_scale = std::max(dx_scale, std::abs(double(dx1.data()[i])));
    }
    CHECK(dx_scale > 0);
    CHECK(dx_worst <= 1e-5 * dx_scale);
    // parameters written through parameters() reach every replica at the next forward
    split.parameters()[split.store().entry("conv_out.bias").offset] += 0.5f;
    batch<float> phi3;
    split.predict(x, t, phi3);
    CHECK(phi3(n - 1, 0, 5, 5) == Approx(phi2(n - 1, 0, 5, 5) + 0.5f).margin(1e-5));
    CHECK(phi3(0, 0, 5, 5) == Approx(phi2(0, 0, 5, 5) + 0.5f).margin(1e-5));
  }
}

TEST_CASE("refunet::freeze: the same bits as thawed, parameters locked, a thaw derives again", "[nn][refunet][threads]") {
  const testing::omp_threads_scope threads_scope(std::max(2, omp_get_max_threads()));
  nn::refunet_config c;  // 16-channel convolutions, so that bf16 runs on them
  c.base_channels = 16;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.groups = 4;
  const std::size_t n = 6;
  const auto x = random_tensor<float, 4>({n, 1, 28, 28}, 8, 1);
  const auto t = times(n);
  // float32; bf16 (its packing kept while frozen); Winograd on every 3 x 3 (its transform kept)
  for (const int mode : {0, 1, 2}) {
    const bool bf16 = mode == 1;
    CAPTURE(mode);
    nn::refunet<float> net(c, 5), ref(c, 5);
    if (bf16) {  // the emulated tiles run anywhere; the packing kept while frozen is the same
      net.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
      ref.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
    }
    if (mode == 2) {
      net.set_conv_algorithm(nn::conv_algorithm::winograd);
      ref.set_conv_algorithm(nn::conv_algorithm::winograd);
    }
    batch<float> want, got;
    ref.predict(x, t, want);
    net.freeze(true);  // before any forward: replicas 1-3 are built while frozen
    REQUIRE(net.frozen());
    for (int call = 0; call < 2; ++call) {  // the first derives, the second reuses
      net.predict(x, t, got);
      CHECK(net.replicas_in_use() == 4);
      REQUIRE(shape_of(got) == shape_of(want));
      CHECK(std::equal(got.begin(), got.end(), want.begin()));
    }
    CHECK_THROWS_WITH(net.parameters(), Contains("refunet::parameters") && Contains("frozen"));
    CHECK_THROWS_WITH(net.store(), Contains("refunet::store") && Contains("frozen"));
    CHECK_THROWS_WITH(net.init(1), Contains("refunet::init") && Contains("frozen"));
    CHECK(std::as_const(net).parameters().size() == ref.parameter_count());  // reading stays open
    // thawed, a changed weight of a 16 -> 16 convolution reaches every replica (in bf16 through a
    // new packing), frozen again too
    net.freeze(false);
    const std::size_t w = ref.store().entry("down.0.res.0.conv1.weight").offset;
    for (std::size_t i = 0; i < 9; ++i) net.parameters()[w + i] += 0.25f, ref.parameters()[w + i] += 0.25f;
    batch<float> want2;
    ref.predict(x, t, want2);
    CHECK_FALSE(std::equal(want2.begin(), want2.end(), want.begin()));
    for (const bool frozen : {false, true}) {
      CAPTURE(frozen);
      net.freeze(frozen);
      net.predict(x, t, got);
      CHECK(std::equal(got.begin(), got.end(), want2.begin()));
    }
  }
}

TEST_CASE("refunet frozen predict: micro-batches give the same bits, in place too; no backward follows",
          "[nn][refunet][threads]") {
  const testing::omp_threads_scope threads_scope(std::max(2, omp_get_max_threads()));
  nn::refunet_config c;
  c.base_channels = 16;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.groups = 4;
  // 23 samples over 4 replicas: shares of 5 and 6, each more than one micro-batch, the last partial
  const std::size_t n = 23;
  static_assert(nn::refunet<float>::inference_microbatch < 5);
  const auto x = random_tensor<float, 4>({n, 1, 16, 16}, 12, 1);
  const auto t = times(n);
  nn::refunet<float> net(c, 7);
  REQUIRE(net.micro_batches_pay());  // 16 and 32 channels at 16 x 16 and 8 x 8: no Winograd layer
  batch<float> want, got;
  net.forward(x, t, want);
  net.freeze(true);
  net.predict(x, t, got);
  CHECK(net.replicas_in_use() == 4);
  REQUIRE(shape_of(got) == shape_of(want));
  CHECK(std::equal(got.begin(), got.end(), want.begin()));
  batch<float> inplace = x;  // phi may be x itself
  net.predict(inplace, t, inplace);
  CHECK(std::equal(inplace.begin(), inplace.end(), want.begin()));
  // the layers hold one micro-batch: replica 0's share is samples 0-4, run as 4 and then 1
  CHECK(net.internals().conv_out.y.shape()[0] == 1);
  const auto dphi = random_tensor<float, 4>({n, 1, 16, 16}, 12, 2);
  CHECK_THROWS_WITH(net.backward(dphi), Contains("refunet::backward") && Contains("frozen predict"));
  // one sample, a batch smaller than the replicas
  const auto x1 = random_tensor<float, 4>({1, 1, 16, 16}, 12, 3);
  const std::vector<double> t1{0.3};
  batch<float> one;
  net.predict(x1, t1, one);
  net.freeze(false);
  batch<float> one_ref;
  net.forward(x1, t1, one_ref);
  CHECK(std::equal(one.begin(), one.end(), one_ref.begin()));
}

TEST_CASE("refunet frozen predict: whole shares where a convolution runs Winograd", "[nn][refunet]") {
  nn::refunet_config c;  // 64 channels: Winograd in float32 where AVX-512 is compiled in
  c.base_channels = 64;
  c.channel_mult = {1};
  c.num_res_blocks = 1;
  c.attn_at_lowest = false;
  const bool winograd = nn::detail::winograd_preferred<float>(64, 64);
  const std::size_t n = 23;  // replica 0's share: samples 0-4
  const auto x = random_tensor<float, 4>({n, 1, 8, 8}, 13, 1);
  const auto t = times(n);
  nn::refunet<float> net(c, 3);
  CHECK(net.micro_batches_pay() == !winograd);
  batch<float> want, got;
  net.forward(x, t, want);
  net.freeze(true);
  net.predict(x, t, got);
  CHECK(std::equal(got.begin(), got.end(), want.begin()));
  CHECK(net.internals().conv_out.y.shape()[0] == (winograd ? 5u : 5u % nn::refunet<float>::inference_microbatch));
  // in bf16 (emulated tiles) no convolution runs Winograd: micro-batches again
  net.freeze(false);
  net.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
  CHECK(net.micro_batches_pay());
}

TEST_CASE("refunet<double> whole-network gradient check: every tensor and the input", "[nn][refunet][gradcheck]") {
  // Thousands of tiny forward passes: one thread avoids OpenMP barriers on a shared machine.
  const testing::omp_threads_scope threads_scope(1);
  nn::refunet<double> net(tiny_config(), 11);
  // non-trivial GroupNorm affine parameters, so their gradients and the affine paths are exercised
  for (const auto& e : net.store().entries())
    if (e.name.find("norm") != std::string::npos) {
      auto v = net.store().values(e.name);
      for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = (e.name.ends_with(".weight") ? 1.0 : 0.0) + 0.1 * std::sin(double(e.offset + 3 * i));
    }
  auto x = random_tensor<double, 4>({2, 1, 8, 8}, 9, 1);
  const auto g = random_tensor<double, 4>({2, 1, 8, 8}, 9, 2);  // non-uniform upstream gradient
  const double t[] = {0.3, 0.7};
  batch<double> phi;
  net.forward(x, t, phi);
  net.zero_grad();
  net.backward(g, true);
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  const std::vector<double> analytic_x(net.input_gradient().begin(), net.input_gradient().end());
  const auto loss = [&] {
    net.predict(x, t, phi);
    return inner(phi, g);
  };
  // fourth-order central difference (as support/grad_check.hpp), error relative to
  // max(|a|, |n|, 1e-3 max |a| over the tensor)
  const auto numeric = [&](double& v) {
    const double v0 = v, h = 1e-3;
    auto at = [&](double d) {
      v = v0 + d;
      return loss();
    };
    const double n = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h);
    v = v0;
    return n;
  };
  double overall = 0;
  for (double a : analytic) overall = std::max(overall, std::abs(a));
  REQUIRE(overall > 0);
  std::size_t compared = 0;
  for (const auto& e : net.store().entries()) {
    INFO(e.name);
    double tensor_max = 0;
    for (std::size_t i = 0; i < e.size; ++i) tensor_max = std::max(tensor_max, std::abs(analytic[e.offset + i]));
    const bool zero_by_symmetry = e.name == "mid.attn.k.bias";  // softmax ignores a shift of every key
    if (zero_by_symmetry)
      CHECK(tensor_max < 1e-10 * overall);
    else
      CHECK(tensor_max > 1e-6 * overall);  // every tensor really receives a gradient
    // all entries of small tensors, 5 spread-out entries of larger ones
    const std::size_t samples = e.size <= 16 ? e.size : 5;
    const auto params = net.parameters();
    for (std::size_t s = 0; s < samples; ++s) {
      const std::size_t i = e.size <= 16 ? s : (s * 7919 + e.offset) % e.size;
      const double a = analytic[e.offset + i];
      const double n = numeric(params[e.offset + i]);
      ++compared;
      if (zero_by_symmetry) {
        CHECK(std::abs(n) < 1e-8 * overall);
        continue;
      }
      const double err = std::abs(a - n) / std::max({std::abs(a), std::abs(n), 1e-3 * tensor_max});
      INFO("index " << i << ": analytic " << a << ", numeric " << n);
      CHECK(err < 1e-6);
    }
  }
  CHECK(compared > 400);
  double x_max = 0;
  for (double a : analytic_x) x_max = std::max(x_max, std::abs(a));
  CHECK(x_max > 0);
  for (std::size_t i = 0; i < x.size(); i += 4) {
    const double a = analytic_x[i];
    const double n = numeric(x.data()[i]);
    const double err = std::abs(a - n) / std::max({std::abs(a), std::abs(n), 1e-3 * x_max});
    INFO("input element " << i << ": analytic " << a << ", numeric " << n);
    CHECK(err < 1e-6);
  }
}
