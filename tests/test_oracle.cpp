// The exact posterior-mean oracle: Tweedie's formula (eq. 16) against finite differences
// of its exact log-density, the normalisation of that density, the small- and large-noise
// limits, per-sample times, the level cache, and bad-input errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include <xtensor/xview.hpp>

#include "softdiff/nn/oracle.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/random.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/schedule/ve.hpp"
#include "softdiff/schedule/vp.hpp"

using namespace softdiff;

namespace {

// M distinct structured 1 x 8 x 8 images: products of low-frequency cosines, shifted per image.
template <class T>
batch<T> patterns(std::size_t M) {
  batch<T> d({M, 1, 8, 8});
  for (std::size_t i = 0; i < M; ++i)
    for (std::size_t r = 0; r < 8; ++r)
      for (std::size_t c = 0; c < 8; ++c)
        d(i, 0, r, c) = static_cast<T>(0.5 * std::cos(0.4 * (i % 3 + 1) * r + 0.3 * i) *
                                           std::sin(0.5 * (i / 3 + 1) * c + 0.2) +
                                       0.1 * static_cast<double>(i) - 0.2);
  return d;
}

schedule::two_stage blur_schedule() {
  schedule::two_stage_parameters p;
  p.sigma_min = 0.02;
  p.sigma_max = 0.4;
  p.level_min = 0.3;
  p.level_max = 2.0;
  return schedule::two_stage(p);
}

// Checks C_t E[x0 | x_t] = x_t + sigma_t^2 grad log q_t(x_t) (eq. 16) at a few points.
template <class Op, class Sched>
void check_tweedie(const Op& op, const Sched& sched, double t, double tol) {
  const batch<double> data = patterns<double>(6);
  nn::oracle<Op, Sched> oracle(op, sched, data);
  const double s = sched.sigma(t), level = sched.level(t);
  // points: a corrupted data point, and one halfway between two corrupted data points
  batch<double> cx;
  op.apply(level, data, cx);
  batch<double> x({2, 1, 8, 8}), eta({2, 1, 8, 8});
  noise_source{3, 4}.fill(eta);
  for (std::size_t j = 0; j < 64; ++j) {
    x.data()[j] = cx.data()[2 * 64 + j] + s * eta.data()[j];
    x.data()[64 + j] = 0.5 * (cx.data()[j] + cx.data()[64 + j]) + 0.3 * s * eta.data()[64 + j];
  }
  for (std::size_t n = 0; n < 2; ++n) {
    batch<double> xn = xt::view(x, xt::range(n, n + 1));
    batch<double> mean, c_mean;
    const std::vector<double> tt{t};
    oracle.posterior_mean(xn, tt, mean);
    op.apply(level, mean, c_mean);
    // central differences of log q_t, all 2 * 64 perturbed points in one batch
    const double delta = 1e-4;
    batch<double> probe({128, 1, 8, 8});
    for (std::size_t j = 0; j < 64; ++j)
      for (std::size_t k = 0; k < 64; ++k) {
        probe.data()[j * 64 + k] = xn.data()[k] + (j == k ? delta : 0.0);
        probe.data()[(64 + j) * 64 + k] = xn.data()[k] - (j == k ? delta : 0.0);
      }
    const std::vector<double> lq = oracle.log_density(probe, t);
    double worst = 0, scale = 0;
    for (std::size_t j = 0; j < 64; ++j) {
      const double grad = (lq[j] - lq[64 + j]) / (2 * delta);
      const double rhs = xn.data()[j] + s * s * grad;
      worst = std::max(worst, std::abs(c_mean.data()[j] - rhs));
      scale = std::max(scale, std::abs(c_mean.data()[j] - xn.data()[j]));
    }
    CHECK(scale > 1e-3);  // the score term is not negligible
    CHECK(worst < tol);
  }
}

}  // namespace

TEST_CASE("Tweedie (eq. 16): C_t E[x0|x_t] = x_t + sigma_t^2 grad log q_t(x_t)", "[oracle]") {
  check_tweedie(op::identity<double>{}, schedule::ve_geometric(0.01, 1.0), 0.8, 1e-7);
  check_tweedie(op::scale<double>{}, schedule::vp(0.1, 20.0), 0.3, 1e-7);
  check_tweedie(op::dct_blur<double>{}, blur_schedule(), 0.7, 1e-7);  // blur level 1.1, sigma 0.4
  check_tweedie(op::dct_blur<double>{}, blur_schedule(), 0.1, 1e-7);  // noise stage
}

