// The training-step paths of conv2d's tiled algorithm and of GroupNorm + SiLU that the RefUNet
// speed work added (docs/performance.md, RefUNet, session 3), checked against float64:
//  - 3x3 with padding 1 on dense output positions (conv_kernels.hpp tiled_gemm_taps3: the
//    horizontal zero padding by masked loads), forward and dx, at widths below, at and above
//    one vector, and partial row and column tiles;
//  - dW over several samples per GEMM, with segments longer than one chunk (batch 10: two
//    segments of 5, chunks of 4 and 1) and with one sample per chunk (a large image), for 3x3
//    and 1x1 (read in place) kernels;
//  - the wide register tiles of the dW GEMM (b = 32 and 64 output channels) and the tall one
//    (b = 16);
//  - group_norm::forward_silu / backward_silu against group_norm and silu run one after the other;
//  - conv2d::forward(x, group_norm::silu_map(x)), which applies GroupNorm + SiLU while padding x:
//    bit for bit the convolution of forward_silu's output, forward and backward (float, dense
//    and stored paths), and its gradients against float64 finite differences.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <vector>

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
      {8, 16, 3, 10, 9, 9},    // dW on 24 x 1 tiles (b = 16, a*k*k = 72)
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

TEST_CASE("conv2d Winograd F(2x2, 3x3) and F(4x4, 3x3) float match float64 at every tiling", "[nn][conv2d][winograd]") {
  // (a, b, k, batch, h, w); the forward and dx run on winograd.hpp, dW on winograd_grad.hpp
  const conv_case cases[] = {
      {3, 5, 3, 10, 7, 7},      // 7 = 2 * 3 + 1 = 4 + 3: last tiles partly outside; chunks of several samples and a partial one
      {8, 32, 3, 10, 9, 4},     // tile rows of 2 tiles (F(2x2)) and of one (F(4x4))
      {16, 64, 3, 3, 14, 14},   // 49 tiles: chunks of 2 samples and a last one alone (F(2x2)); 14 = 3 * 4 + 2
      {32, 32, 3, 2, 28, 28},   // 196 (49) tiles: a sample per chunk (two), a one-vector GEMM tail
      {12, 8, 3, 2, 30, 41},    // 21 (11) tiles per row: rows of 41 (two deinterleave steps)
      {1, 16, 3, 3, 1, 20},     // a single image row: the tile's other rows are outside
      {24, 48, 3, 4, 6, 5},     // 6 = 4 + 2, 5 = 4 + 1: F(4x4)'s edge tiles, three vectors of output channels
  };
  for (const auto alg : {nn::conv_algorithm::winograd, nn::conv_algorithm::winograd4}) {
    for (const conv_case& c : cases) {
      CAPTURE(alg, c.a, c.b, c.k, c.n, c.h, c.w);
      conv_fixture<double> d(c.a, c.b, c.k, nn::conv_algorithm::im2col_blas);
      conv_fixture<float> f(c.a, c.b, c.k, alg);
      REQUIRE(f.conv.resolved_algorithm() == alg);
      const batch<double> x = random_tensor<double, 4>({c.n, c.a, c.h, c.w}, 37, 1);
      softdiff::testing::check_float_matches_double(d, f, x, 37, 2, {1e-4, 1e-4, 2e-3});
    }
  }
  // automatic, for float where AVX-512 runs it: F(2x2) from 64 channels; at 32 to 63, F(4x4) on
  // images of 20 x 20 pixels or more (the size of the last forward) and the direct kernel on
  // smaller ones (and before any forward); tiled otherwise
#if defined(__AVX512F__)
  constexpr auto wide = nn::conv_algorithm::winograd, mid_large = nn::conv_algorithm::winograd4;
#else
  constexpr auto wide = nn::conv_algorithm::tiled, mid_large = nn::conv_algorithm::tiled;
#endif
  REQUIRE(nn::conv2d<float>(64, 64, 3).resolved_algorithm() == wide);
  REQUIRE(nn::conv2d<float>(128, 64, 3).resolved_algorithm() == wide);
  REQUIRE(nn::conv2d<float>(32, 64, 3).resolved_algorithm() == nn::conv_algorithm::tiled);
  REQUIRE(nn::conv2d<float>(16, 64, 3).resolved_algorithm() == nn::conv_algorithm::tiled);
  REQUIRE(nn::conv2d<float>(32, 16, 3).resolved_algorithm() == nn::conv_algorithm::tiled);
  {
    conv_fixture<float> mid(32, 48, 3, nn::conv_algorithm::automatic);
    const batch<float> large = random_tensor<float, 4>({2, 32, 20, 21}, 38, 1);
    const batch<float> small = random_tensor<float, 4>({2, 32, 14, 14}, 38, 2);
    mid.conv.forward(large);
    REQUIRE(mid.conv.resolved_algorithm() == mid_large);
    const batch<float> y_large = mid.conv.forward(large);  // the transform of F(4x4) again
    const auto same = [&](const batch<float>& y) { return std::equal(y.begin(), y.end(), y_large.begin()); };
    mid.conv.forward(small);
    REQUIRE(mid.conv.resolved_algorithm() == nn::conv_algorithm::tiled);
    // back to the large image: the same bits as before (nothing of the small call's is reused)
    REQUIRE(same(mid.conv.forward(large)));
    mid.conv.freeze_weights(true);  // frozen: the kept transform is F(4x4)'s, then recomputed after a small call
    REQUIRE(same(mid.conv.forward(large)));
    mid.conv.forward(small);
    REQUIRE(same(mid.conv.forward(large)));
  }
  REQUIRE(nn::conv2d<double>(64, 64, 3).resolved_algorithm() == nn::conv_algorithm::im2col_blas);
  // where Winograd does not apply (stride 2, 1x1) the layer runs the tiled algorithm
  REQUIRE(nn::conv2d<float>(4, 4, 3, 2).resolved_algorithm() == nn::conv_algorithm::tiled);
  REQUIRE(nn::conv2d<float>(64, 64, 3, 2).resolved_algorithm() == nn::conv_algorithm::tiled);
  for (const auto alg : {nn::conv_algorithm::winograd, nn::conv_algorithm::winograd4}) {
    nn::conv2d<float> one(4, 4, 1);
    one.algorithm = alg;
    REQUIRE(one.resolved_algorithm() == nn::conv_algorithm::tiled);
  }
}

