#pragma once
// Two-stage noise-then-blur schedule (Soft Diffusion, section 3.3 and appendix C):
// "Noise: geometric from 0.01 to sigma_max, then held at sigma_max (0.1) while the blur
// grows; the noise stage takes under 20% of the time."  With f = noise_fraction:
//   sigma(0) = 0,
//   sigma(t) = sigma_min (sigma_max / sigma_min)^(t / f)            for 0 < t <= f,
//   sigma(t) = sigma_max                                             for t > f;
//   level(t) = 0 (the identity)                                      for t <= f,
//   level(t) = level_min (level_max / level_min)^u,  u = (t - f) / (1 - f)   for t > f
// (growth::linear gives level_min + u (level_max - level_min) instead).
// The defaults are the paper's CelebA-64 blur: std from 0.01 to 23 pixels (appendix G).
#include <cmath>
#include <string>

#include "softdiff/concepts.hpp"
#include "softdiff/schedule/common.hpp"

namespace softdiff::schedule {

/// How the operator level grows during the second (corruption) stage.
enum class growth { geometric, linear };

struct two_stage_parameters {
  double sigma_min = 0.01;
  double sigma_max = 0.1;
  double noise_fraction = 0.2;  // f: share of [0, 1] spent raising the noise
  double level_min = 0.01;      // operator level just after t = f (blur std for Gaussian blur)
  double level_max = 23.0;      // operator level at t = 1
  growth level_growth = growth::geometric;
};

class two_stage {
public:
  explicit two_stage(const two_stage_parameters& p = {}) : p_(p) {
    detail::check_parameter(p.sigma_min > 0.0, p.sigma_min, "two_stage", "sigma_min", "> 0");
    detail::check_parameter(p.sigma_max >= p.sigma_min, p.sigma_max, "two_stage", "sigma_max", ">= sigma_min");
    detail::check_parameter(p.noise_fraction > 0.0 && p.noise_fraction < 1.0, p.noise_fraction, "two_stage",
                            "noise_fraction", "in (0, 1)");
    if (p.level_growth == growth::geometric)
      detail::check_parameter(p.level_min > 0.0, p.level_min, "two_stage", "level_min", "> 0 for geometric growth");
    else
      detail::check_parameter(p.level_min >= 0.0, p.level_min, "two_stage", "level_min", ">= 0");
    detail::check_parameter(p.level_max >= p.level_min, p.level_max, "two_stage", "level_max", ">= level_min");
  }

  [[nodiscard]] double level(double t) const {
    detail::check_time(t, "two_stage");
    if (t <= p_.noise_fraction) return 0.0;
    if (t == 1.0) return p_.level_max;  // exact end point, so it cannot leave an operator's range by rounding
    const double u = (t - p_.noise_fraction) / (1.0 - p_.noise_fraction);
    if (p_.level_growth == growth::linear) return p_.level_min + u * (p_.level_max - p_.level_min);
    return p_.level_min * std::exp(u * std::log(p_.level_max / p_.level_min));
  }
  [[nodiscard]] double sigma(double t) const {
    detail::check_time(t, "two_stage");
    if (t == 0.0) return 0.0;
    if (t >= p_.noise_fraction) return p_.sigma_max;
    return p_.sigma_min * std::exp((t / p_.noise_fraction) * std::log(p_.sigma_max / p_.sigma_min));
  }
  [[nodiscard]] std::string name() const { return "two_stage"; }
  [[nodiscard]] const two_stage_parameters& parameters() const { return p_; }

private:
  two_stage_parameters p_;
};

static_assert(Schedule<two_stage>);

}  // namespace softdiff::schedule
