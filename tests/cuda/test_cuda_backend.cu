// backend::cuda against the CPU: the cases of tests/support/backend_cases.hpp (operators, sampler
// steps, GEMM, noise) with the CUDA backend, and what only the GPU has: the thin raw-pointer API
// on explicit streams, extended lambdas, and cuBLAS / cuFFT failures as softdiff::error.
// Registered with ctest only where a GPU is present (tests/cuda/CMakeLists.txt).
#include "softdiff/cuda_ops.cuh"

#define SOFTDIFF_TEST_BACKEND softdiff::backend::cuda
#define SOFTDIFF_TEST_TAG "[cuda]"
#if SOFTDIFF_TEST_EXACT_NOISE
#define SOFTDIFF_TEST_NOISE_ULP 0  // -fmad=false: the host arithmetic of this translation unit, bit for bit
#else
#define SOFTDIFF_TEST_NOISE_ULP 16
#endif
#include "support/backend_cases.hpp"
// SoftDiffusion<Op, Sched, Net, backend::cuda> against SoftDiffusion on the CPU: corrupt, the loss
// and its gradient, denoise, score and sampling with all five samplers on device batches (the
// same cases run on the host's emulated device in tests/test_backend_portable.cpp). In this
// translation unit, not one of its own: nvcc compiles the host side of both once.
#include "support/soft_diffusion_cases.hpp"

using namespace softdiff;
using backend::cuda;

TEST_CASE("cuda: parallel_for runs extended lambdas", "[cuda]") {
  const std::size_t n = 1000003;
  cuda_ops::device_buffer<float> d(n);
  float* p = d.data();
  cuda::parallel_for(n, [=] __device__(std::size_t i) { p[i] = static_cast<float>(i % 1000); });
  std::vector<float> h(n);
  d.download(h.data());
  for (std::size_t i = 0; i < n; i += 997) REQUIRE(h[i] == static_cast<float>(i % 1000));
}

TEST_CASE("cuda: the paper's blur through the thin API on a stream equals the CPU blur", "[cuda][op]") {
  const shape4 s{4, 3, 64, 64};
  const batch<float> x = testing::random_batch<float>(s, 21);
  const op::gaussian_blur<float> blur(80);
  backend::cuda_stream stream;
  auto dx = cuda_ops::to_device(x);
  cuda_ops::device_buffer<float> dy(x.size()), ws(x.size()), mats;
  for (double sd : {0.5, 3.0, 10.0, 23.0}) {
    const auto b = backend::detail::toeplitz_axis_matrix<float>(blur.kernel(sd), 64);
    mats.upload(b.data(), b.size());
    cuda_ops::gaussian_blur_apply(mats.data(), mats.data(), dx.data(), dy.data(), ws.data(), s, stream.get());
    stream.synchronize();
    batch<float> expected, got;
    blur.apply(sd, x, expected);
    cuda_ops::to_host(dy, s, got);
    INFO("blur std " << sd);
    CHECK(testing::backend_cases::relative_gap(got, expected) <= 2e-5);
  }
}

