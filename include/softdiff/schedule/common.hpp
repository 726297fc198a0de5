#pragma once
// Checks shared by the schedules of softdiff::schedule: times lie in [0, 1] and
// constructor parameters are finite and in range, each failure naming the schedule
// and the parameter.
#include <cmath>

#include "softdiff/error.hpp"

namespace softdiff::schedule::detail {

/// Throws unless t is a finite time in [0, 1].
inline void check_time(double t, const char* schedule) {
  softdiff::detail::require(std::isfinite(t) && t >= 0.0 && t <= 1.0, schedule, ": time t = ", t,
                            " is outside [0, 1]");
}

/// Throws naming `schedule` and `parameter` unless `value` is finite and `ok`.
inline void check_parameter(bool ok, double value, const char* schedule, const char* parameter,
                            const char* expected) {
  softdiff::detail::require(std::isfinite(value) && ok, schedule, ": parameter ", parameter, " = ", value,
                            " is invalid (expected ", expected, ")");
}

}  // namespace softdiff::schedule::detail