namespace {

/// C = A^T B (and C += A^T B) by tiled_gemm_tn against tiled_gemm on A's transposed copy: the
/// same multiply-adds in the same order, so the same bits on SIMD lanes (float: fused
/// multiply-add instructions), at every register tile and edge.
template <class T>
void check_gemm_tn_equals_transposed(std::size_t M, std::size_t N, std::size_t K, std::uint64_t seed) {
  CAPTURE(M, N, K, sizeof(T));
  const std::size_t lda = M + 3, ldb = N + 1;  // leading dimensions wider than the operands
  const auto a = random_tensor<T, 1>({K * lda}, seed, 1), b = random_tensor<T, 1>({K * ldb}, seed, 2);
  std::vector<T> at(M * K);  // [M, K]: row i holds A's column i
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t i = 0; i < M; ++i) at[i * K + k] = a[k * lda + i];
  std::vector<std::ptrdiff_t> aoff(M), boff(K);
  for (std::size_t i = 0; i < M; ++i) aoff[i] = static_cast<std::ptrdiff_t>(i * K);
  for (std::size_t k = 0; k < K; ++k) boff[k] = static_cast<std::ptrdiff_t>(k * ldb);
  const auto c = random_tensor<T, 1>({M * N}, seed, 3);
  const std::vector<T> c0(c.begin(), c.end());
  for (const bool accumulate : {false, true}) {
    CAPTURE(accumulate);
    std::vector<T> want = c0, got = c0;
    nn::detail::tiled_gemm<T>(accumulate, M, N, K, at.data(), aoff.data(), b.data(), boff.data(), want.data(), N,
                              nullptr, false);
    if (accumulate)
      nn::detail::tiled_gemm_tn<T, true>(M, N, K, a.data(), lda, b.data(), ldb, got.data(), N, true);
    else
      nn::detail::tiled_gemm_tn<T, false>(M, N, K, a.data(), lda, b.data(), ldb, got.data(), N, true);
    if constexpr (nn::detail::simd_kernel<T>) {
      REQUIRE(got == want);
    } else {  // scalar lanes: a * b + c, which the compiler may or may not contract into one rounding
      for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).epsilon(1e-12).margin(1e-13 * double(K)));
    }
    REQUIRE(got != c0);  // the product was written
  }
}

}  // namespace

