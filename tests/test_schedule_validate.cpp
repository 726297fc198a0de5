// validate_schedule: every shipped schedule passes with its operator, and each kind of
// bad schedule fails with a message that says which check failed and where.
#include <catch2/catch.hpp>

#include <limits>
#include <string>

#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/schedule/validate.hpp"
#include "softdiff/schedule/ve.hpp"
#include "softdiff/schedule/vp.hpp"

using namespace softdiff;
using Catch::Contains;

namespace {
// level(t) = level_at_zero + slope t; sigma(t) given by a plain function pointer
struct custom_schedule {
  double (*sigma_fn)(double);
  double level_at_zero = 0.0;
  double slope = 0.5;
  double level(double t) const { return level_at_zero + slope * t; }
  double sigma(double t) const { return sigma_fn(t); }
  std::string name() const { return "custom"; }
};
static_assert(Schedule<custom_schedule>);

double good_sigma(double t) { return t; }
double decreasing_after_half(double t) { return t <= 0.5 ? t : 0.5 - 0.5 * (t - 0.5); }
double zero_until_quarter(double t) { return t < 0.25 ? 0.0 : t; }
double infinite_at_end(double t) { return t == 1.0 ? std::numeric_limits<double>::infinity() : t; }
double nan_in_middle(double t) { return t == 0.5 ? std::numeric_limits<double>::quiet_NaN() : t; }
}  // namespace

TEST_CASE("validate_schedule accepts the shipped schedules with their operators", "[schedule][validate]") {
  CHECK_NOTHROW(schedule::validate_schedule(custom_schedule{good_sigma}, op::scale<float>{}));
  CHECK_NOTHROW(schedule::validate_schedule(schedule::ve_geometric{}, op::identity<double>{}));
  CHECK_NOTHROW(schedule::validate_schedule(schedule::vp{}, op::scale<float>{}));
  CHECK_NOTHROW(schedule::validate_schedule(schedule::sub_vp{}, op::scale<float>{}));
  CHECK_NOTHROW(schedule::validate_schedule(schedule::two_stage{}, op::identity<float>{}));
  CHECK_NOTHROW(schedule::validate_schedule(schedule::tabulated::from(schedule::vp{}, 33), op::scale<float>{}));
}

TEST_CASE("validate_schedule: noise decreasing", "[schedule][validate][errors]") {
  CHECK_THROWS_WITH(schedule::validate_schedule(custom_schedule{decreasing_after_half}, op::scale<float>{}, 5),
                    Contains("noise decreasing at t = 0.75") && Contains("custom") && Contains("scale"));
  // also when it comes from a table
  const schedule::tabulated table({0.0, 0.5, 1.0}, {0.0, 0.1, 0.2}, {0.0, 0.3, 0.2});
  CHECK_THROWS_WITH(schedule::validate_schedule(table, op::scale<float>{}, 5),
                    Contains("noise decreasing at t = 0.75") && Contains("tabulated"));
}

TEST_CASE("validate_schedule: sigma_t = 0 for t > 0", "[schedule][validate][errors]") {
  CHECK_THROWS_WITH(schedule::validate_schedule(custom_schedule{zero_until_quarter}, op::scale<float>{}, 9),
                    Contains("sigma_t = 0 at t = 0.125 > 0"));
}

TEST_CASE("validate_schedule: sigma not finite", "[schedule][validate][errors]") {
  CHECK_THROWS_WITH(schedule::validate_schedule(custom_schedule{infinite_at_end}, op::scale<float>{}),
                    Contains("sigma_t = inf at t = 1 is not finite"));
  CHECK_THROWS_WITH(schedule::validate_schedule(custom_schedule{nan_in_middle}, op::scale<float>{}, 3),
                    Contains("at t = 0.5 is not finite"));
}

TEST_CASE("validate_schedule: level outside the operator's range", "[schedule][validate][errors]") {
  // the default two-stage blur reaches level 23, outside the scale operator's [0, 1]
  CHECK_THROWS_WITH(schedule::validate_schedule(schedule::two_stage{}, op::scale<float>{}),
                    Contains("outside operator range [0, 1]") && Contains("two_stage"));
  custom_schedule steep{good_sigma};
  steep.slope = 2.0;
  CHECK_THROWS_WITH(schedule::validate_schedule(steep, op::scale<float>{}, 5),
                    Contains("level 1.5 at t = 0.75 outside operator range"));
}

TEST_CASE("validate_schedule: level(0) must be the identity", "[schedule][validate][errors]") {
  custom_schedule shifted{good_sigma};
  shifted.level_at_zero = 0.1;
  shifted.slope = 0.1;
  CHECK_THROWS_WITH(schedule::validate_schedule(shifted, op::scale<float>{}),
                    Contains("level(0) = 0.1 is not the identity level 0"));
}

TEST_CASE("validate_schedule: too few points", "[schedule][validate][errors]") {
  CHECK_THROWS_WITH(schedule::validate_schedule(schedule::vp{}, op::scale<float>{}, 1), Contains("points = 1"));
}
