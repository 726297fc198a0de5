// bf16 arithmetic for the dense 3 x 3 and the 1 x 1 convolutions (nn/conv_bf16.hpp,
// nn/tile_engines.hpp), each case below for both kernel sizes:
//  - the tile program on the emulated engine equals a float64 convolution of the bf16-rounded
//    inputs and weights (products exact, sums float32), with the GroupNorm + SiLU map, a
//    per-sample bias and a residual; K steps of 16 and 32 channels, one and two output blocks,
//    a grid that is not a multiple of 32 positions;
//  - on a processor with AMX, the AMX engine equals the emulated one; on one without, asking
//    for it is refused naming the missing feature (both are asserted, whichever runs here);
//  - the backward (bf16 training: dW by conv_bf16_grad.hpp's program, dx by the forward program
//    with flipped weights) equals float64 gradients of the bf16-rounded operands, adds into the
//    gradients, gives the same bits on one thread as on two, and on AMX equals the emulation;
//  - RefUNet in bf16 stays close to float32 (outputs and parameter gradients) and gives the
//    same bits on one thread as on two.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <span>
#include <vector>

#include <omp.h>

#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/refunet.hpp"
#include "support/grad_check.hpp"

using namespace softdiff;
using softdiff::testing::random_tensor;

namespace {

float bf16_round(float v) { return nn::detail::from_bf16(nn::detail::to_bf16(v)); }

struct bf16_fixture {
  nn::parameter_store<float> store;
  nn::group_norm<float> gn;
  nn::conv2d<float> conv;
  bf16_fixture(std::size_t a, std::size_t b, std::size_t k = 3) : gn(4, a), conv(a, b, k) {
    gn.declare(store, "gn");
    conv.declare(store, "conv");
    store.allocate();
    gn.bind(store);
    conv.bind(store);
    conv.init(noise_source{17, 1});
    for (std::size_t i = 0; i < a; ++i) gn.weight[i] = 0.8f + 0.02f * float(i), gn.bias[i] = 0.05f * float(i % 7) - 0.1f;
  }
};

/// float64 convolution (k x k, padding (k - 1) / 2) of bf16(SiLU(a x + b)) with bf16(W), + bias +
/// sample bias + residual.
std::vector<double> reference(const bf16_fixture& f, const batch<float>& x, const nn::channel_affine<float>& m,
                              const batch<float>& sample_bias, const batch<float>& residual) {
  const std::size_t N = x.shape()[0], A = x.shape()[1], H = x.shape()[2], W = x.shape()[3], B = f.conv.out_channels;
  const std::size_t k = f.conv.kernel;
  const long pad = long(f.conv.padding);
  std::vector<double> in(x.size()), out(N * B * H * W);
  for (std::size_t p = 0; p < N * A; ++p)
    for (std::size_t i = 0; i < H * W; ++i) {
      const float v = nn::detail::affine(x.data()[p * H * W + i], m.scale[p], m.shift[p]);
      in[p * H * W + i] = bf16_round(v * nn::detail::sigmoid(v));
    }
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < B; ++o)
      for (std::size_t i = 0; i < H; ++i)
        for (std::size_t j = 0; j < W; ++j) {
          double s = double(f.conv.bias[o]) + double(sample_bias.data()[n * B + o]);
          for (std::size_t c = 0; c < A; ++c)
            for (std::size_t u = 0; u < k; ++u)
              for (std::size_t v = 0; v < k; ++v) {
                const long ii = long(i + u) - pad, jj = long(j + v) - pad;
                if (ii < 0 || jj < 0 || ii >= long(H) || jj >= long(W)) continue;
                s += double(bf16_round(f.conv.weight[((o * A + c) * k + u) * k + v])) *
                     in[((n * A + c) * H + std::size_t(ii)) * W + std::size_t(jj)];
              }
          const std::size_t k = ((n * B + o) * H + i) * W + j;
          out[k] = s + double(residual.data()[k]);
        }
  return out;
}

}  // namespace

