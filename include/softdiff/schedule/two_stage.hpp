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
//
// noise_mode::growing is the "non-fixed noise" ablation of appendix F.1: no separate noise
// stage, noise and corruption grow together over the whole of (0, 1],
//   sigma(t) = sigma_min (sigma_max / sigma_min)^t,   level(t) = level_min (level_max / level_min)^t
// (level_min + t (level_max - level_min) for growth::linear), sigma(0) = 0 and level(0) = 0 (C_0 = I);
// noise_fraction is then unused.
//
// JSON (to_json / from_json, found by ADL): {"sigma_min", "sigma_max", "noise_fraction",
// "level_min", "level_max", "level_growth": "geometric" | "linear", "noise_mode": "fixed" | "growing"};
// a missing "noise_mode" reads as "fixed" (files written before the ablation existed).
#include <cmath>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/schedule/common.hpp"

namespace softdiff::schedule {

/// How the operator level grows during the second (corruption) stage.
enum class growth { geometric, linear };

/// Whether sigma is held at sigma_max while the level grows (the paper's default) or grows with it
/// over the whole of (0, 1] (appendix F.1, "non-fixed noise").
enum class noise_mode { fixed, growing };

[[nodiscard]] inline std::string noise_mode_name(noise_mode m) { return m == noise_mode::fixed ? "fixed" : "growing"; }

/// "fixed" or "growing"; anything else throws naming the value.
[[nodiscard]] inline noise_mode noise_mode_from_name(std::string_view s) {
  if (s == "fixed") return noise_mode::fixed;
  if (s == "growing") return noise_mode::growing;
  throw error(softdiff::detail::concat("unknown noise mode '", s, "' (known: fixed, growing)"));
}

[[nodiscard]] inline std::string growth_name(growth g) { return g == growth::geometric ? "geometric" : "linear"; }

[[nodiscard]] inline growth growth_from_name(std::string_view s) {
  if (s == "geometric") return growth::geometric;
  if (s == "linear") return growth::linear;
  throw error(softdiff::detail::concat("unknown level growth '", s, "' (known: geometric, linear)"));
}

struct two_stage_parameters {
  double sigma_min = 0.01;
  double sigma_max = 0.1;
  double noise_fraction = 0.2;  // f: share of [0, 1] spent raising the noise
  double level_min = 0.01;      // operator level just after t = f (blur std for Gaussian blur)
  double level_max = 23.0;      // operator level at t = 1
  growth level_growth = growth::geometric;
  noise_mode noise = noise_mode::fixed;
};

inline void to_json(nlohmann::json& j, const two_stage_parameters& p) {
  j = nlohmann::json{{"sigma_min", p.sigma_min},          {"sigma_max", p.sigma_max},
                     {"noise_fraction", p.noise_fraction}, {"level_min", p.level_min},
                     {"level_max", p.level_max},           {"level_growth", growth_name(p.level_growth)},
                     {"noise_mode", noise_mode_name(p.noise)}};
}

/// Reads what to_json writes; throws softdiff::error naming a missing or mistyped field.
inline void from_json(const nlohmann::json& j, two_stage_parameters& p) {
  try {
    p.sigma_min = j.at("sigma_min").get<double>();
    p.sigma_max = j.at("sigma_max").get<double>();
    p.noise_fraction = j.at("noise_fraction").get<double>();
    p.level_min = j.at("level_min").get<double>();
    p.level_max = j.at("level_max").get<double>();
    p.level_growth = growth_from_name(j.at("level_growth").get<std::string>());
    p.noise = noise_mode_from_name(j.value("noise_mode", std::string("fixed")));
  } catch (const nlohmann::json::exception& e) {
    throw error(std::string("two_stage_parameters: ") + e.what());
  }
}

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
    if (t == 1.0) return p_.level_max;  // exact end point, so it cannot leave an operator's range by rounding
    if (p_.noise == noise_mode::growing && t == 0.0) return 0.0;
    if (p_.noise == noise_mode::fixed && t <= p_.noise_fraction) return 0.0;
    // u: the position within the corruption stage, (t - f) / (1 - f), or t itself when the noise grows along
    const double u = p_.noise == noise_mode::growing ? t : (t - p_.noise_fraction) / (1.0 - p_.noise_fraction);
    if (p_.level_growth == growth::linear) return p_.level_min + u * (p_.level_max - p_.level_min);
    return p_.level_min * std::exp(u * std::log(p_.level_max / p_.level_min));
  }
  [[nodiscard]] double sigma(double t) const {
    detail::check_time(t, "two_stage");
    if (t == 0.0) return 0.0;
    if (p_.noise == noise_mode::growing) {
      if (t == 1.0) return p_.sigma_max;
      return p_.sigma_min * std::exp(t * std::log(p_.sigma_max / p_.sigma_min));
    }
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
