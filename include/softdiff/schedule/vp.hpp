#pragma once
// Variance-preserving and sub-VP schedules (Song et al. 2021, "Score-Based Generative
// Modeling through SDEs", eq. 11 and the sub-VP SDE of section 3.4), linear beta:
//   beta(s) = beta_min + s (beta_max - beta_min),
//   B(t)    = integral_0^t beta(s) ds = beta_min t + (beta_max - beta_min) t^2 / 2,
//   alpha_t = exp(-B(t) / 2),          x_t = alpha_t x_0 + sigma_t eta,
//   VP:     sigma_t = sqrt(1 - alpha_t^2) = sqrt(1 - exp(-B(t))),
//   sub-VP: sigma_t = 1 - alpha_t^2       = 1 - exp(-B(t)).
// For op::scale, whose level is the attenuation (C = (1 - level) I), level(t) = 1 - alpha_t.
// expm1 keeps 1 - exp(-x) accurate for small t, where sigma_t is tiny but must stay > 0.
#include <cmath>
#include <string>

#include "softdiff/concepts.hpp"
#include "softdiff/schedule/common.hpp"

namespace softdiff::schedule {

namespace detail {

/// Linear-beta integral B(t) shared by VP and sub-VP; validates (beta_min, beta_max).
class linear_beta {
public:
  linear_beta(double beta_min, double beta_max, const char* schedule)
      : beta_min_(beta_min), beta_max_(beta_max) {
    check_parameter(beta_min >= 0.0, beta_min, schedule, "beta_min", ">= 0");
    check_parameter(beta_max >= beta_min && beta_max > 0.0, beta_max, schedule, "beta_max",
                    ">= beta_min and > 0");
  }
  /// B(t) = integral_0^t beta(s) ds.
  [[nodiscard]] double integral(double t) const { return beta_min_ * t + 0.5 * (beta_max_ - beta_min_) * t * t; }
  [[nodiscard]] double beta_min() const { return beta_min_; }
  [[nodiscard]] double beta_max() const { return beta_max_; }

private:
  double beta_min_, beta_max_;
};

}  // namespace detail

class vp {
public:
  explicit vp(double beta_min = 0.1, double beta_max = 20.0) : beta_(beta_min, beta_max, "vp") {}

  /// alpha_t = exp(-B(t) / 2).
  [[nodiscard]] double alpha(double t) const {
    detail::check_time(t, "vp");
    return std::exp(-0.5 * beta_.integral(t));
  }
  /// level = 1 - alpha_t.
  [[nodiscard]] double level(double t) const {
    detail::check_time(t, "vp");
    return -std::expm1(-0.5 * beta_.integral(t));
  }
  /// sigma_t = sqrt(1 - alpha_t^2).
  [[nodiscard]] double sigma(double t) const {
    detail::check_time(t, "vp");
    return std::sqrt(-std::expm1(-beta_.integral(t)));
  }
  [[nodiscard]] std::string name() const { return "vp"; }
  [[nodiscard]] double beta_min() const { return beta_.beta_min(); }
  [[nodiscard]] double beta_max() const { return beta_.beta_max(); }

private:
  detail::linear_beta beta_;
};

class sub_vp {
public:
  explicit sub_vp(double beta_min = 0.1, double beta_max = 20.0) : beta_(beta_min, beta_max, "sub_vp") {}

  /// alpha_t = exp(-B(t) / 2), the same signal factor as VP.
  [[nodiscard]] double alpha(double t) const {
    detail::check_time(t, "sub_vp");
    return std::exp(-0.5 * beta_.integral(t));
  }
  /// level = 1 - alpha_t.
  [[nodiscard]] double level(double t) const {
    detail::check_time(t, "sub_vp");
    return -std::expm1(-0.5 * beta_.integral(t));
  }
  /// sigma_t = 1 - alpha_t^2 (the sub-VP variance is (1 - exp(-B(t)))^2).
  [[nodiscard]] double sigma(double t) const {
    detail::check_time(t, "sub_vp");
    return -std::expm1(-beta_.integral(t));
  }
  [[nodiscard]] std::string name() const { return "sub_vp"; }
  [[nodiscard]] double beta_min() const { return beta_.beta_min(); }
  [[nodiscard]] double beta_max() const { return beta_.beta_max(); }

private:
  detail::linear_beta beta_;
};

static_assert(Schedule<vp>);
static_assert(Schedule<sub_vp>);

}  // namespace softdiff::schedule