TEST_CASE("amx_verdict names what is missing", "[nn][bf16]") {
  CHECK(nn::detail::amx_verdict(true, true, true).usable);
  const auto no_bf16 = nn::detail::amx_verdict(true, false, true);
  CHECK_FALSE(no_bf16.usable);
  CHECK_THAT(no_bf16.missing, Catch::Contains("amx_bf16") && !Catch::Contains("amx_tile"));
  const auto none = nn::detail::amx_verdict(false, false, true);
  CHECK_THAT(none.missing, Catch::Contains("amx_tile and amx_bf16"));
  CHECK_THAT(nn::detail::amx_verdict(true, true, false).missing, Catch::Contains("ARCH_REQ_XCOMP_PERM"));
  CHECK(nn::parse_precision("bf16") == nn::precision::bf16);
  CHECK(nn::parse_precision("float32") == nn::precision::float32);
  CHECK_THROWS_WITH(nn::parse_precision("fp16"), Catch::Contains("fp16") && Catch::Contains("bf16"));
}

TEST_CASE("bf16 3x3 and 1x1 convolutions equal float64 on bf16-rounded operands", "[nn][bf16]") {
  struct bf16_case {
    std::size_t a, b, n, h, w, k;
  };
  const bf16_case cases[] = {
      {16, 16, 2, 7, 7, 3},    // K steps of 16, one output block, a 63-position grid
      {32, 48, 2, 5, 9, 3},    // K steps of 32; output blocks as a pair and a single
      {48, 32, 1, 14, 14, 3},  // three K steps of 16
      {16, 32, 3, 28, 28, 3},  // RefUNet's first level
      {16, 16, 2, 7, 7, 1},    // 1 x 1: a 49-position grid (the second 32 partial)
      {32, 48, 2, 5, 9, 1},    // output blocks as a pair and a single
      {48, 32, 1, 14, 14, 1},  // a decoder skip of the main recipe (concatenated 48 -> 32)
      {64, 16, 2, 8, 4, 1},    // a grid of exactly 32 positions: no slack
  };
  for (const bf16_case& c : cases) {
    CAPTURE(c.a, c.b, c.n, c.h, c.w, c.k);
    bf16_fixture f(c.a, c.b, c.k);
    f.conv.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
    REQUIRE(f.conv.runs_bf16());
    const batch<float> x = random_tensor<float, 4>({c.n, c.a, c.h, c.w}, 61, 1, 1.2, 0.2);
    const auto m = f.gn.silu_map(x);
    const batch<float> y0 = f.conv.forward(x, m);  // prepares the map
    const batch<float> sb = random_tensor<float, 4>({c.n, c.b, 1, 1}, 61, 2);
    const batch<float> res = random_tensor<float, 4>(shape_of(y0), 61, 3);
    const batch<float>& y = f.conv.forward(x, m, {.sample_bias = sb.data(), .residual = &res});
    const std::vector<double> want = reference(f, x, m, sb, res);
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      worst = std::max(worst, std::abs(double(y.data()[i]) - want[i]));
      scale = std::max(scale, std::abs(want[i]));
    }
    INFO("max |y - reference| " << worst << " of max |reference| " << scale);
    REQUIRE(scale > 0.5);
    REQUIRE(worst < 2e-5 * scale);  // float32 sums of exact products
    // and it is not float32: the float32 convolution differs by bf16's rounding
    f.conv.set_precision(nn::precision::float32);
    const batch<float> y32 = f.conv.forward(x, m, {.sample_bias = sb.data(), .residual = &res});
    double diff = 0;
    for (std::size_t i = 0; i < y.size(); ++i) diff = std::max(diff, std::abs(double(y32.data()[i]) - want[i]));
    INFO("float32 against the bf16 reference: " << diff);
    REQUIRE(diff > 10 * worst);
    REQUIRE(diff < 3e-2 * scale);
  }
}

TEST_CASE("bf16 on AMX equals the emulated tiles, or is refused naming the missing feature", "[nn][bf16]") {
  const std::size_t k = GENERATE(3, 1);
  CAPTURE(k);
  bf16_fixture f(32, 48, k);
  const batch<float> x = random_tensor<float, 4>({4, 32, 14, 14}, 67, 1);
  const auto m = f.gn.silu_map(x);
  f.conv.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
  const batch<float> emulated = f.conv.forward(x, m);
  if (!nn::amx_status().usable) {
    INFO(nn::amx_status().missing);
    REQUIRE_THROWS_WITH(f.conv.set_precision(nn::precision::bf16), Catch::Contains("AMX") && Catch::Contains("float32"));
    REQUIRE(f.conv.engine == nn::bf16_engine::emulated);  // a refused request changes nothing
    return;
  }
  f.conv.set_precision(nn::precision::bf16);
  const batch<float>& amx = f.conv.forward(x, m);
  double worst = 0;
  for (std::size_t i = 0; i < amx.size(); ++i)
    worst = std::max(worst, double(std::abs(amx.data()[i] - emulated.data()[i])) / (1 + std::abs(emulated.data()[i])));
  INFO("AMX against emulated, max relative difference " << worst);
  REQUIRE(worst < 1e-6);
}

