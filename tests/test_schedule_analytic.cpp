// Closed-form schedules: VE geometric, VP, sub-VP and the two-stage noise-then-blur
// schedule, against their formulas, an independent quadrature of beta, and the
// validation of their parameters.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/schedule/validate.hpp"
#include "softdiff/schedule/ve.hpp"
#include "softdiff/schedule/vp.hpp"

using namespace softdiff;
using Catch::Contains;

namespace {
// integral_0^t beta(s) ds by composite Simpson, independent of the closed form in vp.hpp
double beta_integral_simpson(double beta_min, double beta_max, double t) {
  const int n = 1000;
  const double h = t / n;
  auto beta = [&](double s) { return beta_min + s * (beta_max - beta_min); };
  double sum = beta(0) + beta(t);
  for (int i = 1; i < n; ++i) sum += (i % 2 ? 4.0 : 2.0) * beta(i * h);
  return sum * h / 3.0;
}
const double nan_value = std::numeric_limits<double>::quiet_NaN();
}  // namespace

TEST_CASE("ve_geometric: sigma_0 = 0, geometric in t, identity operator", "[schedule]") {
  const schedule::ve_geometric s;  // sigma from 0.01 to 50
  CHECK(s.sigma(0.0) == 0.0);
  CHECK(s.level(0.0) == 0.0);
  CHECK(s.sigma(1.0) == 50.0);
  CHECK(s.sigma(0.5) == Approx(0.01 * std::sqrt(5000.0)).epsilon(1e-14));
  CHECK(s.sigma(1e-9) == Approx(0.01).epsilon(1e-7));
  for (double t : {0.1, 0.37, 0.9}) {
    CHECK(s.level(t) == 0.0);
    CHECK(s.sigma(t) == Approx(0.01 * std::pow(5000.0, t)).epsilon(1e-13));
  }
  CHECK(s.name() == "ve_geometric");
  CHECK_NOTHROW(schedule::validate_schedule(s, op::identity<float>{}));

  const schedule::ve_geometric custom(0.002, 80.0);
  CHECK(custom.sigma(0.25) == Approx(0.002 * std::pow(40000.0, 0.25)).epsilon(1e-13));
}