TEST_CASE("conv2d::share_winograd reads the owner's prepared transforms once, with the same bits", "[nn][conv2d][winograd]") {
  // the owner prepares; the reader's forward and backward read its transforms; a later forward
  // without a new prepare computes its own from the reader's (changed) weights
  const auto alg = GENERATE(nn::conv_algorithm::winograd, nn::conv_algorithm::winograd4);
  CAPTURE(int(alg));
  conv_fixture<float> owner(16, 64, 3, alg), reader(16, 64, 3, alg), alone(16, 64, 3, alg);
  REQUIRE(reader.conv.runs_winograd());
  const batch<float> x = random_tensor<float, 4>({3, 16, 14, 14}, 41, 1);
  const batch<float> dy = random_tensor<float, 4>({3, 64, 14, 14}, 41, 2);
  const auto run = [&](conv_fixture<float>& f) {
    f.store.zero_grad();
    const batch<float> y = f.conv.forward(x);
    const batch<float> dx = f.conv.backward(dy);
    return std::tuple{y, dx, std::vector<float>(f.store.gradients().begin(), f.store.gradients().end())};
  };
  owner.conv.prepare_winograd();
  reader.conv.share_winograd(&owner.conv);
  alone.conv.share_winograd(&reader.conv);  // not prepared: ignored
  const auto want = run(alone);
  REQUIRE(run(reader) == want);
  REQUIRE(run(owner) == want);
  // used once: the reader's weights change, and its next forward and backward follow them
  for (float& w : reader.conv.weight) w *= 0.5f;
  for (float& w : alone.conv.weight) w *= 0.5f;
  const auto changed = run(alone);
  REQUIRE(changed != want);
  REQUIRE(run(reader) == changed);
  // shared, the reader reads the owner's transforms (those of the owner's unchanged weights; refunet
  // shares only between equal weights); a copy of it reads nothing of the owner's
  owner.conv.prepare_winograd();
  reader.conv.share_winograd(&owner.conv);
  nn::conv2d<float> copy = reader.conv;
  const bool copy_computes_its_own = batch<float>(copy.forward(x)) == std::get<0>(changed);
  REQUIRE(copy_computes_its_own);
  REQUIRE(run(reader) == want);
}

TEST_CASE("tiled_gemm_tn (A read transposed in place) gives tiled_gemm's bits on the transposed copy", "[nn][conv2d][winograd]") {
  // N = 64 and 32: the 6 x 4 and 12 x 2 tiles; 16, 5 and 80: the default tile with masked
  // columns; M not a multiple of the tile's rows: the last row tile repeats a valid column of A
  const std::size_t shapes[][3] = {{64, 64, 98}, {13, 64, 16}, {24, 32, 37}, {7, 32, 5},  {1, 16, 9},
                                   {30, 5, 49},  {9, 80, 33},  {64, 16, 1},  {128, 64, 96}};
  std::uint64_t seed = 51;
  for (const auto& s : shapes) {
    check_gemm_tn_equals_transposed<float>(s[0], s[1], s[2], seed);
    check_gemm_tn_equals_transposed<double>(s[0], s[1], s[2], seed++);
  }
}

namespace {

/// A GroupNorm of shape[1] channels in `groups` groups with gamma[i] = g0 + g1 i, beta[i] =
/// b0 + b1 i, an input x of `shape` (streams 1 of `seed`) and an upstream gradient ds (stream 2).
template <class T>
struct norm_setup {
  nn::parameter_store<T> store;
  nn::group_norm<T> gn;
  batch<T> x, ds;
  norm_setup(std::size_t groups, shape4 shape, std::uint64_t seed, T g0, T g1, T b0, T b1)
      : gn(groups, shape[1]), x(random_tensor<T, 4>(shape, seed, 1, 1.5, 0.3)),
        ds(random_tensor<T, 4>(shape, seed, 2)) {
    const std::size_t C = shape[1];
    gn.declare(store, "gn");
    store.allocate();
    gn.bind(store);
    for (std::size_t i = 0; i < C; ++i) gn.weight[i] = g0 + g1 * T(i), gn.bias[i] = b0 + b1 * T(i);
  }
  /// SiLU(GroupNorm(x)) by the two layers in turn, and their backward of ds: output, dx and the
  /// parameter gradients (zeroed afterwards).
  struct route {
    batch<T> y, dx;
    std::vector<T> grads;
  };
  route unfused() {
    nn::silu<T> act;
    route r{act.forward(gn.forward(x)), {}, {}};
    r.dx = gn.backward(act.backward(ds));
    r.grads.assign(store.gradients().begin(), store.gradients().end());
    store.zero_grad();
    return r;
  }
};

}  // namespace

