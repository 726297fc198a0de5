// The training-step paths of conv2d's tiled algorithm and of GroupNorm + SiLU that the RefUNet
// speed work added (docs/performance.md, RefUNet, session 3), checked against float64:
//  - 3x3 with padding 1 on dense output positions (conv_kernels.hpp tiled_gemm_taps3: the
//    horizontal zero padding by masked loads), forward and dx, at widths below, at and above
//    one vector, and partial row and column tiles;
//  - dW over several samples per GEMM, with segments longer than one chunk (batch 10: two
//    segments of 5, chunks of 4 and 1) and with one sample per chunk (a large image), for 3x3
//    and 1x1 (read in place) kernels;
//  - the wide register tiles of the dW GEMM (b = 32 and 64 output channels);
//  - group_norm::forward_silu / backward_silu against group_norm and silu run one after the other.
#include <catch2/catch.hpp>

#include <cstddef>

#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/silu.hpp"
#include "support/conv_checks.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::random_tensor;

namespace {

template <class T>
struct conv_fixture {
  nn::parameter_store<T> store;
  nn::conv2d<T> conv;
  conv_fixture(std::size_t a, std::size_t b, std::size_t k, nn::conv_algorithm alg) : conv(a, b, k) {
    conv.algorithm = alg;
    conv.declare(store, "layer");
    store.allocate();
    conv.bind(store);
    conv.init(noise_source{5, 1});
  }
};

struct conv_case {
  std::size_t a, b, k, n, h, w;
};

}  // namespace

TEST_CASE("conv2d tiled float matches float64 on the dense 3x3 and chunked dW paths", "[nn][conv2d]") {
  // (a, b, k, batch, h, w)
  const conv_case cases[] = {
      {3, 5, 3, 10, 7, 7},     // partial tiles everywhere; 49 positions: a full strip and a 17-lane edge
      {8, 32, 3, 10, 9, 4},    // width 4 < one vector: most lanes sit at a row edge
      {16, 64, 3, 10, 14, 14}, // 196 positions: a last strip of one vector; dW on 6 x 64 tiles
      {32, 32, 3, 5, 30, 17},  // dW on 12 x 32 tiles; a large image: one sample per dW GEMM
      {12, 32, 1, 10, 6, 5},   // 1x1: dW read in place over chunks of samples
      {1, 16, 3, 3, 1, 20},    // a single row: every tap row but the middle one is padding
  };
  for (const conv_case& c : cases) {
    CAPTURE(c.a, c.b, c.k, c.n, c.h, c.w);
    conv_fixture<double> d(c.a, c.b, c.k, nn::conv_algorithm::im2col_blas);
    conv_fixture<float> f(c.a, c.b, c.k, nn::conv_algorithm::tiled);
    const batch<double> x = random_tensor<double, 4>({c.n, c.a, c.h, c.w}, 31, 1);
    // dW sums n * h * w products of order one: a float error of ~1e-6 relative per term
    softdiff::testing::check_float_matches_double(d, f, x, 31, 2, {1e-4, 1e-4, 2e-3});
  }
}

TEST_CASE("group_norm::forward_silu and backward_silu equal group_norm and silu in turn", "[nn][group_norm]") {
  const std::size_t N = 3, C = 8, H = 5, W = 6;
  nn::parameter_store<double> store;
  nn::group_norm<double> gn(4, C);
  gn.declare(store, "gn");
  store.allocate();
  gn.bind(store);
  for (std::size_t i = 0; i < C; ++i) gn.weight[i] = 0.5 + 0.1 * double(i), gn.bias[i] = 0.05 * double(i) - 0.2;
  const auto x = random_tensor<double, 4>({N, C, H, W}, 41, 1, 1.5, 0.3);
  const auto ds = random_tensor<double, 4>({N, C, H, W}, 41, 2);
  nn::silu<double> act;
  const batch<double> s_ref = act.forward(gn.forward(x));
  const batch<double> dx_ref = gn.backward(act.backward(ds));
  const std::vector<double> grads_ref(store.gradients().begin(), store.gradients().end());
  store.zero_grad();
  const auto& s = gn.forward_silu(x);
  REQUIRE(shape_of(s) == shape_of(s_ref));
  for (std::size_t i = 0; i < s.size(); ++i) REQUIRE(s.data()[i] == Approx(s_ref.data()[i]).margin(1e-14));
  const auto& dx = gn.backward_silu(ds);
  REQUIRE(shape_of(dx) == shape_of(dx_ref));
  for (std::size_t i = 0; i < dx.size(); ++i) REQUIRE(dx.data()[i] == Approx(dx_ref.data()[i]).margin(1e-12));
  for (std::size_t i = 0; i < grads_ref.size(); ++i)
    REQUIRE(store.gradients()[i] == Approx(grads_ref[i]).margin(1e-12));
  // the fused pass keeps its SiLU gradient in dx: a second call must not read a stale one
  const auto& again = gn.backward_silu(ds);
  for (std::size_t i = 0; i < again.size(); ++i) REQUIRE(again.data()[i] == Approx(dx_ref.data()[i]).margin(1e-12));
}
