#pragma once
// The MSE-matching baseline of Soft Diffusion (appendix C, eq. 55): choose the corruption levels so
// that the mean squared error between the corrupted and the clean image grows as the noise of the
// VE SDE does. For the VE SDE x_t = x_0 + sigma_VE(t) eta, E||x_t - x_0||^2 / d = sigma_VE(t)^2 with
// sigma_VE(t) = s_min (s_max / s_min)^t. Here, with K = target_nodes and u_k = k / (K - 1),
//   mse(theta) = E ||C(theta) x - x||^2 / d        (measured on a data slice at every candidate),
//   mse(theta_k) = mse(theta_T) (sigma_VE(u_k)^2 - s_min^2) / (s_max^2 - s_min^2)        (eq. 55)
// so that theta_0 is the clean level and theta_{K-1} the last candidate; each theta_k is found by
// inverting the measured curve (made non-decreasing by a running maximum) with linear
// interpolation between candidates. The levels then go through the same tabulation as the
// Wasserstein scheduler (noise stage of schedule::two_stage, then the K levels on [f, 1]).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/schedule/detail/level_path.hpp"
#include "softdiff/schedule/epsilon_graph.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::schedule {

struct mse_matching_options {
  candidate_level_options levels{};
  std::size_t target_nodes = 32;
  std::size_t points = 1024;     // images of the slice used (a seeded subset; all if fewer)
  std::uint64_t seed = 0;
  double ve_sigma_min = 0.01;    // s_min, s_max: Song et al.'s VE defaults; only the ratio matters
  double ve_sigma_max = 50.0;
  noise_stage_options noise{};
  progress_callback progress;
};

struct mse_matching_result {
  std::vector<double> levels;       // candidates theta_0..theta_T
  std::vector<double> mse;          // measured mean squared error per candidate (non-decreasing)
  std::vector<double> path_levels;  // the K chosen levels
  tabulated schedule;
};

template <CorruptionOperator Op>
[[nodiscard]] mse_matching_result mse_matching_schedule(const Op& op, const batch<typename Op::scalar_type>& slice,
                                                        const mse_matching_options& o = {}) {
  using T = typename Op::scalar_type;
  using softdiff::detail::require;
  require(slice.shape()[0] > 0 && slice.size() > 0, "mse matching: the data slice is empty (",
          to_string(shape_of(slice)), ")");
  check_finite(slice, "mse matching: data slice");
  require(o.target_nodes >= 2, "mse matching: target_nodes = ", o.target_nodes, " must be >= 2");
  require(o.points >= 1, "mse matching: points must be >= 1");
  require(std::isfinite(o.ve_sigma_min) && std::isfinite(o.ve_sigma_max) && o.ve_sigma_min > 0 &&
              o.ve_sigma_max > o.ve_sigma_min,
          "mse matching: need 0 < ve_sigma_min < ve_sigma_max, got ", o.ve_sigma_min, " and ", o.ve_sigma_max);
  std::vector<double> levels = candidate_levels(op, o.levels);
  const batch<T> x = detail::gather_images(slice, detail::seeded_subset(slice.shape()[0], o.points, o.seed));

  std::vector<double> mse(levels.size(), 0.0);
  batch<T> y;
  const double count = static_cast<double>(x.size());
  for (std::size_t k = 1; k < levels.size(); ++k) {
    op.apply(levels[k], x, y);
    double s = 0;
    const T* a = x.data();
    const T* b = y.data();
    const std::size_t n = x.size();
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (std::size_t i = 0; i < n; ++i) {
      const double e = static_cast<double>(b[i]) - static_cast<double>(a[i]);
      s += e * e;
    }
    mse[k] = std::max(mse[k - 1], s / count);  // running maximum: a non-decreasing curve to invert
    if (o.progress) o.progress("mse per level", static_cast<double>(k) / static_cast<double>(levels.size() - 1));
  }
  const double top = mse.back();
  require(top > 0, "mse matching: operator ", op.name(), " leaves the slice unchanged up to level ", levels.back(),
          " (zero mean squared error); nothing to match");

  const std::size_t K = o.target_nodes;
  const double s0 = o.ve_sigma_min, s1 = o.ve_sigma_max;
  std::vector<double> path{levels.front()};
  for (std::size_t k = 1; k + 1 < K; ++k) {
    const double u = static_cast<double>(k) / static_cast<double>(K - 1);
    const double sigma = s0 * std::pow(s1 / s0, u);
    const double target = top * (sigma * sigma - s0 * s0) / (s1 * s1 - s0 * s0);  // eq. 55
    const auto it = std::lower_bound(mse.begin(), mse.end(), target);
    const auto j = static_cast<std::size_t>(it - mse.begin());  // first candidate with mse >= target
    double level = levels[j];
    if (j > 0 && mse[j] > mse[j - 1])
      level = levels[j - 1] + (target - mse[j - 1]) / (mse[j] - mse[j - 1]) * (levels[j] - levels[j - 1]);
    path.push_back(level);
  }
  path.push_back(levels.back());
  tabulated table = detail::tabulate_path(path, o.noise, op.name());
  return {std::move(levels), std::move(mse), std::move(path), std::move(table)};
}

}  // namespace softdiff::schedule
