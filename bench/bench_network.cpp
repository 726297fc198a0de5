// RefUNet (docs/refunet.md, default configuration: 1,539,329 parameters) at batch 64, 1 x 28 x 28,
// float32: the forward pass (predict; thawed, keeping the activations, and frozen, for inference)
// and a full training step
//   forward; loss = mean((phi - target)^2), dL/dphi = 2 (phi - target) / numel; backward;
//   Adam (lr 2e-4, betas 0.9 / 0.999, eps 1e-8, gradient-norm clipping at 1)
// the same work that bench/torch_refunet.py times in PyTorch. Run both in one session:
//   OMP_NUM_THREADS=2 build/bench/bench_network && OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_refunet.py
// Each benchmark runs single iterations, repeated; the "_min" aggregate is the best of them.
// Time is wall-clock time; CPU is the process's CPU time (all threads), which a busy machine
// inflates much less than wall time.
// Counter: heap allocations per iteration (global operator new is counted in this binary).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "softdiff/nn/adam.hpp"
#include "softdiff/nn/refunet.hpp"
#include "softdiff/random.hpp"
#include "../tests/support/replace_new.hpp"  // counts heap allocations (allocs/iter)

using namespace softdiff;

namespace {

constexpr std::size_t kBatch = 64, kSize = 28;

/// A network, optimiser and batch, warmed up (buffers sized) once.
struct setup {
  nn::refunet<float> net;
  nn::adam<float> opt{net.parameter_count(), nn::adam_config{}};
  batch<float> x, target, phi, dphi;
  std::vector<double> t;
  float loss = 0;

  explicit setup(const nn::refunet_config& cfg = {}, std::size_t count = kBatch,
                 nn::precision arithmetic = nn::precision::float32)
      : net(cfg, 2024), x(shape4{count, 1, kSize, kSize}), target(shape4{count, 1, kSize, kSize}),
        dphi(shape4{count, 1, kSize, kSize}), t(count) {
    net.set_precision(arithmetic);
    noise_source{7, 1}.fill(x);
    noise_source{7, 2}.fill(target);
    for (std::size_t n = 0; n < count; ++n) t[n] = noise_source{7, 3}.uniform(n);
    train_step();  // sizes every workspace
    net.predict(x, t, phi);
  }

  void train_step() {
    net.zero_grad();
    net.forward(x, t, phi);
    const float* p = phi.data();
    const float* y = target.data();
    float* d = dphi.data();
    const std::size_t n = phi.size();
    const float scale = 2.0f / static_cast<float>(n);
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const float r = p[i] - y[i];
      sum += static_cast<double>(r) * r;
      d[i] = scale * r;
    }
    loss = static_cast<float>(sum / static_cast<double>(n));
    net.backward(dphi);
    opt.step(net.parameters(), net.gradients());
  }
};

setup& shared() {
  static setup s;
  return s;
}

void finish(benchmark::State& state, std::size_t allocations) {
  state.counters["allocs/iter"] = double(allocations) / double(std::max<benchmark::IterationCount>(1, state.iterations()));
}

/// Times the shared network's predict, after one call that sizes its buffers (they change with
/// the replicas' split, and with freezing).
void time_predict(benchmark::State& state, setup& s) {
  s.net.predict(s.x, s.t, s.phi);
  const std::size_t before = test::allocations.load();
  for (auto _ : state) {
    s.net.predict(s.x, s.t, s.phi);
    benchmark::DoNotOptimize(s.phi.data());
  }
  finish(state, test::allocations.load() - before);
  state.counters["replicas"] = double(s.net.replicas_in_use());
}

void BM_refunet_forward(benchmark::State& state) {
  setup& s = shared();
  s.net.set_max_replicas(static_cast<std::size_t>(state.range(0)));
  time_predict(state, s);
}

/// The forward pass for inference, as `softdiff sample` and `eval` run it: the network frozen
/// (refunet::freeze; micro-batches where they pay) and keeping no activations for a backward;
/// the counterpart of bench/torch_refunet.py's forward under torch.no_grad().
/// BM_refunet_forward keeps the activations (a training forward).
void BM_refunet_forward_frozen(benchmark::State& state) {
  setup& s = shared();
  s.net.set_max_replicas(0);
  s.net.freeze(true);
  time_predict(state, s);
  s.net.freeze(false);  // the shared network trains in the other benchmarks
}

void BM_refunet_train_step(benchmark::State& state) {
  setup& s = shared();
  s.net.set_max_replicas(static_cast<std::size_t>(state.range(0)));
  s.train_step();
  const std::size_t before = test::allocations.load();
  for (auto _ : state) {
    s.train_step();
    benchmark::DoNotOptimize(s.loss);
  }
  finish(state, test::allocations.load() - before);
  state.counters["replicas"] = double(s.net.replicas_in_use());
}

