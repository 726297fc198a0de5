// Layer micro-benchmarks at RefUNet's largest shapes (batch 64, 28x28, base 32 channels):
// conv3x3 forward and backward with each conv2d algorithm (tiled: conv_kernels.hpp;
// im2col_blas: im2col + OpenBLAS; winograd: winograd.hpp), the 3x3 shapes of RefUNet's
// levels (tiled against winograd: BM_conv3x3_shape/in/out/size), the bare BLAS GEMMs of the im2col forward as a
// reference ceiling, plus GroupNorm, SiLU, ResBlock and the middle AttnBlock (64 channels
// at 7x7). Counter: GFLOP/s of the convolution arithmetic (2 N b a k^2 H' W' per pass).
#include <benchmark/benchmark.h>

#include <vector>

#include <omp.h>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/nn/attn_block.hpp"
#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/res_block.hpp"
#include "softdiff/nn/silu.hpp"

using namespace softdiff;

namespace {

constexpr std::size_t kN = 64, kC = 32, kH = 28;

batch<float> normal_batch(const shape4& s, std::uint64_t stream) {
  batch<float> x(s);
  noise_source{2024, stream}.fill(x);
  return x;
}

struct conv_setup {
  nn::parameter_store<float> store;
  nn::conv2d<float> conv;
  batch<float> x, dy;
  conv_setup(std::size_t k, std::size_t stride, nn::conv_algorithm alg, std::size_t in = kC, std::size_t out = kC,
             std::size_t size = kH)
      : conv(in, out, k, stride) {
    conv.algorithm = alg;
    conv.declare(store, "conv");
    store.allocate();
    conv.bind(store);
    conv.init(noise_source{1, 1});
    x = normal_batch({kN, in, size, size}, 1);
    dy = normal_batch(conv.output_shape(shape_of(x)), 2);
  }
  [[nodiscard]] double flops() const {  // 2 * N * out * in * k * k * H' * W'
    const shape4 o = conv.output_shape(shape_of(x));
    return 2.0 * double(kN * conv.in_channels * conv.out_channels * conv.kernel * conv.kernel * o[2] * o[3]);
  }
};

void set_rate(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iter * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

constexpr auto kTiled = nn::conv_algorithm::tiled, kBlas = nn::conv_algorithm::im2col_blas,
               kWinograd = nn::conv_algorithm::winograd, kWinograd4 = nn::conv_algorithm::winograd4;

void BM_conv3x3_forward(benchmark::State& state, nn::conv_algorithm alg) {
  conv_setup s(3, 1, alg);
  for (auto _ : state) benchmark::DoNotOptimize(s.conv.forward(s.x).data());
  set_rate(state, s.flops());
}
BENCHMARK_CAPTURE(BM_conv3x3_forward, tiled, kTiled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_forward, im2col_blas, kBlas)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_forward, winograd, kWinograd)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_forward, winograd4, kWinograd4)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_conv3x3_backward(benchmark::State& state, nn::conv_algorithm alg) {  // dW, dbias and dx
  conv_setup s(3, 1, alg);
  s.conv.forward(s.x);
  for (auto _ : state) benchmark::DoNotOptimize(s.conv.backward(s.dy).data());
  set_rate(state, 2 * s.flops());
}
BENCHMARK_CAPTURE(BM_conv3x3_backward, tiled, kTiled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_backward, im2col_blas, kBlas)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_backward, winograd, kWinograd)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_conv3x3_backward_weights_only(benchmark::State& state, nn::conv_algorithm alg) {  // need_dx = false
  conv_setup s(3, 1, alg);
  s.conv.forward(s.x);
  for (auto _ : state) benchmark::DoNotOptimize(s.conv.backward(s.dy, false).data());
  set_rate(state, s.flops());
}
BENCHMARK_CAPTURE(BM_conv3x3_backward_weights_only, tiled, kTiled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_backward_weights_only, im2col_blas, kBlas)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One forward and one backward (dW, dbias, dx) of the 3 x 3 convolutions of the default RefUNet's
// three levels (28, 14, 7; 32, 64, 64 channels; the decoder's inputs concatenated with a skip),
// by algorithm: args in, out, size.
void BM_conv3x3_shape(benchmark::State& state, nn::conv_algorithm alg) {
  conv_setup s(3, 1, alg, std::size_t(state.range(0)), std::size_t(state.range(1)), std::size_t(state.range(2)));
  for (auto _ : state) {
    s.conv.forward(s.x);
    benchmark::DoNotOptimize(s.conv.backward(s.dy).data());
  }
  set_rate(state, 3 * s.flops());
}
void conv3x3_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"in", "out", "size"});
  for (const auto& a : std::vector<std::vector<std::int64_t>>{
           {32, 32, 28}, {64, 32, 28}, {96, 32, 28}, {64, 64, 14}, {128, 64, 14}, {64, 64, 7}, {128, 64, 7}})
    b->Args(a);
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK_CAPTURE(BM_conv3x3_shape, tiled, kTiled)->Apply(conv3x3_shapes);
BENCHMARK_CAPTURE(BM_conv3x3_shape, winograd, kWinograd)->Apply(conv3x3_shapes);
BENCHMARK_CAPTURE(BM_conv3x3_shape, winograd4, kWinograd4)->Apply(conv3x3_shapes);

