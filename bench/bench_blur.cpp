// The paper's blur (appendix G: (2*80+1)^2 normalised Gaussian, zero padding) on the CelebA-64
// configuration: 128 images of 3 x 64 x 64 (384 planes), blur std 0.5, 3, 10 and 23.
// softdiff's op::gaussian_blur against the alternatives, all computing the same exact operator
// B X B^T per plane (B the 64 x 64 zero-padded Toeplitz matrix of the 161-tap kernel):
//   batched_gemm_direct  per plane two 64x64x64 sgemm (OpenBLAS via backend::cpu::gemm), OpenMP over planes
//   eigen_gemm_direct    the same two products with Eigen's own GEMM (vectorised for -march=native)
//   opencv_sepFilter2D   cv::sepFilter2D, 161-tap row and column kernels, BORDER_CONSTANT, OpenMP over planes
//   plain_separable      a zero-padded separable loop over all 161 taps, OpenMP over planes
//   softdiff_first_call  a fresh operator per call: includes building the plan (eigen-decompositions)
// Counter max_rel_diff: max |out - softdiff| / max |softdiff| over the whole batch. "CPU" is the
// process CPU time (all threads); times are per call on the whole batch.
// Run: OMP_NUM_THREADS=2 build/bench/bench_blur (on a shared, loaded machine add
// OMP_WAIT_POLICY=passive: spinning OpenMP threads then measure the scheduler, not the code).
// OPENBLAS_CORETYPE=SkylakeX makes OpenBLAS use its AVX-512 kernels where it does not know the CPU.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/random.hpp"

#ifdef SOFTDIFF_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace {

using softdiff::batch;
constexpr int half_size = 80, side = 64, taps = 2 * half_size + 1;
constexpr std::size_t planes = 128 * 3, area = side * side;

const batch<float>& input() {
  static const batch<float> x = [] {
    batch<float> b({128, 3, side, side});
    softdiff::noise_source{2024, 1}.fill(b);
    return b;
  }();
  return x;
}

/// The 161 normalised taps of appendix G, in float.
std::vector<float> kernel_taps(double s) {
  std::vector<double> g(taps);
  double z = 0;
  for (int k = -half_size; k <= half_size; ++k) z += g[k + half_size] = std::exp(-double(k) * k / (2 * s * s));
  std::vector<float> out(taps);
  for (int t = 0; t < taps; ++t) out[t] = static_cast<float>(g[t] / z);
  return out;
}

/// B_ij = g_{i-j}: the 64 x 64 blur matrix (every tap within the image; the kernel is wider).
std::vector<float> blur_matrix(double s) {
  const auto g = kernel_taps(s);
  std::vector<float> b(area);
  for (int i = 0; i < side; ++i)
    for (int j = 0; j < side; ++j) b[i * side + j] = g[i - j + half_size];
  return b;
}

double max_rel_diff(const batch<float>& out, double s) {
  static const softdiff::op::gaussian_blur<float> blur(half_size);
  batch<float> ref;
  blur.apply(s, input(), ref);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::abs(double(out.data()[i]) - ref.data()[i]));
    den = std::max(den, std::abs(double(ref.data()[i])));
  }
  return num / den;
}

void finish(benchmark::State& state, const batch<float>& out, double s) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * planes));
  state.counters["max_rel_diff"] = max_rel_diff(out, s);
}

void bm_softdiff(benchmark::State& state, double s) {
  const softdiff::op::gaussian_blur<float> blur(half_size);
  const batch<float>& x = input();
  batch<float> y(x.shape());
  blur.apply(s, x, y);  // plan built and cached here, workspaces grown
  for (auto _ : state) {
    blur.apply(s, x, y);
    benchmark::DoNotOptimize(y.data());
  }
  finish(state, y, s);
  state.SetLabel(blur.describe(s, side, side));
}

void bm_softdiff_first_call(benchmark::State& state, double s) {
  const batch<float>& x = input();
  batch<float> y(x.shape());
  for (auto _ : state) {
    const softdiff::op::gaussian_blur<float> blur(half_size);
    blur.apply(s, x, y);
    benchmark::DoNotOptimize(y.data());
  }
  finish(state, y, s);
}