TEST_CASE("group_norm::forward_silu and backward_silu equal group_norm and silu in turn", "[nn][group_norm]") {
  norm_setup<double> f(4, {3, 8, 5, 6}, 41, 0.5, 0.1, -0.2, 0.05);
  auto& store = f.store;
  auto& gn = f.gn;
  const auto &x = f.x, &ds = f.ds;
  const auto ref = f.unfused();
  const batch<double>&s_ref = ref.y, &dx_ref = ref.dx;
  const std::vector<double>& grads_ref = ref.grads;
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

TEST_CASE("group_norm::backward_silu in float gives group_norm and silu's bits", "[nn][group_norm]") {
  // the fused backward computes SiLU's gradient in a loop of its own (sixteen lanes) and then
  // the very sums of group_norm::backward, so the two routes agree to the bit
  norm_setup<float> f(8, {2, 32, 7, 9}, 43, 0.5f, 0.03f, -0.3f, 0.02f);
  const auto ref = f.unfused();
  const batch<float>& dx_ref = ref.dx;
  const std::vector<float>& grads_ref = ref.grads;
  (void)f.gn.forward_silu(f.x);
  const auto& dx = f.gn.backward_silu(f.ds);
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < dx.size(); ++i) {
    REQUIRE(dx.data()[i] == dx_ref.data()[i]);
    nonzero += dx.data()[i] != 0.0f;
  }
  CHECK(nonzero == dx.size());
  for (std::size_t i = 0; i < grads_ref.size(); ++i) REQUIRE(f.store.gradients()[i] == grads_ref[i]);
}

namespace {

/// conv(SiLU(GroupNorm(x))) with the map fused into the convolution (the ResBlock pattern).
template <class T>
struct norm_silu_conv {
  using scalar_type = T;
  nn::parameter_store<T> store;
  nn::group_norm<T> gn;
  nn::conv2d<T> conv;
  bool fused = true;
  norm_silu_conv(std::size_t a, std::size_t b, std::size_t groups, std::size_t stride, nn::conv_algorithm alg)
      : gn(groups, a), conv(a, b, 3, stride) {
    conv.algorithm = alg;
    gn.declare(store, "gn");
    conv.declare(store, "conv");
    store.allocate();
    gn.bind(store);
    conv.bind(store);
    conv.init(noise_source{9, 1});
    for (std::size_t i = 0; i < a; ++i)
      gn.weight[i] = T(0.7) + T(0.05) * T(i), gn.bias[i] = T(0.1) * T(i % 5) - T(0.2);
  }
  const batch<T>& forward(const batch<T>& x) { return fused ? conv.forward(x, gn.silu_map(x)) : conv.forward(gn.forward_silu(x)); }
  const batch<T>& backward(const batch<T>& dy) { return gn.backward_silu(conv.backward(dy)); }
};

}  // namespace

TEST_CASE("conv2d::forward(x, silu_map(x)) equals the convolution of forward_silu(x) bit for bit", "[nn][conv2d][group_norm]") {
  struct fused_case {
    std::size_t a, b, groups, stride, n, h, w;
    nn::conv_algorithm alg;
  };
  const fused_case cases[] = {
      {16, 32, 4, 1, 6, 14, 14, nn::conv_algorithm::tiled},        // dense 3 x 3: the map applied while padding
      {8, 16, 2, 1, 3, 28, 28, nn::conv_algorithm::tiled},         // rows of 28: a partial vector per row
      {8, 8, 4, 2, 4, 9, 9, nn::conv_algorithm::tiled},            // stride 2: m(x) stored, then im2col
      {8, 16, 4, 1, 4, 7, 7, nn::conv_algorithm::im2col_blas},     // m(x) stored, then BLAS
      {8, 16, 4, 1, 7, 7, 7, nn::conv_algorithm::winograd},        // the map applied while padding for Winograd
      {8, 16, 4, 1, 3, 9, 10, nn::conv_algorithm::winograd4},      // and for F(4x4): edge tiles both ways
  };
  for (const fused_case& c : cases) {
    CAPTURE(c.a, c.b, c.groups, c.stride, c.n, c.h, c.w, int(c.alg));
    norm_silu_conv<float> fused(c.a, c.b, c.groups, c.stride, c.alg), plain(c.a, c.b, c.groups, c.stride, c.alg);
    plain.fused = false;
    const batch<float> x = random_tensor<float, 4>({c.n, c.a, c.h, c.w}, 43, 1, 1.3, 0.4);
    const batch<float> y_plain = plain.forward(x);
    const batch<float>& y = fused.forward(x);
    REQUIRE(shape_of(y) == shape_of(y_plain));
    std::size_t differ = 0;
    for (std::size_t i = 0; i < y.size(); ++i) differ += y.data()[i] != y_plain.data()[i];
    REQUIRE(differ == 0);
    const batch<float> g = random_tensor<float, 4>(shape_of(y), 43, 2);
    plain.store.zero_grad();
    fused.store.zero_grad();
    const batch<float> dx_plain = plain.backward(g);
    const batch<float>& dx = fused.backward(g);
    for (std::size_t i = 0; i < dx.size(); ++i) differ += dx.data()[i] != dx_plain.data()[i];
    REQUIRE(differ == 0);
    const auto gp = plain.store.gradients(), gf = fused.store.gradients();
    double largest = 0;
    for (std::size_t i = 0; i < gp.size(); ++i) differ += gp[i] != gf[i], largest = std::max(largest, double(std::abs(gf[i])));
    REQUIRE(differ == 0);
    REQUIRE(largest > 0);
    // a second forward with the fused map after a plain one (and back) keeps nothing stale
    fused.fused = false;
    const batch<float>& y2 = fused.forward(x);
    for (std::size_t i = 0; i < y2.size(); ++i) differ += y2.data()[i] != y_plain.data()[i];
    REQUIRE(differ == 0);
  }
}

