// nn::callable_denoiser: a user's callable as a Denoiser, in the batch and the pointer form,
// predicting phi or x_0; sampling through SoftDiffusion with the adapter equals sampling with the
// wrapped model; shapes, times and bad outputs are checked.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "softdiff/nn/adapters.hpp"
#include "softdiff/nn/oracle.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/soft_diffusion.hpp"

using namespace softdiff;

namespace {

schedule::two_stage small_blur() {
  schedule::two_stage_parameters p;
  p.sigma_min = 0.02;
  p.sigma_max = 0.2;
  p.level_min = 0.3;
  p.level_max = 3.0;
  return schedule::two_stage(p);
}

template <class T>
batch<T> random_images(std::size_t n, std::uint64_t seed) {
  batch<T> x({n, 1, 6, 6});
  noise_source{seed, 1}.fill(x);
  return x;
}

using oracle_type = nn::oracle<op::dct_blur<double>, schedule::two_stage>;

}  // namespace

TEST_CASE("callable_denoiser: the batch form predicting phi is the wrapped model", "[nn][adapters]") {
  oracle_type oracle(op::dct_blur<double>{}, small_blur(), random_images<double>(5, 7));
  auto wrapped = nn::make_denoiser<double>(
      [&oracle](const batch<double>& x, std::span<const double> t, batch<double>& out) { oracle.predict(x, t, out); });
  static_assert(Denoiser<decltype(wrapped)>);
  CHECK(wrapped.predicts() == nn::prediction::residual);

  // the same samples, bit for bit, through SoftDiffusion
  SoftDiffusion direct(op::dct_blur<double>{}, small_blur(), oracle);
  SoftDiffusion adapted(op::dct_blur<double>{}, small_blur(), wrapped);
  direct.fit_final_distribution(oracle.data());
  adapted.fit_final_distribution(oracle.data());
  const batch<double> a = direct.sample<sampler::momentum<double>>(4, 6, 21);
  const batch<double> b = adapted.sample<sampler::momentum<double>>(4, 6, 21);
  REQUIRE(shape_of(a) == shape4{4, 1, 6, 6});
  CHECK(xt::allclose(a, b, 0.0, 0.0));
}

TEST_CASE("callable_denoiser: a model predicting x0 gives phi = x0_hat - x_t", "[nn][adapters]") {
  oracle_type oracle(op::dct_blur<double>{}, small_blur(), random_images<double>(5, 8));
  // the clean-image parametrisation of the same model: x0_hat = phi + x_t
  auto clean = nn::make_denoiser<double>(
      [&oracle](const batch<double>& x, std::span<const double> t, batch<double>& out) {
        oracle.predict(x, t, out);
        out += x;
      },
      nn::prediction::clean, "x0 model");
  CHECK(clean.predicts() == nn::prediction::clean);
  CHECK(clean.name() == "x0 model");
  const batch<double> x = random_images<double>(3, 9);
  const std::vector<double> t{0.9, 0.5, 0.1};
  batch<double> want, got;
  oracle.predict(x, t, want);
  clean.predict(x, t, got);
  CHECK(xt::amax(xt::abs(want))() > 0.1);
  CHECK(xt::allclose(got, want, 1e-13, 1e-13));
}

TEST_CASE("callable_denoiser: the pointer form sees contiguous NCHW, the shape and one time per sample",
          "[nn][adapters]") {
  std::size_t calls = 0;
  // phi = -t_n * x for sample n, written through raw pointers
  auto f = [&calls](const float* x, const shape4& s, const double* t, float* out) {
    ++calls;
    const std::size_t per = s[1] * s[2] * s[3];
    for (std::size_t n = 0; n < s[0]; ++n)
      for (std::size_t j = 0; j < per; ++j) out[n * per + j] = static_cast<float>(-t[n]) * x[n * per + j];
  };
  nn::callable_denoiser<float, decltype(f)> net(f);
  static_assert(Denoiser<decltype(net)>);
  batch<float> x({2, 3, 4, 5});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = 0.01f * static_cast<float>(i) - 0.5f;
  const std::vector<double> t{0.25, 0.75};
  batch<float> phi({1, 1, 1, 1});  // resized by the adapter
  net.predict(x, t, phi);
  CHECK(calls == 1);
  REQUIRE(shape_of(phi) == shape_of(x));
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t j = 0; j < 60; ++j) CHECK(phi.data()[n * 60 + j] == -static_cast<float>(t[n]) * x.data()[n * 60 + j]);

  // the same callable predicting x0: phi = -t x - x
  nn::callable_denoiser<float, decltype(f)> clean(f, nn::prediction::clean);
  batch<float> phi2;
  clean.predict(x, t, phi2);
  CHECK(phi2(1, 2, 3, 4) == -0.75f * x(1, 2, 3, 4) - x(1, 2, 3, 4));
}

TEST_CASE("callable_denoiser: bad calls and bad outputs throw with the reason", "[nn][adapters]") {
  using callable = void (*)(const batch<float>&, std::span<const double>, batch<float>&);
  static_assert(!nn::BatchDenoiserCallable<int, float> && !nn::PointerDenoiserCallable<int, float>);
  static_assert(nn::BatchDenoiserCallable<callable, float> && !nn::BatchDenoiserCallable<callable, double>);

  const batch<float> x = random_images<float>(3, 2);
  const std::vector<double> t3{0.2, 0.4, 0.6}, t2{0.2, 0.4};
  batch<float> out;
  auto reshaping = nn::make_denoiser<float>(
      [](const batch<float>&, std::span<const double>, batch<float>& o) { o.resize({3, 1, 6, 5}); }, nn::prediction::residual,
      "reshaper");
  CHECK_THROWS_WITH(reshaping.predict(x, t3, out),
                    Catch::Contains("reshaper") && Catch::Contains("[3, 1, 6, 5]") && Catch::Contains("[3, 1, 6, 6]"));
  auto identity = nn::make_denoiser<float>(
      [](const batch<float>& in, std::span<const double>, batch<float>& o) { o = in; });
  CHECK_THROWS_WITH(identity.predict(x, t2, out), Catch::Contains("2 times for a batch of 3"));
  batch<float> self = x;
  CHECK_THROWS_WITH(identity.predict(self, t3, self), Catch::Contains("must not alias"));
  auto nan_at_sample_2 = nn::make_denoiser<float>(
      [](const float*, const shape4& s, const double*, float* o) {
        for (std::size_t i = 0; i < s[0] * s[1] * s[2] * s[3]; ++i) o[i] = 0.0f;
        o[2 * 36 + 7] = std::numeric_limits<float>::quiet_NaN();
      },
      nn::prediction::clean, "nan model");
  CHECK_THROWS_WITH(nan_at_sample_2.predict(x, t3, out), Catch::Contains("nan model") &&
                                                              Catch::Contains("sample 2 at t = 0.6") &&
                                                              Catch::Contains("flat index 79"));
}