void bm_batched_gemm(benchmark::State& state, double s) {
  const std::vector<float> b = blur_matrix(s);
  const batch<float>& x = input();
  batch<float> y(x.shape());
  const float* bp = b.data();
  for (auto _ : state) {
    const float* xp = x.data();
    float* yp = y.data();
#pragma omp parallel
    {
      std::vector<float> z(area);  // the intermediate plane stays in L1
#pragma omp for schedule(static)
      for (std::int64_t p = 0; p < std::int64_t(planes); ++p) {
        const std::ptrdiff_t o = p * std::ptrdiff_t(area);
        // Z = X B^T, Y = B Z
        softdiff::backend::cpu::gemm<float>(false, true, side, side, side, 1.f, xp + o, side, bp, side, 0.f, z.data(), side);
        softdiff::backend::cpu::gemm<float>(false, false, side, side, side, 1.f, bp, side, z.data(), side, 0.f, yp + o, side);
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  finish(state, y, s);
}

void bm_eigen_gemm(benchmark::State& state, double s) {
  using mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const std::vector<float> bv = blur_matrix(s);
  const Eigen::Map<const mat> b(bv.data(), side, side);
  const batch<float>& x = input();
  batch<float> y(x.shape());
  for (auto _ : state) {
#pragma omp parallel
    {
      mat z(side, side);  // the intermediate plane stays in L1
#pragma omp for schedule(static)
      for (std::int64_t p = 0; p < std::int64_t(planes); ++p) {
        const std::ptrdiff_t o = p * std::ptrdiff_t(area);
        Eigen::Map<const mat> xm(x.data() + o, side, side);
        Eigen::Map<mat> ym(y.data() + o, side, side);
        z.noalias() = xm * b.transpose();
        ym.noalias() = b * z;
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  finish(state, y, s);
}

#ifdef SOFTDIFF_HAVE_OPENCV
void bm_opencv(benchmark::State& state, double s) {
  const std::vector<float> g = kernel_taps(s);
  const cv::Mat k(1, taps, CV_32F, const_cast<float*>(g.data()));
  const batch<float>& x = input();
  batch<float> y(x.shape());
  cv::setNumThreads(1);  // parallel over planes instead
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (std::int64_t p = 0; p < std::int64_t(planes); ++p) {
      const std::ptrdiff_t o = p * std::ptrdiff_t(area);
      const cv::Mat src(side, side, CV_32F, const_cast<float*>(x.data() + o));
      cv::Mat dst(side, side, CV_32F, y.data() + o);
      cv::sepFilter2D(src, dst, CV_32F, k, k, cv::Point(-1, -1), 0, cv::BORDER_CONSTANT);
    }
    benchmark::DoNotOptimize(y.data());
  }
  finish(state, y, s);
}
#endif

void bm_plain_separable(benchmark::State& state, double s) {
  const std::vector<float> g = kernel_taps(s);
  const batch<float>& x = input();
  batch<float> y(x.shape());
  constexpr int padded = side + 2 * half_size;
  for (auto _ : state) {
#pragma omp parallel
    {
      std::vector<float> row(padded, 0.f), tmp(std::size_t(padded) * side, 0.f);
#pragma omp for schedule(static)
      for (std::int64_t p = 0; p < std::int64_t(planes); ++p) {
        const float* xp = x.data() + p * std::ptrdiff_t(area);
        float* yp = y.data() + p * std::ptrdiff_t(area);
        for (int i = 0; i < side; ++i) {  // along W into the zero-padded rows of tmp
          std::copy(xp + i * side, xp + (i + 1) * side, row.begin() + half_size);
          float* t = tmp.data() + std::size_t(i + half_size) * side;
          for (int j = 0; j < side; ++j) {
            float acc = 0;
            for (int k = 0; k < taps; ++k) acc += g[k] * row[j + k];
            t[j] = acc;
          }
        }
        for (int i = 0; i < side; ++i) {  // along H
          float* out = yp + i * side;
          std::fill(out, out + side, 0.f);
          for (int k = 0; k < taps; ++k) {
            const float* t = tmp.data() + std::size_t(i + k) * side;
            for (int j = 0; j < side; ++j) out[j] += g[k] * t[j];
          }
        }
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  finish(state, y, s);
}

}  // namespace

int main(int argc, char** argv) {
  for (double s : {0.5, 3.0, 10.0, 23.0}) {
    char tag[32];
    std::snprintf(tag, sizeof tag, "/std:%g", s);
    const std::string t = tag;
    benchmark::RegisterBenchmark(("blur/softdiff" + t).c_str(), bm_softdiff, s)->UseRealTime()->MeasureProcessCPUTime();
    benchmark::RegisterBenchmark(("blur/batched_gemm_direct" + t).c_str(), bm_batched_gemm, s)->UseRealTime()->MeasureProcessCPUTime();
    benchmark::RegisterBenchmark(("blur/eigen_gemm_direct" + t).c_str(), bm_eigen_gemm, s)->UseRealTime()->MeasureProcessCPUTime();
#ifdef SOFTDIFF_HAVE_OPENCV
    benchmark::RegisterBenchmark(("blur/opencv_sepFilter2D" + t).c_str(), bm_opencv, s)->UseRealTime()->MeasureProcessCPUTime();
#endif
    benchmark::RegisterBenchmark(("blur/plain_separable" + t).c_str(), bm_plain_separable, s)->UseRealTime()->MeasureProcessCPUTime();
    benchmark::RegisterBenchmark(("blur/softdiff_first_call" + t).c_str(), bm_softdiff_first_call, s)->UseRealTime()->MeasureProcessCPUTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