/// A training step by precision: arguments base channels, batch, bf16 (1: the 3 x 3
/// convolutions' forward and backward in bf16 on AMX, `softdiff train --precision bf16`;
/// reported as an error where AMX is missing). Base 16 at batch 32 is the main recipe's
/// network (scripts/recipe.sh), base 32 at batch 64 the default configuration.
void BM_refunet_train_step_precision(benchmark::State& state) {
  nn::refunet_config cfg;
  cfg.base_channels = static_cast<std::size_t>(state.range(0));
  const bool bf16 = state.range(2) != 0;
  if (bf16 && !nn::amx_status().usable) {
    state.SkipWithError(("bf16 needs AMX: " + nn::amx_status().missing).c_str());
    return;
  }
  setup s(cfg, static_cast<std::size_t>(state.range(1)), bf16 ? nn::precision::bf16 : nn::precision::float32);
  s.train_step();  // sizes every buffer: Google benchmark calls this function once per repetition
  for (auto _ : state) {
    s.train_step();
    benchmark::DoNotOptimize(s.loss);
  }
  state.counters["steps/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}

/// Sampling throughput: network evaluations per second (images through predict per second) for
/// the main job's network (base 16, docs/guide.md) at the batch sizes the tool samples with:
/// `softdiff sample` and `softdiff eval` draw in chunks of --chunk (250 by default), and 64 is
/// sample's default --count. Arguments: base channels, batch, bf16 (1: the 3 x 3 convolutions in
/// bf16 on AMX, `softdiff sample --precision bf16`; reported as an error where AMX is missing).
void BM_refunet_sampling_nfe(benchmark::State& state) {
  nn::refunet_config cfg;
  cfg.base_channels = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::size_t>(state.range(1));
  nn::refunet<float> net(cfg, 2024);
  if (state.range(2) != 0) {
    if (!nn::amx_status().usable) {
      state.SkipWithError(("bf16 needs AMX: " + nn::amx_status().missing).c_str());
      return;
    }
    net.set_precision(nn::precision::bf16);
  }
  net.freeze(true);  // as the commands that sample do (refunet::freeze)
  batch<float> x{shape4{n, 1, kSize, kSize}}, phi;
  noise_source{7, 1}.fill(x);
  std::vector<double> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = noise_source{7, 3}.uniform(i);
  net.predict(x, t, phi);  // sizes every buffer
  for (auto _ : state) {
    net.predict(x, t, phi);
    benchmark::DoNotOptimize(phi.data());
  }
  state.counters["NFE/s"] = benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
}

/// The default network's forward (mode 0) or training step (mode 1) with its convolutions'
/// algorithm automatic (0: Winograd where winograd_preferred, nn/winograd.hpp) or tiled (1:
/// the direct kernel everywhere): the whole-network effect of Winograd, both in one run.
void BM_refunet_conv_algorithm(benchmark::State& state) {
  setup s;
  s.net.set_conv_algorithm(state.range(1) ? nn::conv_algorithm::tiled : nn::conv_algorithm::automatic);
  const bool train = state.range(0) != 0;
  if (train) s.train_step(); else s.net.predict(s.x, s.t, s.phi);  // sizes the buffers of this algorithm
  for (auto _ : state) {
    if (train) {
      s.train_step();
      benchmark::DoNotOptimize(s.loss);
    } else {
      s.net.predict(s.x, s.t, s.phi);
      benchmark::DoNotOptimize(s.phi.data());
    }
  }
}

double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

/// The timing rules of every benchmark here: wall time in ms (the process's CPU time beside
/// it), I calls a repetition, R repetitions, the best reported as "_min".
template <int I, int R>
void timed(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MeasureProcessCPUTime()
      ->Iterations(I)
      ->Repetitions(R)
      ->ComputeStatistics("min", best);
}

}  // namespace

// Argument: set_max_replicas (0: the default, min(N, 4) replicas spread over the threads; 1: one set of layers
// that parallelise internally).
BENCHMARK(BM_refunet_forward)
    ->ArgName("max_replicas")
    ->Arg(0)
    ->Arg(1)
    ->Apply(timed<1, 8>);
BENCHMARK(BM_refunet_forward_frozen)
    ->Apply(timed<1, 8>);
BENCHMARK(BM_refunet_train_step)
    ->ArgName("max_replicas")
    ->Arg(0)
    ->Arg(1)
    ->Apply(timed<1, 6>);

BENCHMARK(BM_refunet_train_step_precision)
    ->ArgNames({"base", "batch", "bf16"})
    ->Args({16, 32, 0})
    ->Args({16, 32, 1})
    ->Args({32, 64, 0})
    ->Args({32, 64, 1})
    ->Apply(timed<4, 5>);

BENCHMARK(BM_refunet_sampling_nfe)
    ->ArgNames({"base", "batch", "bf16"})
    ->Args({16, 64, 0})
    ->Args({16, 250, 0})
    ->Args({16, 64, 1})
    ->Args({16, 250, 1})
    ->Args({32, 64, 0})   // the default network at the batch of BM_refunet_forward_frozen
    ->Args({32, 64, 1})
    ->Apply(timed<2, 5>);

// Run with --benchmark_enable_random_interleaving=true so the two algorithms alternate.
BENCHMARK(BM_refunet_conv_algorithm)
    ->ArgNames({"train", "tiled"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Apply(timed<3, 6>);

BENCHMARK_MAIN();
