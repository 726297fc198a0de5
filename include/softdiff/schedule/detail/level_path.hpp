#pragma once
// Shared by the Wasserstein scheduler and the MSE-matching baseline: the candidate corruption
// levels theta_0 < theta_1 < ... < theta_T, and the conversion of a chosen path of levels into a
// tabulated schedule with the noise stage of schedule::two_stage in front:
//   t in [0, f]:  level = theta_0 (the identity), sigma(t) as two_stage (0 at t = 0, then
//                 sigma_min (sigma_max / sigma_min)^(t / f) sampled at `points` times);
//   t in [f, 1]:  the path's K levels at t = f + (1 - f) k / (K - 1), sigma = sigma_max;
// linearly interpolated in between by schedule::tabulated (section 3.3: "the path is linearly
// interpolated to continuous t").
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/random.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::schedule {

enum class level_spacing { linear, geometric };

/// theta_0 = op.min_level() (clean) and T candidates theta_1..theta_T.
///  linear:    theta_k = theta_0 + k (last - theta_0) / T                            (first is ignored)
///  geometric: theta_k = theta_0 + (first - theta_0) ((last - theta_0) / (first - theta_0))^((k-1)/(T-1))
/// Defaults: last = op.max_level() (an unbounded family such as Gaussian blur needs `last`),
/// first = theta_0 + (last - theta_0) / 1000.
struct candidate_level_options {
  std::size_t count = 256;  // T
  level_spacing spacing = level_spacing::geometric;
  double first = std::numeric_limits<double>::quiet_NaN();
  double last = std::numeric_limits<double>::quiet_NaN();
};

/// The noise stage (the same as schedule::two_stage's) and how finely it is tabulated.
struct noise_stage_options {
  double sigma_min = 0.01;
  double sigma_max = 0.1;
  double noise_fraction = 0.2;  // f
  std::size_t points = 16;      // tabulated times in (0, f]
};

template <CorruptionOperator Op>
[[nodiscard]] std::vector<double> candidate_levels(const Op& op, const candidate_level_options& o) {
  using softdiff::detail::require;
  require(o.count >= 1, "candidate_levels: count = ", o.count, " must be >= 1");
  const double lo = op.min_level();
  // An unset last level takes the operator's maximum, unless that is unbounded (infinite, or a
  // stand-in such as DBL_MAX for the blur std).
  require(!std::isnan(o.last) || op.max_level() < 1e300, "candidate_levels: operator ", op.name(),
          " has no finite maximum level (max_level() = ", op.max_level(), "); set the last candidate level");
  const double last = std::isnan(o.last) ? op.max_level() : o.last;
  check_level(op, last, "candidate_levels (last level)");
  require(last > lo, "candidate_levels: last level ", last, " must exceed the clean level ", lo);
  std::vector<double> levels(o.count + 1);
  levels[0] = lo;
  const double T = static_cast<double>(o.count);
  if (o.spacing == level_spacing::linear) {
    for (std::size_t k = 1; k <= o.count; ++k) levels[k] = lo + static_cast<double>(k) * (last - lo) / T;
  } else {
    const double first = std::isnan(o.first) ? lo + (last - lo) / 1000.0 : o.first;
    check_level(op, first, "candidate_levels (first level)");
    require(first > lo && first <= last, "candidate_levels: first level ", first, " must lie in (", lo, ", ", last,
            "] for geometric spacing");
    const double ratio = (last - lo) / (first - lo);
    for (std::size_t k = 1; k <= o.count; ++k) {
      const double u = o.count == 1 ? 1.0 : static_cast<double>(k - 1) / (T - 1);
      levels[k] = lo + (first - lo) * std::pow(ratio, u);
    }
  }
  levels[o.count] = last;  // exactly, so rounding cannot leave the operator's range
  for (std::size_t k = 1; k <= o.count; ++k)
    require(levels[k] > levels[k - 1], "candidate_levels: levels not increasing at ", k, " (", levels[k - 1], ", ",
            levels[k], "); use fewer candidates or a wider range");
  return levels;
}

namespace detail {

/// `take` distinct indices of [0, n), increasing: those with the smallest seeded uniform keys
/// (all of them when take >= n).
[[nodiscard]] inline std::vector<std::size_t> seeded_subset(std::size_t n, std::size_t take, std::uint64_t seed) {
  std::vector<std::size_t> index(n);
  std::iota(index.begin(), index.end(), 0);
  if (take >= n) return index;
  const noise_source keys{seed, stream_for(stream_purpose::data, 0x5ced)};
  std::vector<double> key(n);
  for (std::size_t k = 0; k < n; ++k) key[k] = keys.uniform(k);
  std::nth_element(index.begin(), index.begin() + static_cast<std::ptrdiff_t>(take), index.end(),
                   [&](std::size_t a, std::size_t b) { return key[a] < key[b]; });
  index.resize(take);
  std::sort(index.begin(), index.end());
  return index;
}

/// The images of `x` at `index`, in that order.
template <class T>
[[nodiscard]] batch<T> gather_images(const batch<T>& x, const std::vector<std::size_t>& index) {
  const auto s = shape_of(x);
  batch<T> out(shape4{index.size(), s[1], s[2], s[3]});
  const std::size_t per = s[1] * s[2] * s[3];
  for (std::size_t k = 0; k < index.size(); ++k) std::copy_n(x.data() + index[k] * per, per, out.data() + k * per);
  return out;
}

/// The tabulated schedule for a path of levels (path.front() = the clean level), see above.
[[nodiscard]] inline tabulated tabulate_path(const std::vector<double>& path, const noise_stage_options& n,
                                             std::string operator_name) {
  softdiff::detail::require(path.size() >= 2, "scheduler: a path needs at least 2 levels, got ", path.size());
  softdiff::detail::require(n.points >= 1, "scheduler: noise_stage.points must be >= 1");
  two_stage_parameters p;
  p.sigma_min = n.sigma_min;
  p.sigma_max = n.sigma_max;
  p.noise_fraction = n.noise_fraction;
  const two_stage noise(p);  // validates sigma_min, sigma_max and noise_fraction
  const double f = n.noise_fraction;
  std::vector<double> t{0.0}, level{path.front()}, sigma{0.0};
  for (std::size_t i = 1; i <= n.points; ++i) {
    const double ti = i == n.points ? f : f * static_cast<double>(i) / static_cast<double>(n.points);
    t.push_back(ti);
    level.push_back(path.front());
    sigma.push_back(noise.sigma(ti));
  }
  const std::size_t K = path.size();
  for (std::size_t k = 1; k < K; ++k) {
    t.push_back(k + 1 == K ? 1.0 : f + (1.0 - f) * static_cast<double>(k) / static_cast<double>(K - 1));
    level.push_back(path[k]);
    sigma.push_back(n.sigma_max);
  }
  return tabulated(std::move(t), std::move(level), std::move(sigma), std::move(operator_name));
}

}  // namespace detail
}  // namespace softdiff::schedule
