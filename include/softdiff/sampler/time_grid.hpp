#pragma once
// Time grids for reverse sampling, 1 = t_0 > t_1 > ... > t_K, and the checks every
// sampler step shares.
//
// Final-step convention (every sampler in sampler/): when sigma_{t'} = 0 (t' = 0,
// where C_0 = I and sigma_0 = 0) the step returns h = phi(x_t, t) + x_t, the
// estimate of x_0, instead of evaluating its update rule. Each update rule would
// otherwise add terms that only vanish in expectation (e.g. the momentum sampler
// gives h + sigma_t eta at t' = 0).
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

/// steps + 1 equally spaced times from 1 down to 0: t_k = 1 - k / steps (t_steps = 0 exactly).
[[nodiscard]] inline std::vector<double> uniform_grid(std::size_t steps) {
  detail::require(steps >= 1, "sampler::uniform_grid: steps must be at least 1, got ", steps);
  std::vector<double> g(steps + 1);
  for (std::size_t k = 0; k <= steps; ++k)
    g[k] = static_cast<double>(steps - k) / static_cast<double>(steps);
  return g;
}

/// A user grid: at least two finite times, strictly decreasing, inside [0, 1], first time > 0.
/// The grid need not end at 0; sampling then returns x at the last time rather than an x_0 estimate.
inline void validate_grid(std::span<const double> grid) {
  detail::require(grid.size() >= 2, "sampler::validate_grid: a time grid needs at least 2 times, got ",
                  grid.size());
  for (std::size_t k = 0; k < grid.size(); ++k) {
    detail::require(std::isfinite(grid[k]), "sampler::validate_grid: time ", k, " is not finite (", grid[k], ")");
    detail::require(grid[k] >= 0.0 && grid[k] <= 1.0, "sampler::validate_grid: time ", k, " = ", grid[k],
                    " is outside [0, 1]");
    if (k > 0)
      detail::require(grid[k] < grid[k - 1], "sampler::validate_grid: times must be strictly decreasing, but t[",
                      k - 1, "] = ", grid[k - 1], " and t[", k, "] = ", grid[k]);
  }
  detail::require(grid[0] > 0.0, "sampler::validate_grid: the first time must be > 0, got ", grid[0]);
}

namespace detail {

/// The checks of one reverse step t -> t' (t' < t): finite times in [0, 1], sigma_t > 0,
/// 0 <= sigma_{t'} <= sigma_t (a Schedule's sigma is non-decreasing), x finite.
template <class T>
void check_step(const char* where, const batch<T>& x, double t, double t_next, double s, double s_next) {
  softdiff::detail::require(std::isfinite(t) && std::isfinite(t_next) && t <= 1.0 && t_next >= 0.0 && t_next < t,
                            where, ": a reverse step needs 0 <= t' < t <= 1, got t = ", t, ", t' = ", t_next);
  softdiff::detail::require(std::isfinite(s) && s > 0.0, where, ": sigma(t) must be > 0 at t = ", t, ", got ", s);
  softdiff::detail::require(std::isfinite(s_next) && s_next >= 0.0 && s_next <= s, where,
                            ": need 0 <= sigma(t') <= sigma(t), got sigma(", t_next, ") = ", s_next,
                            " and sigma(", t, ") = ", s);
  softdiff::detail::require(x.size() > 0, where, ": empty batch ", to_string(shape_of(x)));
  check_finite(x, where);
}

}  // namespace detail
}  // namespace softdiff::sampler