TEST_CASE("conv2d::forward(x, silu_map(x)) passes the float64 gradient check", "[nn][conv2d][group_norm]") {
  for (const auto alg : {nn::conv_algorithm::tiled, nn::conv_algorithm::im2col_blas, nn::conv_algorithm::winograd,
                         nn::conv_algorithm::winograd4}) {
    CAPTURE(int(alg));
    norm_silu_conv<double> layer(4, 6, 2, 1, alg);
    batch<double> x = random_tensor<double, 4>({2, 4, 5, 6}, 47, 1, 1.2, 0.3);
    const auto r = softdiff::testing::check_layer_gradients(layer, &layer.store, x, 47);
    INFO(r.input.describe());
    INFO(r.parameters.describe());
    REQUIRE(r.input.nonzero > r.input.count / 2);
    REQUIRE(r.parameters.nonzero > r.parameters.count / 2);
    REQUIRE(r.input.max_error < 1e-7);
    REQUIRE(r.parameters.max_error < 1e-7);
  }
}

TEST_CASE("conv2d::forward(x, map, addends) adds a per-sample bias and a residual", "[nn][conv2d]") {
  struct addend_case {
    std::size_t a, b, stride, n, h, w;
    nn::conv_algorithm alg;
  };
  const addend_case cases[] = {
      {8, 16, 1, 3, 28, 28, nn::conv_algorithm::tiled},     // dense: added as the tiles are stored
      {4, 24, 1, 2, 5, 7, nn::conv_algorithm::tiled},       // partial row and column tiles
      {8, 8, 2, 2, 9, 9, nn::conv_algorithm::tiled},        // stride 2: added afterwards
      {8, 16, 1, 2, 7, 7, nn::conv_algorithm::im2col_blas}, // BLAS: added afterwards
      {8, 16, 1, 3, 28, 28, nn::conv_algorithm::winograd},  // Winograd: added in the output transform
      {4, 24, 1, 7, 5, 7, nn::conv_algorithm::winograd},    // odd sizes, two chunks of samples
      {8, 32, 1, 5, 6, 9, nn::conv_algorithm::winograd4},   // F(4x4): edge tiles, added in the output transform
  };
  for (const addend_case& c : cases) {
    CAPTURE(c.a, c.b, c.stride, c.n, c.h, c.w, int(c.alg));
    norm_silu_conv<float> layer(c.a, c.b, 4, c.stride, c.alg);
    const batch<float> x = random_tensor<float, 4>({c.n, c.a, c.h, c.w}, 53, 1, 1.1, 0.2);
    const auto m = layer.gn.silu_map(x);
    const batch<float> plain = layer.conv.forward(x, m);
    const batch<float> residual = random_tensor<float, 4>(shape_of(plain), 53, 2);
    const batch<float> sample_bias = random_tensor<float, 4>({c.n, c.b, 1, 1}, 53, 3);
    const batch<float>& y = layer.conv.forward(x, m, {.sample_bias = sample_bias.data(), .residual = &residual});
    REQUIRE(shape_of(y) == shape_of(plain));
    const std::size_t L = y.shape()[2] * y.shape()[3];
    for (std::size_t i = 0; i < y.size(); ++i) {
      const double want = double(plain.data()[i]) + double(sample_bias.data()[i / L]) + double(residual.data()[i]);
      REQUIRE(y.data()[i] == Approx(want).margin(2e-5));
    }
    const batch<float>& only_bias = layer.conv.forward(x, m, {.sample_bias = sample_bias.data()});
    for (std::size_t i = 0; i < y.size(); ++i)
      REQUIRE(only_bias.data()[i] == Approx(double(plain.data()[i]) + double(sample_bias.data()[i / L])).margin(2e-5));
    REQUIRE_THROWS_WITH(layer.conv.forward(x, m, {.residual = &x}), Catch::Contains("residual"));
  }
}
