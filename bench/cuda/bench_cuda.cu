// GPU benchmarks of backend::cuda at the paper's CelebA-64 configuration (128 x 3 x 64 x 64
// float32, Gaussian blur half size 80, appendix G), timed with CUDA events (manual time):
//   blur/cuda/std:S               C X = B X B^T (two cuBLAS GEMMs) at blur std S in {0.5, 3, 10, 23}
//   momentum_update/cuda          the fused eq. 17 update with its Philox noise (one kernel)
//   momentum_step/cuda/std:S      a whole Momentum Sampler step with phi = 0 (h = x_t copy,
//                                 C_t x0, C_{t'} x0, fused update), the levels of
//                                 bench/torch_momentum_step.py
//   momentum_step/cuda/graph/std:3  the std:3 step captured once as a CUDA graph and replayed
//   fill_normal/cuda              Philox noise alone
//   .../batch:2048                the update and the noise at 16x the batch (100 MB per array)
// Counters: GB/s of the bytes a pass must move (blur: read x, write y; update: read x, y_t,
// C_{t'} x0, write x; noise: write), and bw_share = GB/s over the device's peak memory bandwidth
// (2 x memory clock x bus width, from cudaDeviceGetAttribute; CUDA 13 removed the
// cudaDeviceProp fields, not the attributes). Should the driver report no memory clock, the
// peak falls back to the measured device-to-device copy rate, and the context says which one
// it is. The context also holds that measured copy rate (gpu_copy_bandwidth_GBps, bytes read
// plus written), the practical ceiling that scripts/gpu_check.sh's summary compares with too.
// bench/torch_cuda_step.py times the same step in PyTorch on the same GPU; scripts/gpu_check.sh
// runs both.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>

#include "softdiff/cuda_ops.cuh"

using namespace softdiff;
using backend::cuda;

namespace softdiff_bench {
/// level(t) = 100 t, sigma(t) = t / 2: the tabulated schedule of bench/bench_sampler.cpp.
struct bench_schedule {
  [[nodiscard]] double level(double t) const { return 100.0 * t; }
  [[nodiscard]] double sigma(double t) const { return 0.5 * t; }
  [[nodiscard]] std::string name() const { return "bench"; }
};
static_assert(Schedule<bench_schedule>);
}  // namespace softdiff_bench

namespace {

using softdiff_bench::bench_schedule;

constexpr std::size_t kN = 128, kC = 3, kH = 64, kW = 64, kCount = kN * kC * kH * kW;
const shape4 kShape{kN, kC, kH, kW};
constexpr std::size_t kLargeCount = 16 * kCount;

/// Bytes read plus written per second by cudaMemcpyAsync between two 512 MiB device buffers
/// (best of 10 copies after a warm-up): what a pure streaming kernel can reach on this device.
double copy_bandwidth() {
  static const double rate = [] {
    constexpr std::size_t bytes = std::size_t{512} << 20;
    cuda_ops::device_buffer<unsigned char> a(bytes), b(bytes);
    const cudaStream_t s = cuda::stream();
    SOFTDIFF_CUDA_CHECK(cudaMemsetAsync(a.data(), 1, bytes, s));
    SOFTDIFF_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s));
    cudaEvent_t start, stop;
    SOFTDIFF_CUDA_CHECK(cudaEventCreate(&start));
    SOFTDIFF_CUDA_CHECK(cudaEventCreate(&stop));
    float best_ms = 0;
    for (int i = 0; i < 10; ++i) {
      SOFTDIFF_CUDA_CHECK(cudaEventRecord(start, s));
      SOFTDIFF_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s));
      SOFTDIFF_CUDA_CHECK(cudaEventRecord(stop, s));
      SOFTDIFF_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      SOFTDIFF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (i == 0 || ms < best_ms) best_ms = ms;
    }
    SOFTDIFF_CUDA_CHECK(cudaEventDestroy(start));
    SOFTDIFF_CUDA_CHECK(cudaEventDestroy(stop));
    return 2.0 * double(bytes) / (best_ms * 1e-3);
  }();
  return rate;
}

struct peak {
  double bytes_per_second;
  const char* source;
};