TEST_CASE("log_density integrates to 1 (1-pixel images)", "[oracle]") {
  batch<double> data({3, 1, 1, 1});
  data.data()[0] = -0.7;
  data.data()[1] = 0.2;
  data.data()[2] = 0.9;
  nn::oracle oracle(op::scale<double>{}, schedule::vp(0.1, 20.0), data);
  const double t = 0.2;
  const std::size_t n = 4001;
  batch<double> x({n, 1, 1, 1});
  const double lo = -6.0, hi = 6.0, dx = (hi - lo) / static_cast<double>(n - 1);
  for (std::size_t k = 0; k < n; ++k) x.data()[k] = lo + dx * static_cast<double>(k);
  const std::vector<double> lq = oracle.log_density(x, t);
  double integral = 0;
  for (std::size_t k = 0; k < n; ++k) integral += std::exp(lq[k]) * dx * (k == 0 || k + 1 == n ? 0.5 : 1.0);
  CHECK(integral == Approx(1.0).epsilon(1e-9));
}

TEST_CASE("posterior mean: the nearest point at small noise, the dataset mean at large noise", "[oracle]") {
  const batch<float> data = patterns<float>(6);
  nn::oracle oracle(op::identity<float>{}, schedule::ve_geometric(1e-3, 1e3), data);
  batch<float> x = xt::view(data, xt::range(4, 5)), phi;
  batch<float> eta({1, 1, 8, 8});
  noise_source{1, 1}.fill(eta);
  x += 1e-3f * eta;
  const std::vector<double> t0{0.0 + 1e-9};  // sigma ~ 1e-3
  oracle.predict(x, t0, phi);
  batch<float> h = phi + x;
  CHECK(xt::allclose(h, xt::view(data, xt::range(4, 5)), 1e-5, 1e-5));
  const std::vector<double> t1{1.0};  // sigma = 1000: weights equal
  oracle.predict(x, t1, phi);
  h = phi + x;
  batch<float> mean({1, 1, 8, 8}, 0.0f);
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 64; ++j) mean.data()[j] += data.data()[i * 64 + j] / 6.0f;
  CHECK(xt::allclose(h, mean, 1e-4, 1e-5));
}

TEST_CASE("per-sample times equal one call per sample, for any cache size", "[oracle]") {
  const batch<double> data = patterns<double>(5);
  nn::oracle big(op::dct_blur<double>{}, blur_schedule(), data, 8);
  nn::oracle tiny(op::dct_blur<double>{}, blur_schedule(), data, 1);
  batch<double> x({4, 1, 8, 8});
  noise_source{9, 9}.fill(x);
  x *= 0.3;
  const std::vector<double> t{0.9, 0.15, 0.9, 0.6};
  batch<double> phi_all, phi_tiny;
  big.predict(x, t, phi_all);
  tiny.predict(x, t, phi_tiny);
  CHECK(xt::allclose(phi_all, phi_tiny, 0.0, 0.0));
  for (std::size_t n = 0; n < 4; ++n) {
    batch<double> xn = xt::view(x, xt::range(n, n + 1)), phi_n;
    const std::vector<double> tn{t[n]};
    tiny.predict(xn, tn, phi_n);
    batch<double> want = xt::view(phi_all, xt::range(n, n + 1));
    CHECK(xt::allclose(phi_n, want, 0.0, 0.0));
  }
}

TEST_CASE("oracle: bad input throws with the reason", "[oracle]") {
  const batch<float> data = patterns<float>(4);
  nn::oracle oracle(op::identity<float>{}, schedule::ve_geometric(0.01, 1.0), data);
  batch<float> x({2, 1, 8, 8}, 0.0f), phi;
  const std::vector<double> t2{0.5, 0.5}, t1{0.5}, tz{0.5, 0.0}, tbad{0.5, 1.5};
  CHECK_THROWS_WITH(oracle.predict(x, t1, phi), Catch::Contains("1 times for a batch of 2"));
  CHECK_THROWS_WITH(oracle.predict(x, tz, phi), Catch::Contains("sigma_t > 0"));
  CHECK_THROWS_WITH(oracle.predict(x, tbad, phi), Catch::Contains("outside [0, 1]"));
  batch<float> wrong({2, 1, 8, 7}, 0.0f);
  CHECK_THROWS_WITH(oracle.predict(wrong, t2, phi), Catch::Contains("does not match the dataset"));
  x(1, 0, 3, 3) = std::nanf("");
  CHECK_THROWS_WITH(oracle.predict(x, t2, phi), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(oracle.log_density(x, 0.5), Catch::Contains("non-finite"));
  batch<float> empty({0, 1, 8, 8});
  CHECK_THROWS_WITH(nn::oracle(op::identity<float>{}, schedule::ve_geometric(), empty),
                    Catch::Contains("empty dataset"));
  batch<float> nan_data = data;
  nan_data(2, 0, 0, 0) = std::nanf("");
  CHECK_THROWS_WITH(nn::oracle(op::identity<float>{}, schedule::ve_geometric(), nan_data),
                    Catch::Contains("dataset") && Catch::Contains("non-finite"));
}
