#pragma once
// Time grids for reverse sampling, 1 >= t_0 > t_1 > ... > t_K >= 0; sampling takes
// one sampler step per consecutive pair (t_k, t_{k+1}).
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "softdiff/error.hpp"

namespace softdiff::sampler {

/// steps + 1 equally spaced times from 1 down to 0: t_k = 1 - k / steps (t_steps = 0 exactly).
[[nodiscard]] inline std::vector<double> uniform_grid(std::size_t steps) {
  softdiff::detail::require(steps >= 1, "sampler::uniform_grid: steps must be at least 1, got ", steps);
  std::vector<double> g(steps + 1);
  for (std::size_t k = 0; k <= steps; ++k)
    g[k] = static_cast<double>(steps - k) / static_cast<double>(steps);
  return g;
}

/// A user grid: at least two finite times, strictly decreasing, inside [0, 1], first time > 0.
/// The grid need not end at 0; sampling then returns x at the last time rather than an x_0 estimate.
inline void validate_grid(std::span<const double> grid) {
  softdiff::detail::require(grid.size() >= 2, "sampler::validate_grid: a time grid needs at least 2 times, got ",
                  grid.size());
  for (std::size_t k = 0; k < grid.size(); ++k) {
    softdiff::detail::require(std::isfinite(grid[k]), "sampler::validate_grid: time ", k, " is not finite (", grid[k], ")");
    softdiff::detail::require(grid[k] >= 0.0 && grid[k] <= 1.0, "sampler::validate_grid: time ", k, " = ", grid[k],
                    " is outside [0, 1]");
    if (k > 0)
      softdiff::detail::require(grid[k] < grid[k - 1], "sampler::validate_grid: times must be strictly decreasing, but t[",
                      k - 1, "] = ", grid[k - 1], " and t[", k, "] = ", grid[k]);
  }
  softdiff::detail::require(grid[0] > 0.0, "sampler::validate_grid: the first time must be > 0, got ", grid[0]);
}

}  // namespace softdiff::sampler
