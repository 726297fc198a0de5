// The final distribution p_1 (appendix D): the fit (per-channel mean and variance of the
// image-mean colours), the draw (C_1 applied to a constant colour image, plus sigma_1 eta),
// its colour statistics, and bad-input errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/final_distribution.hpp"

using namespace softdiff;

namespace {

batch<double> colour_data() {
  // 4 images, 3 channels, 2 x 3 pixels; image i channel c has mean colour 0.1 i + 0.3 c (plus a zero-mean pattern)
  batch<double> d({4, 3, 2, 3});
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t p = 0; p < 6; ++p)
        d.data()[(i * 3 + c) * 6 + p] = 0.1 * i + 0.3 * c + (p % 2 == 0 ? 0.05 : -0.05) * (c + 1.0);
  return d;
}

}  // namespace

TEST_CASE("fit: per-channel mean and variance of the image-mean colours", "[final_distribution]") {
  sampler::final_distribution<double> fd(colour_data());
  REQUIRE(fd.fitted());
  CHECK(fd.channels() == 3);
  CHECK(fd.height() == 2);
  CHECK(fd.width() == 3);
  for (std::size_t c = 0; c < 3; ++c) {
    CHECK(fd.mean()[c] == Approx(0.15 + 0.3 * c).epsilon(1e-12));
    CHECK(fd.variance()[c] == Approx(0.0125).epsilon(1e-10));  // population variance of {0, .1, .2, .3}
  }
}

TEST_CASE("sample: C_1 applied to a constant colour image, plus sigma_1 eta", "[final_distribution]") {
  const sampler::final_distribution<double> fd(colour_data());
  const noise_source noise{4, stream_for(stream_purpose::initial, 0)};
  batch<double> flat, blurred;
  fd.sample(op::identity<double>{}, 0.0, 0.0, 5, noise, flat);  // the colour images themselves
  REQUIRE(shape_of(flat) == shape4{5, 3, 2, 3});
  for (std::size_t k = 0; k < 15; ++k)
    for (std::size_t p = 1; p < 6; ++p) CHECK(flat.data()[k * 6 + p] == flat.data()[k * 6]);
  const op::dct_blur<double> blur;
  fd.sample(blur, 1.5, 0.2, 5, noise, blurred);
  batch<double> want, eta(flat.shape());
  blur.apply(1.5, flat, want);
  noise.fill(eta);
  want += 0.2 * eta;
  CHECK(xt::allclose(blurred, want, 1e-13, 1e-13));
}

TEST_CASE("sampled colours follow N(mean, variance) per channel", "[final_distribution]") {
  const sampler::final_distribution<double> fd(1, 1, {0.4, -0.2}, {0.04, 0.25});
  const std::size_t n = 20000;
  batch<double> x;
  fd.sample(op::identity<double>{}, 0.0, 0.0, n, noise_source{9, 1}, x);
  for (std::size_t c = 0; c < 2; ++c) {
    double m = 0, v = 0;
    for (std::size_t i = 0; i < n; ++i) m += x.data()[i * 2 + c] / n;
    for (std::size_t i = 0; i < n; ++i) v += (x.data()[i * 2 + c] - m) * (x.data()[i * 2 + c] - m) / n;
    // 5 standard errors: sd(mean) = sqrt(var / n), sd(var) ~ var sqrt(2 / n)
    CHECK(std::abs(m - fd.mean()[c]) < 5 * std::sqrt(fd.variance()[c] / n));
    CHECK(std::abs(v - fd.variance()[c]) < 5 * fd.variance()[c] * std::sqrt(2.0 / n));
  }
}

TEST_CASE("final_distribution: bad input throws with the reason", "[final_distribution]") {
  sampler::final_distribution<float> fd;
  batch<float> out;
  CHECK_THROWS_WITH(fd.sample(op::identity<float>{}, 0.0, 0.1, 2, noise_source{}, out), Catch::Contains("not fitted"));
  CHECK_THROWS_WITH(fd.fit(batch<float>({0, 3, 4, 4})), Catch::Contains("empty dataset"));
  batch<float> nan_data({2, 1, 2, 2}, 0.5f);
  nan_data(1, 0, 1, 1) = std::nanf("");
  CHECK_THROWS_WITH(fd.fit(nan_data), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(sampler::final_distribution<float>(2, 2, {0.1}, {0.1, 0.2}), Catch::Contains("variances"));
  CHECK_THROWS_WITH(sampler::final_distribution<float>(2, 2, {0.1}, {-1.0}), Catch::Contains("variance >= 0"));
  CHECK_THROWS_WITH(sampler::final_distribution<float>(0, 2, {0.1}, {0.1}), Catch::Contains("H = 0"));
  const sampler::final_distribution<float> ok(2, 2, {0.1}, {0.1});
  CHECK_THROWS_WITH(ok.sample(op::identity<float>{}, -1.0, 0.1, 2, noise_source{}, out),
                    Catch::Contains("outside the range"));
  CHECK_THROWS_WITH(ok.sample(op::identity<float>{}, 0.0, -0.1, 2, noise_source{}, out), Catch::Contains("sigma_1"));
  CHECK_THROWS_WITH(ok.sample(op::identity<float>{}, 0.0, 0.1, 0, noise_source{}, out), Catch::Contains("count"));
}