/// Peak DRAM bandwidth in bytes/s: 2 transfers per memory clock over the whole bus, from the
/// device attributes (cudaDeviceProp::memoryClockRate no longer exists in CUDA 13); the measured
/// copy rate where the driver reports no clock or refuses the query.
peak peak_bandwidth() {
  static const peak p = [] {
    int device = 0, clock_khz = 0, bus_bits = 0;
    SOFTDIFF_CUDA_CHECK(cudaGetDevice(&device));
    const bool known = cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess &&
                       cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess &&
                       clock_khz > 0 && bus_bits > 0;
    if (known) return peak{2.0 * clock_khz * 1e3 * bus_bits / 8.0, "2 x memory clock x bus width"};
    (void)cudaGetLastError();  // a refused attribute query is not sticky; clear it anyway
    return peak{copy_bandwidth(), "measured device-to-device copy (no memory clock reported)"};
  }();
  return p;
}

/// Times `f` (enqueued on the current stream) with CUDA events, one iteration per sample.
template <class F>
void run_timed(benchmark::State& state, F&& f, double bytes_per_iteration) {
  cudaEvent_t start, stop;
  SOFTDIFF_CUDA_CHECK(cudaEventCreate(&start));
  SOFTDIFF_CUDA_CHECK(cudaEventCreate(&stop));
  f();  // warm-up: plans, handles, caches
  cuda::synchronize();
  double seconds = 0;
  for (auto _ : state) {
    SOFTDIFF_CUDA_CHECK(cudaEventRecord(start, cuda::stream()));
    f();
    SOFTDIFF_CUDA_CHECK(cudaEventRecord(stop, cuda::stream()));
    SOFTDIFF_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    SOFTDIFF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms * 1e-3);
    seconds += ms * 1e-3;
  }
  SOFTDIFF_CUDA_CHECK(cudaEventDestroy(start));
  SOFTDIFF_CUDA_CHECK(cudaEventDestroy(stop));
  if (bytes_per_iteration > 0 && seconds > 0) {  // over the event-timed seconds, not Google benchmark's clocks
    const double rate = bytes_per_iteration * double(state.iterations()) / seconds;
    state.counters["GB/s"] = rate * 1e-9;
    state.counters["bw_share"] = rate / peak_bandwidth().bytes_per_second;
  }
}

cuda_ops::device_buffer<float> normal_device_batch(std::uint64_t stream, std::size_t count = kCount) {
  cuda_ops::device_buffer<float> d(count);
  cuda::fill_normal<float>(2024, stream, d.data(), count);
  return d;
}

void blur(benchmark::State& state, double sd) {
  auto op = cuda_ops::make_device_operator(op::gaussian_blur<float>(80));
  auto x = normal_device_batch(1);
  cuda_ops::device_buffer<float> y(kCount);
  run_timed(state, [&] { op.apply(sd, x.data(), y.data(), kShape); }, 2.0 * kCount * sizeof(float));
}

// sigma_t = 0.015 -> 0.0145 (the levels of bench/torch_momentum_step.py's std:3)
void momentum_update(benchmark::State& state, std::size_t count) {
  auto x = normal_device_batch(1, count), y = normal_device_batch(2, count), c = normal_device_batch(3, count);
  const noise_source noise{7, stream_for(stream_purpose::sampler, 0)};
  run_timed(
      state, [&] { cuda_ops::momentum<float>::update(x.data(), x.data(), y.data(), c.data(), count, 0.015, 0.0145, noise); },
      4.0 * double(count) * sizeof(float));
}

/// A Momentum Sampler step of the paper's blur with phi = 0 on a batch of normal noise.
struct step_case {
  cuda_ops::device_model<op::gaussian_blur<float>, bench_schedule, cuda_ops::zero_residual> model{
      op::gaussian_blur<float>(80), {}, {}};
  cuda_ops::momentum<float> sampler;
  cuda_ops::device_batch<float> x{kShape};
  noise_source noise{7, stream_for(stream_purpose::sampler, 0)};
  step_case() { cuda::fill_normal<float>(2024, 1, x.data(), kCount); }
  void step(double t, double t_next) { sampler.step(model, x, t, t_next, noise); }
  // passes at their minimum traffic: h = x copy (2), two blurs (2 each), the update (4)
  static constexpr double bytes = 10.0 * kCount * sizeof(float);
};

void momentum_step(benchmark::State& state, double t, double t_next) {
  step_case c;
  run_timed(state, [&] { c.step(t, t_next); }, step_case::bytes);
}