namespace {

/// float64 gradients of the bf16 convolution of bf16(SiLU(a x + b)) for the upstream dy, every
/// operand rounded to bf16 as the tile programs round it: dW[o, c, u, v], dx and dbias, and the
/// sums of |terms| of each (the float32 rounding of a sum is bounded by them).
struct grad_reference {
  std::vector<double> dw, dw_abs, dx, dx_abs, db;
};
grad_reference reference_grads(const bf16_fixture& f, const batch<float>& x, const nn::channel_affine<float>& m,
                               const batch<float>& dy) {
  const std::size_t N = x.shape()[0], A = x.shape()[1], H = x.shape()[2], W = x.shape()[3], B = f.conv.out_channels;
  const std::size_t k = f.conv.kernel;
  const long pad = long(f.conv.padding);
  std::vector<double> in(x.size());
  for (std::size_t p = 0; p < N * A; ++p)
    for (std::size_t i = 0; i < H * W; ++i) {
      const float v = nn::detail::affine(x.data()[p * H * W + i], m.scale[p], m.shift[p]);
      in[p * H * W + i] = bf16_round(v * nn::detail::sigmoid(v));
    }
  grad_reference r{std::vector<double>(B * A * k * k), std::vector<double>(B * A * k * k), std::vector<double>(x.size()),
                   std::vector<double>(x.size()), std::vector<double>(B)};
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < B; ++o)
      for (std::size_t i = 0; i < H; ++i)
        for (std::size_t j = 0; j < W; ++j) {
          const float g32 = dy.data()[((n * B + o) * H + i) * W + j];
          const double g = bf16_round(g32);
          r.db[o] += g32;
          for (std::size_t c = 0; c < A; ++c)
            for (std::size_t u = 0; u < k; ++u)
              for (std::size_t v = 0; v < k; ++v) {
                const long ii = long(i + u) - pad, jj = long(j + v) - pad;
                if (ii < 0 || jj < 0 || ii >= long(H) || jj >= long(W)) continue;
                const std::size_t xi = ((n * A + c) * H + std::size_t(ii)) * W + std::size_t(jj);
                const std::size_t wi = ((o * A + c) * k + u) * k + v;
                const double w = bf16_round(f.conv.weight[wi]);
                r.dw[wi] += g * in[xi], r.dw_abs[wi] += std::abs(g * in[xi]);
                r.dx[xi] += g * w, r.dx_abs[xi] += std::abs(g * w);
              }
        }
  return r;
}

/// max over i of |got[i] - want[i]| / (|terms|_1 of i + 1e-30): the error in units of the bound's scale.
double worst_relative(std::span<const float> got, const std::vector<double>& want, const std::vector<double>& abs) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / (abs[i] + 1e-30));
  return worst;
}

}  // namespace

TEST_CASE("bf16 dW packing: dy in VNNI pairs transposed, zero in the padding", "[nn][bf16]") {
  // the packed layout element by element, against its definition (conv_bf16_grad.hpp): under
  // AVX-512 the 16 x 16 word transpose of registers, in the _avx2 build the scalar loop
  for (const auto [B, H, W, k] :
       {std::array<std::size_t, 4>{16, 7, 7, 3}, std::array<std::size_t, 4>{48, 28, 28, 3},
        std::array<std::size_t, 4>{32, 4, 14, 3}, std::array<std::size_t, 4>{16, 7, 7, 1},
        std::array<std::size_t, 4>{32, 4, 14, 1}}) {
    const nn::detail::bf16_grad_plan p(16, B, H, W, k);
    const batch<float> dy = random_tensor<float, 4>({1, B, H, W}, 91, 1);
    std::vector<std::uint32_t> dyT(p.packed_dy(), 0xDEADBEEFu), block(p.dy_block() / 2, 0xDEADBEEFu);
    nn::detail::pack_bf16_dy_pairs(dy.data(), p, dyT.data(), block.data());
    std::size_t wrong = 0, nonzero = 0;
    for (std::size_t l = 0; l < p.grid_pad; ++l)
      for (std::size_t o = 0; o < B; ++o) {
        const std::size_t i = l / p.Wp, j = l % p.Wp;
        const std::uint16_t want = (i < H && j < W) ? nn::detail::to_bf16(dy.data()[(o * H + i) * W + j]) : 0;
        const std::uint32_t word = dyT[(l / 2) * B + o];
        const auto got = static_cast<std::uint16_t>(l % 2 == 0 ? word & 0xFFFFu : word >> 16);
        wrong += got != want;
        nonzero += got != 0;
      }
    INFO("B " << B << ", " << H << " x " << W << ", k " << k);
    CHECK(wrong == 0);
    CHECK(nonzero > B * H * W / 2);
  }
}