void BM_conv3x3_stride2_forward_backward(benchmark::State& state, nn::conv_algorithm alg) {  // Downsample
  conv_setup s(3, 2, alg);
  for (auto _ : state) {
    s.conv.forward(s.x);
    benchmark::DoNotOptimize(s.conv.backward(s.dy).data());
  }
  set_rate(state, 3 * s.flops());
}
BENCHMARK_CAPTURE(BM_conv3x3_stride2_forward_backward, tiled, kTiled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_conv3x3_stride2_forward_backward, im2col_blas, kBlas)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Only the per-sample BLAS GEMMs of the im2col forward, y_n [32, 784] = W [32, 288] cols_n [288, 784],
// samples over OpenMP threads as conv2d runs them, without im2col or the bias.
void BM_blas_gemm_of_im2col_forward(benchmark::State& state) {
  const int M = int(kC), L = int(kH * kH), K = int(kC * 9);
  std::vector<float> w(std::size_t(M) * K, 0.01f), cols(std::size_t(K) * L * kN, 0.5f), y(std::size_t(M) * L * kN);
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < int(kN); ++n)
      backend::cpu::gemm<float>(false, false, M, L, K, 1.f, w.data(), K, cols.data() + std::size_t(n) * K * L, L, 0.f,
                                y.data() + std::size_t(n) * M * L, L);
    benchmark::DoNotOptimize(y.data());
  }
  set_rate(state, 2.0 * M * L * K * double(kN));
}
BENCHMARK(BM_blas_gemm_of_im2col_forward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_group_norm_forward_backward(benchmark::State& state) {
  nn::parameter_store<float> store;
  nn::group_norm<float> gn(8, kC);
  gn.declare(store, "norm");
  store.allocate();
  gn.bind(store);
  gn.init();
  const batch<float> x = normal_batch({kN, kC, kH, kH}, 3), dy = normal_batch({kN, kC, kH, kH}, 4);
  for (auto _ : state) {
    gn.forward(x);
    benchmark::DoNotOptimize(gn.backward(dy).data());
  }
}
BENCHMARK(BM_group_norm_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_silu_forward_backward(benchmark::State& state) {
  nn::silu<float> act;
  const batch<float> x = normal_batch({kN, kC, kH, kH}, 5), dy = normal_batch({kN, kC, kH, kH}, 6);
  for (auto _ : state) {
    act.forward(x);
    benchmark::DoNotOptimize(act.backward(dy).data());
  }
}
BENCHMARK(BM_silu_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_res_block_forward_backward(benchmark::State& state) {  // down.0.res.*: 32 -> 32 at 28x28
  nn::parameter_store<float> store;
  nn::res_block<float> block(kC, kC, 4 * kC, 8);
  block.declare(store, "res");
  store.allocate();
  block.bind(store);
  block.init(noise_source{1, 2});
  const batch<float> x = normal_batch({kN, kC, kH, kH}, 7), dy = normal_batch({kN, kC, kH, kH}, 8);
  nn::matrix<float> temb({kN, 4 * kC}), dtemb({kN, 4 * kC});
  noise_source{1, 9}.fill(std::span<float>(temb.data(), temb.size()));
  for (auto _ : state) {
    block.forward(x, temb);
    benchmark::DoNotOptimize(block.backward(dy, dtemb).data());
  }
  state.counters["conv GFLOP/s"] = benchmark::Counter(
      6 * 2.0 * double(kN * kC * kC * 9 * kH * kH) * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_res_block_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_attn_block_forward_backward(benchmark::State& state) {  // mid.attn: 64 channels at 7x7
  nn::parameter_store<float> store;
  nn::attn_block<float> block(2 * kC, 8);
  block.declare(store, "attn");
  store.allocate();
  block.bind(store);
  block.init(noise_source{1, 3});
  const batch<float> x = normal_batch({kN, 2 * kC, 7, 7}, 10), dy = normal_batch({kN, 2 * kC, 7, 7}, 11);
  for (auto _ : state) {
    block.forward(x);
    benchmark::DoNotOptimize(block.backward(dy).data());
  }
}
BENCHMARK(BM_attn_block_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