/// momentum_step replayed as a CUDA graph (captured once on a stream of its own, relaxed mode):
/// the same kernels without a launch from the host each, to measure what the launches cost. The
/// replays reuse the captured noise; only the time is of interest.
void momentum_step_graph(benchmark::State& state, double t, double t_next) try {
  step_case c;
  backend::cuda_stream stream;
  cuda_ops::cuda_stream_scope scope(stream.get());
  c.step(t, t_next);  // workspaces, axis matrices, cuBLAS handles: outside the graph
  cuda::synchronize();
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  SOFTDIFF_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeRelaxed));
  c.step(t, t_next);
  SOFTDIFF_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  SOFTDIFF_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  std::size_t nodes = 0;
  SOFTDIFF_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
  run_timed(state, [&] { SOFTDIFF_CUDA_CHECK(cudaGraphLaunch(exec, stream.get())); }, step_case::bytes);
  state.counters["graph_nodes"] = static_cast<double>(nodes);
  SOFTDIFF_CUDA_CHECK(cudaGraphExecDestroy(exec));
  SOFTDIFF_CUDA_CHECK(cudaGraphDestroy(graph));
} catch (const std::exception& e) {
  state.SkipWithError(e.what());
}

void fill_normal(benchmark::State& state, std::size_t count) {
  cuda_ops::device_buffer<float> x(count);
  run_timed(state, [&] { cuda::fill_normal<float>(1, 2, x.data(), count); }, 1.0 * double(count) * sizeof(float));
}

void describe_device() {
  cudaDeviceProp p{};
  int device = 0;
  SOFTDIFF_CUDA_CHECK(cudaGetDevice(&device));
  SOFTDIFF_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  benchmark::AddCustomContext("gpu", p.name);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", peak_bandwidth().bytes_per_second * 1e-9);
  benchmark::AddCustomContext("gpu_peak_bandwidth_GBps", buf);
  benchmark::AddCustomContext("gpu_peak_bandwidth_source", peak_bandwidth().source);
  std::snprintf(buf, sizeof buf, "%.0f", copy_bandwidth() * 1e-9);
  benchmark::AddCustomContext("gpu_copy_bandwidth_GBps", buf);
  benchmark::AddCustomContext("batch", "128x3x64x64 float32, blur half size 80");
}

}  // namespace

int main(int argc, char** argv) try {
  describe_device();
  for (double sd : {0.5, 3.0, 10.0, 23.0}) {
    char name[64];
    std::snprintf(name, sizeof name, "blur/cuda/std:%g", sd);
    benchmark::RegisterBenchmark(name, [sd](benchmark::State& s) { blur(s, sd); })->UseManualTime();
  }
  benchmark::RegisterBenchmark("momentum_update/cuda", [](benchmark::State& s) { momentum_update(s, kCount); })
      ->UseManualTime();
  // t -> t' giving blur std 3 -> 2.9 and 10 -> 9.8 (sigma 0.015 -> 0.0145, 0.05 -> 0.049)
  benchmark::RegisterBenchmark("momentum_step/cuda/std:3", [](benchmark::State& s) { momentum_step(s, 0.03, 0.029); })
      ->UseManualTime();
  benchmark::RegisterBenchmark("momentum_step/cuda/std:10", [](benchmark::State& s) { momentum_step(s, 0.1, 0.098); })
      ->UseManualTime();
  benchmark::RegisterBenchmark("momentum_step/cuda/graph/std:3",
                               [](benchmark::State& s) { momentum_step_graph(s, 0.03, 0.029); })
      ->UseManualTime();
  benchmark::RegisterBenchmark("fill_normal/cuda", [](benchmark::State& s) { fill_normal(s, kCount); })->UseManualTime();
  // The two streaming kernels at 16x the batch (2048 images, 100 MB per array): at 128 images a
  // call lasts about 13 us, where launch latency is a large part; here the kernel's own rate shows.
  benchmark::RegisterBenchmark("momentum_update/cuda/batch:2048", [](benchmark::State& s) { momentum_update(s, kLargeCount); })
      ->UseManualTime();
  benchmark::RegisterBenchmark("fill_normal/cuda/batch:2048", [](benchmark::State& s) { fill_normal(s, kLargeCount); })
      ->UseManualTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
} catch (const std::exception& e) {  // no GPU, or a CUDA failure: say why rather than abort
  std::fprintf(stderr, "bench_cuda: %s\n", e.what());
  return 1;
}