TEST_CASE("bf16 backward equals float64 on bf16-rounded operands", "[nn][bf16]") {
  struct bf16_case {
    std::size_t a, b, n, h, w, k;
  };
  const bf16_case cases[] = {
      {16, 16, 3, 7, 7, 3},   // one block each way; a 63-position grid (two K steps, the second partial)
      {32, 48, 5, 5, 9, 3},   // a pair and a single output block; two segments
      {48, 32, 9, 4, 6, 3},   // three input blocks (a pair and a single); segments of 4 and 5 samples
      {16, 32, 2, 14, 14, 3}, // dx with K steps of 32 channels
      {16, 16, 3, 7, 7, 1},   // 1 x 1: a 49-position grid
      {48, 32, 9, 4, 6, 1},   // three input blocks; two segments
      {32, 48, 2, 14, 14, 1}, // dx with K steps of 16 (48 = 3 x 16) and output pairs
  };
  for (const bf16_case& c : cases) {
    CAPTURE(c.a, c.b, c.n, c.h, c.w, c.k);
    bf16_fixture f(c.a, c.b, c.k);
    f.conv.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
    const batch<float> x = random_tensor<float, 4>({c.n, c.a, c.h, c.w}, 79, 1, 1.2, 0.2);
    const auto m = f.gn.silu_map(x);
    const batch<float> y = f.conv.forward(x, m);
    const batch<float> dy = random_tensor<float, 4>(shape_of(y), 79, 2);
    f.store.zero_grad();
    const batch<float> dx = f.conv.backward(dy);
    const grad_reference want = reference_grads(f, x, m, dy);
    const double dw_err = worst_relative(f.conv.dweight, want.dw, want.dw_abs);
    const double dx_err = worst_relative({dx.data(), dx.size()}, want.dx, want.dx_abs);
    double db_err = 0, dw_max = 0;
    for (std::size_t o = 0; o < c.b; ++o) db_err = std::max(db_err, std::abs(f.conv.dbias[o] - want.db[o]));
    for (double v : want.dw) dw_max = std::max(dw_max, std::abs(v));
    INFO("dW error " << dw_err << ", dx error " << dx_err << " (of the sums of |terms|), dbias error " << db_err);
    REQUIRE(dw_max > 0.1);          // non-zero gradients
    REQUIRE(dw_err < 1e-5);         // float32 sums of exact products
    REQUIRE(dx_err < 1e-5);
    REQUIRE(db_err < 1e-4);
    // a second backward adds into the gradients
    f.conv.backward(dy);
    for (std::size_t i = 0; i < want.dw.size(); i += 7)
      REQUIRE(std::abs(f.conv.dweight[i] - 2 * want.dw[i]) <= 2e-5 * want.dw_abs[i] + 1e-30);
    // and it is not float32: the float32 backward's dW differs by bf16's rounding
    f.conv.set_precision(nn::precision::float32);
    f.conv.forward(x, m);
    f.store.zero_grad();
    f.conv.backward(dy);
    const double dw32_err = worst_relative(f.conv.dweight, want.dw, want.dw_abs);
    INFO("float32 dW against the bf16 reference: " << dw32_err);
    REQUIRE(dw32_err > 10 * dw_err);
    REQUIRE(dw32_err < 3e-2);
  }
  // 1 input channel (RefUNet's first layer): not a multiple of 16, stays float32; so do other
  // kernels and strides
  nn::conv2d<float> first(1, 16, 3), strided(16, 16, 3, 2), wide(16, 16, 5), unpadded(16, 16, 3, 1, 0);
  for (nn::conv2d<float>* c : {&first, &strided, &wide, &unpadded}) {
    c->set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
    REQUIRE_FALSE(c->runs_bf16());
  }
}

