#pragma once
// Variance-exploding schedule with geometric noise (Song et al. 2021, the NCSN/VE SDE):
//   C_t = I (level 0 for every t),  sigma_t = sigma_min (sigma_max / sigma_min)^t for t > 0,
// and sigma_0 = 0 exactly, so that x_0 is the clean image (docs/equations.md: C_0 = I, sigma_0 = 0).
// Use with op::identity; with C_t = I, Soft Score Matching is denoising score matching.
#include <cmath>
#include <string>

#include "softdiff/concepts.hpp"
#include "softdiff/schedule/common.hpp"

namespace softdiff::schedule {

class ve_geometric {
public:
  explicit ve_geometric(double sigma_min = 0.01, double sigma_max = 50.0)
      : sigma_min_(sigma_min), sigma_max_(sigma_max) {
    detail::check_parameter(sigma_min > 0.0, sigma_min, "ve_geometric", "sigma_min", "> 0");
    detail::check_parameter(sigma_max >= sigma_min, sigma_max, "ve_geometric", "sigma_max", ">= sigma_min");
    log_ratio_ = std::log(sigma_max_ / sigma_min_);
  }

  [[nodiscard]] double level(double t) const {
    detail::check_time(t, "ve_geometric");
    return 0.0;
  }
  [[nodiscard]] double sigma(double t) const {
    detail::check_time(t, "ve_geometric");
    if (t == 0.0) return 0.0;
    if (t == 1.0) return sigma_max_;
    return sigma_min_ * std::exp(t * log_ratio_);
  }
  [[nodiscard]] std::string name() const { return "ve_geometric"; }

  [[nodiscard]] double sigma_min() const { return sigma_min_; }
  [[nodiscard]] double sigma_max() const { return sigma_max_; }

private:
  double sigma_min_, sigma_max_, log_ratio_ = 0.0;
};

static_assert(Schedule<ve_geometric>);

}  // namespace softdiff::schedule