TEST_CASE("cuda: thin sampler updates on a stream equal the samplers' own updates", "[cuda][sampler]") {
  const std::size_t n = 3 * 64 * 64 + 3;  // not a multiple of a Philox block
  const batch<float> x = testing::random_batch<float>({1, 1, 1, n}, 1), y = testing::random_batch<float>({1, 1, 1, n}, 2),
                     c = testing::random_batch<float>({1, 1, 1, n}, 3);
  const noise_source noise{9, stream_for(stream_purpose::sampler, 1)};
  backend::cuda_stream stream;
  auto dx1 = cuda_ops::to_device(x), dx2 = cuda_ops::to_device(x), dy = cuda_ops::to_device(y),
       dc = cuda_ops::to_device(c);
  cuda_ops::momentum_update(dx1.data(), dy.data(), dc.data(), n, 0.8, 0.5, noise, stream.get());
  stream.synchronize();
  cuda_ops::momentum<float>::update(dx2.data(), dx2.data(), dy.data(), dc.data(), n, 0.8, 0.5, noise);
  batch<float> a, b;
  cuda_ops::to_host(dx1, {1, 1, 1, n}, a);
  cuda_ops::to_host(dx2, {1, 1, 1, n}, b);
  REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
  // eq. 17 by hand on the host, with the CPU noise
  std::vector<float> eta(n);
  backend::cpu::fill_normal<float>(noise.seed, noise.stream, eta.data(), n);
  const double sa = (0.5 * 0.5 - 0.8 * 0.8) / (0.8 * 0.8), sb = std::sqrt(0.8 * 0.8 - 0.5 * 0.5);
  for (std::size_t i = 0; i < n; ++i) {
    const double e = double(y.data()[i]) - x.data()[i];
    const double expected = x.data()[i] - sa * e + sb * eta[i] + (double(c.data()[i]) - y.data()[i]);
    REQUIRE(std::abs(a.data()[i] - expected) <= 1e-5 * (1 + std::abs(expected)));
  }
}

TEST_CASE("cuda: a whole sampling loop on device batches equals the CPU's", "[cuda][sampler]") {
  // the momentum sampler over a grid, on device batches through cuda_ops::device_model, against
  // the same sampler on the CPU with the backend model of backend::cpu
  const shape4 s{3, 1, 16, 12};
  const batch<float> x1 = testing::random_batch<float>(s, 7);
  const op::gaussian_blur<float> blur(8);
  namespace bc = testing::backend_cases;
  cuda_ops::device_model<op::gaussian_blur<float>, bc::test_schedule, bc::backend_denoiser> dev(blur, {}, {});
  sampler::backend_model<backend::cpu, op::gaussian_blur<float>, bc::test_schedule, bc::backend_denoiser_on<backend::cpu>>
      host(blur, {}, {});
  cuda_ops::momentum<float> dev_sampler;
  sampler::momentum<float> host_sampler;
  auto dx = cuda_ops::to_device_batch(x1);
  batch<float> hx = x1, got;
  const double grid[] = {1.0, 0.7, 0.4, 0.1, 0.0};
  for (int k = 0; k < 4; ++k) {
    const noise_source noise{3, stream_for(stream_purpose::sampler, k)};
    dev_sampler.step(dev, dx, grid[k], grid[k + 1], noise);
    host_sampler.step(host, hx, grid[k], grid[k + 1], noise);
  }
  cuda_ops::to_host(dx, got);
  CHECK(bc::relative_gap(got, hx) <= 1e-4);
}

TEST_CASE("cuda: host memory is refused and device memory accepted by the pointer checks", "[cuda]") {
  std::vector<float> host(16, 0.0f);
  cuda_ops::device_buffer<float> d(16);
  CHECK_NOTHROW(cuda::require_memory(d.data(), "f"));
  CHECK_THROWS_WITH(cuda_ops::mask_apply(op::mask<float>::removed(0.5, 4, 4), d.data(), host.data(), {1, 1, 4, 4},
                                         cudaStreamPerThread),
                    Catch::Contains("cuda_ops::mask_apply: expected device memory"));
}

TEST_CASE("cuda: cuBLAS and cuFFT failures become softdiff::error", "[cuda]") {
  cuda_ops::device_buffer<float> a(16), b(16), c(16);
  // lda = 1 < k = 4 is rejected by cuBLAS
  REQUIRE_THROWS_WITH(cuda::gemm<float>(false, false, 4, 4, 4, 1.0f, a.data(), 1, b.data(), 4, 0.0f, c.data(), 4),
                      Catch::Contains("cublasSgemm") && Catch::Contains("CUBLAS_STATUS_INVALID_VALUE"));
  backend::fft_engine<cuda, float> fft;
  REQUIRE_THROWS_WITH(fft.r2c(0, 4, 0, 4, 1, a.data(), b.data()), Catch::Contains("cufftPlanMany"));
}