TEST_CASE("bf16 backward: the same bits on one thread as on two; AMX equals the emulated tiles", "[nn][bf16]") {
  const std::size_t k = GENERATE(3, 1);
  CAPTURE(k);
  bf16_fixture f(32, 16, k);
  const batch<float> x = random_tensor<float, 4>({12, 32, 9, 9}, 83, 1);
  const auto m = f.gn.silu_map(x);
  auto gradients = [&](nn::bf16_engine e, int threads) {
    f.conv.set_precision(nn::precision::bf16, e);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    const batch<float> y = f.conv.forward(x, m);
    const batch<float> dy = random_tensor<float, 4>(shape_of(y), 83, 2);
    f.store.zero_grad();
    const batch<float> dx = f.conv.backward(dy);
    omp_set_num_threads(saved);
    std::vector<float> all(dx.data(), dx.data() + dx.size());
    all.insert(all.end(), f.store.gradients().begin(), f.store.gradients().end());
    return all;
  };
  const std::vector<float> one = gradients(nn::bf16_engine::emulated, 1), two = gradients(nn::bf16_engine::emulated, 2);
  REQUIRE(one == two);
  if (!nn::amx_status().usable) {
    INFO(nn::amx_status().missing);
    REQUIRE_THROWS_WITH(f.conv.set_precision(nn::precision::bf16), Catch::Contains("AMX"));
    return;
  }
  const std::vector<float> amx1 = gradients(nn::bf16_engine::amx, 1), amx2 = gradients(nn::bf16_engine::amx, 2);
  REQUIRE(amx1 == amx2);
  double worst = 0;
  for (std::size_t i = 0; i < one.size(); ++i)
    worst = std::max(worst, double(std::abs(amx1[i] - one[i])) / (1 + std::abs(one[i])));
  INFO("AMX against emulated, max relative difference " << worst);
  REQUIRE(worst < 1e-5);
}

TEST_CASE("RefUNet in bf16 stays close to float32 and trains, the same bits on any thread count", "[nn][bf16][refunet]") {
  nn::refunet_config cfg;
  cfg.base_channels = 16;
  nn::refunet<float> net(cfg, 5);
  const batch<float> x = random_tensor<float, 4>({3, 1, 16, 16}, 73, 1);
  const batch<float> dphi = random_tensor<float, 4>({3, 1, 16, 16}, 73, 2);
  const std::vector<double> t{0.1, 0.5, 0.9};
  auto relative_l2 = [](std::span<const float> a, std::span<const float> b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double d = double(a[i]) - double(b[i]);
      num += d * d, den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num / den);
  };
  auto step = [&](batch<float>& phi) {  // forward and backward; returns the parameter gradients
    net.forward(x, t, phi);
    net.zero_grad();
    net.backward(dphi);
    return std::vector<float>(net.gradients().begin(), net.gradients().end());
  };
  batch<float> phi32, phi16;
  const std::vector<float> g32 = step(phi32);
  net.set_precision(nn::precision::bf16, nn::bf16_engine::emulated);
  REQUIRE(net.arithmetic() == nn::precision::bf16);
  const std::vector<float> g16 = step(phi16);
  const double rel = relative_l2({phi16.data(), phi16.size()}, {phi32.data(), phi32.size()});
  const double grel = relative_l2(g16, g32);
  INFO("relative L2 difference bf16 / float32: output " << rel << ", parameter gradients " << grel);
  REQUIRE(rel > 1e-5);  // bf16 really ran
  REQUIRE(rel < 2e-2);
  REQUIRE(grel > 1e-5);
  REQUIRE(grel < 5e-2);
  {  // the same bits on one thread as on two
    batch<float> one;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<float> g1 = step(one);
    omp_set_num_threads(threads);
    for (std::size_t i = 0; i < one.size(); ++i) REQUIRE(one.data()[i] == phi16.data()[i]);
    REQUIRE(g1 == g16);
  }
  net.set_precision(nn::precision::float32);
  batch<float> again;
  REQUIRE(step(again) == g32);
  for (std::size_t i = 0; i < again.size(); ++i) REQUIRE(again.data()[i] == phi32.data()[i]);
}