TEST_CASE("ve_geometric: bad parameters and times name what is wrong", "[schedule][errors]") {
  CHECK_THROWS_WITH(schedule::ve_geometric(0.0, 50.0), Contains("sigma_min") && Contains("ve_geometric"));
  CHECK_THROWS_WITH(schedule::ve_geometric(-1.0, 50.0), Contains("sigma_min"));
  CHECK_THROWS_WITH(schedule::ve_geometric(nan_value, 50.0), Contains("sigma_min"));
  CHECK_THROWS_WITH(schedule::ve_geometric(0.1, 0.05), Contains("sigma_max"));
  CHECK_THROWS_WITH(schedule::ve_geometric(0.1, std::numeric_limits<double>::infinity()), Contains("sigma_max"));
  const schedule::ve_geometric s;
  CHECK_THROWS_WITH(s.sigma(1.5), Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(s.level(-0.1), Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(s.sigma(nan_value), Contains("outside [0, 1]"));
}

TEST_CASE("vp: alpha_t = exp(-1/2 int beta), level = 1 - alpha, sigma = sqrt(1 - alpha^2)", "[schedule]") {
  const schedule::vp s;  // beta from 0.1 to 20
  CHECK(s.level(0.0) == 0.0);
  CHECK(s.sigma(0.0) == 0.0);
  for (double t : {1e-6, 0.01, 0.3, 0.5, 0.77, 1.0}) {
    const double b = beta_integral_simpson(0.1, 20.0, t);
    const double alpha = std::exp(-0.5 * b);
    CHECK(s.alpha(t) == Approx(alpha).epsilon(1e-12));
    CHECK(s.level(t) == Approx(1.0 - alpha).epsilon(1e-9));
    CHECK(s.sigma(t) == Approx(std::sqrt(1.0 - alpha * alpha)).epsilon(1e-9));
    // variance preserving: alpha^2 + sigma^2 = 1
    CHECK(s.alpha(t) * s.alpha(t) + s.sigma(t) * s.sigma(t) == Approx(1.0).epsilon(1e-14));
    CHECK(s.sigma(t) > 0.0);
  }
  // small t: sigma^2 ~ beta_min t, kept accurate by expm1
  CHECK(s.sigma(1e-10) == Approx(std::sqrt(0.1 * 1e-10)).epsilon(1e-6));
  CHECK(s.name() == "vp");
  CHECK_NOTHROW(schedule::validate_schedule(s, op::scale<float>{}));
  CHECK_NOTHROW(schedule::validate_schedule(s, op::scale<double>{}, 4097));
}

TEST_CASE("sub_vp: sigma = 1 - alpha^2, never above VP's sigma", "[schedule]") {
  const schedule::sub_vp s(0.1, 20.0);
  const schedule::vp v(0.1, 20.0);
  CHECK(s.sigma(0.0) == 0.0);
  CHECK(s.level(0.0) == 0.0);
  for (double t : {1e-6, 0.2, 0.5, 1.0}) {
    // 1 - alpha and 1 - alpha^2 written with expm1: the plain differences lose about 1e-9 of
    // their relative accuracy to cancellation at t = 1e-6, as much as the tolerance.
    const double b = beta_integral_simpson(0.1, 20.0, t);
    CHECK(s.level(t) == Approx(-std::expm1(-0.5 * b)).epsilon(1e-9));
    CHECK(s.level(t) == v.level(t));
    CHECK(s.sigma(t) == Approx(-std::expm1(-b)).epsilon(1e-9));
    CHECK(s.sigma(t) <= v.sigma(t));
    CHECK(s.sigma(t) == Approx(v.sigma(t) * v.sigma(t)).epsilon(1e-13));
  }
  CHECK(s.name() == "sub_vp");
  CHECK_NOTHROW(schedule::validate_schedule(s, op::scale<float>{}));
}

TEST_CASE("vp and sub_vp: bad beta parameters are named", "[schedule][errors]") {
  CHECK_THROWS_WITH(schedule::vp(-0.1, 20.0), Contains("beta_min") && Contains("vp"));
  CHECK_THROWS_WITH(schedule::vp(0.1, 0.05), Contains("beta_max"));
  CHECK_THROWS_WITH(schedule::vp(0.0, 0.0), Contains("beta_max"));
  CHECK_THROWS_WITH(schedule::sub_vp(nan_value, 20.0), Contains("beta_min") && Contains("sub_vp"));
  CHECK_THROWS_WITH(schedule::sub_vp(0.1, nan_value), Contains("beta_max"));
  CHECK_NOTHROW(schedule::vp(0.0, 5.0));  // beta_min = 0 still gives sigma_t > 0 for t > 0
  CHECK_THROWS_WITH(schedule::vp{}.alpha(2.0), Contains("outside [0, 1]"));
}

TEST_CASE("two_stage: geometric noise during the first fraction, then the blur grows", "[schedule]") {
  const schedule::two_stage s;  // sigma 0.01 -> 0.1 over t in (0, 0.2], blur 0.01 -> 23 after
  CHECK(s.sigma(0.0) == 0.0);
  CHECK(s.level(0.0) == 0.0);
  CHECK(s.sigma(0.1) == Approx(0.01 * std::sqrt(10.0)).epsilon(1e-13));
  CHECK(s.sigma(1e-12) == Approx(0.01).epsilon(1e-9));
  CHECK(s.sigma(0.2) == 0.1);
  CHECK(s.level(0.2) == 0.0);
  CHECK(s.level(0.1) == 0.0);
  for (double t : {0.2000001, 0.4, 0.6, 0.95, 1.0}) CHECK(s.sigma(t) == 0.1);
  CHECK(s.level(0.2 + 1e-12) == Approx(0.01).epsilon(1e-6));
  CHECK(s.level(0.6) == Approx(0.01 * std::sqrt(2300.0)).epsilon(1e-12));
  CHECK(s.level(1.0) == 23.0);
  CHECK(s.name() == "two_stage");
  CHECK_NOTHROW(schedule::validate_schedule(s, op::identity<float>{}));

  schedule::two_stage_parameters p;
  p.level_growth = schedule::growth::linear;
  p.level_min = 0.0;
  p.level_max = 0.9;
  p.noise_fraction = 0.1;
  const schedule::two_stage lin(p);
  CHECK(lin.level(0.55) == Approx(0.45).epsilon(1e-14));
  CHECK(lin.level(1.0) == 0.9);
  CHECK(lin.sigma(0.1) == 0.1);
  CHECK(lin.sigma(0.05) == Approx(0.01 * std::sqrt(10.0)).epsilon(1e-13));
  CHECK_NOTHROW(schedule::validate_schedule(lin, op::scale<float>{}));
}

TEST_CASE("two_stage, growing noise (appendix F.1): noise and blur grow together over (0, 1]", "[schedule]") {
  schedule::two_stage_parameters p;  // sigma 0.01 -> 0.1, blur 0.01 -> 23, both geometric in t
  p.noise = schedule::noise_mode::growing;
  const schedule::two_stage s(p);
  CHECK(s.sigma(0.0) == 0.0);
  CHECK(s.level(0.0) == 0.0);
  for (double t : {1e-9, 0.1, 0.2, 0.5, 0.9}) {
    CHECK(s.sigma(t) == Approx(0.01 * std::pow(10.0, t)).epsilon(1e-12));      // sigma_min (sigma_max / sigma_min)^t
    CHECK(s.level(t) == Approx(0.01 * std::pow(2300.0, t)).epsilon(1e-12));   // level_min (level_max / level_min)^t
  }
  CHECK(s.sigma(1.0) == 0.1);
  CHECK(s.level(1.0) == 23.0);
  CHECK(s.level(0.1) > 0.0);  // no noise-only stage: the blur has started at t = 0.1 (fixed mode: level 0 there)
  CHECK(schedule::two_stage().level(0.1) == 0.0);
  CHECK_NOTHROW(schedule::validate_schedule(s, op::identity<float>{}));

  p.level_growth = schedule::growth::linear;
  p.level_min = 0.0;
  p.level_max = 0.9;
  const schedule::two_stage lin(p);
  CHECK(lin.level(0.5) == Approx(0.45).epsilon(1e-14));
  CHECK(lin.sigma(0.5) == Approx(0.01 * std::sqrt(10.0)).epsilon(1e-13));
  CHECK_NOTHROW(schedule::validate_schedule(lin, op::scale<float>{}));

  // JSON: round trip, and a file without "noise_mode" (written before the ablation) reads as fixed
  nlohmann::json j = p;
  CHECK(j["noise_mode"] == "growing");
  CHECK(j["level_growth"] == "linear");
  const auto back = j.get<schedule::two_stage_parameters>();
  CHECK(back.noise == schedule::noise_mode::growing);
  CHECK(back.level_max == 0.9);
  j.erase("noise_mode");
  CHECK(j.get<schedule::two_stage_parameters>().noise == schedule::noise_mode::fixed);
  j["noise_mode"] = "wobbly";
  CHECK_THROWS_WITH(j.get<schedule::two_stage_parameters>(), Contains("unknown noise mode 'wobbly'"));
}

TEST_CASE("two_stage: bad parameters are named", "[schedule][errors]") {
  auto make = [](auto edit) {
    schedule::two_stage_parameters p;
    edit(p);
    return schedule::two_stage(p);
  };
  using P = schedule::two_stage_parameters;
  CHECK_THROWS_WITH(make([](P& p) { p.sigma_min = 0; }), Contains("sigma_min") && Contains("two_stage"));
  CHECK_THROWS_WITH(make([](P& p) { p.sigma_max = 0.001; }), Contains("sigma_max"));
  CHECK_THROWS_WITH(make([](P& p) { p.noise_fraction = 0; }), Contains("noise_fraction"));
  CHECK_THROWS_WITH(make([](P& p) { p.noise_fraction = 1; }), Contains("noise_fraction"));
  CHECK_THROWS_WITH(make([](P& p) { p.noise_fraction = nan_value; }), Contains("noise_fraction"));
  CHECK_THROWS_WITH(make([](P& p) { p.level_min = 0; }), Contains("level_min") && Contains("geometric"));
  CHECK_THROWS_WITH(make([](P& p) { p.level_max = 0.001; }), Contains("level_max"));
  CHECK_THROWS_WITH(make([](P& p) {
                      p.level_growth = schedule::growth::linear;
                      p.level_min = -1;
                    }),
                    Contains("level_min"));
}
