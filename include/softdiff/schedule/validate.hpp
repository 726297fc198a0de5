#pragma once
// validate_schedule: checks a schedule against the forward process
//   x_t = C_t x_0 + sigma_t eta,  C_0 = I, sigma_0 = 0
// on a uniform grid of t in [0, 1], for a given operator family. The reverse samplers
// (Algorithm 2: z = x_t - ((s'^2 - s^2) / s^2) e + sqrt(s^2 - s'^2) eta) divide by sigma_t and
// take sqrt(sigma_t^2 - sigma_t'^2), so sigma must be finite, positive for t > 0 and
// non-decreasing; C_t must be a member of the family (level inside the operator's range) and
// C_0 the identity (level(0) = op.min_level()).
#include <cmath>
#include <string>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"

namespace softdiff::schedule {

/// Throws softdiff::error naming the first failed check and the time where it failed.
template <Schedule S, CorruptionOperator Op>
void validate_schedule(const S& s, const Op& op, int points = 1025) {
  const std::string where = "validate_schedule(" + std::string(s.name()) + ", " + std::string(op.name()) + ")";
  auto require = [&](bool ok, auto&&... parts) {
    if (!ok) throw error(where + ": " + softdiff::detail::concat(parts...));
  };
  require(points >= 2, "points = ", points, " must be >= 2");
  const double lo = op.min_level(), hi = op.max_level();
  const double level0 = static_cast<double>(s.level(0.0));
  require(level0 == lo, "level(0) = ", level0, " is not the identity level ", lo, " of the operator (C_0 = I)");
  double previous_sigma = 0.0;
  for (int k = 0; k < points; ++k) {
    const double t = static_cast<double>(k) / static_cast<double>(points - 1);
    const double sigma = static_cast<double>(s.sigma(t));
    const double level = static_cast<double>(s.level(t));
    require(std::isfinite(sigma), "sigma_t = ", sigma, " at t = ", t, " is not finite");
    require(std::isfinite(level), "level ", level, " at t = ", t, " is not finite");
    require(sigma >= 0.0, "sigma_t = ", sigma, " at t = ", t, " is negative");
    if (k > 0) {
      require(sigma >= previous_sigma, "noise decreasing at t = ", t, ": sigma_t = ", sigma, " < ", previous_sigma,
              " at the previous grid point");
      require(sigma > 0.0, "sigma_t = 0 at t = ", t, " > 0");
    }
    require(level >= lo && level <= hi, "level ", level, " at t = ", t, " outside operator range [", lo, ", ", hi,
            "]");
    previous_sigma = sigma;
  }
}

}  // namespace softdiff::schedule
