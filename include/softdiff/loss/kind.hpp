#pragma once
// Which training objective a step differentiates (the paper's ablation of section 4 / appendix F):
//   ssm    Soft Score Matching, eq. 12:  w(t) || C_t (phi - r_t) ||^2        (soft_score_matching.hpp)
//   clean  the clean-image loss:          w(t) || phi - r_t ||^2 = w(t) || h - x_0 ||^2   (baselines.hpp)
//   dsm    denoising score matching, eq. 7 as the paper writes it, in score space with the eq. 10
//          score: w(t) || s_theta(x_t, t) + (x_t - C_t x_0) / sigma_t^2 ||^2           (baselines.hpp)
// Names: "ssm", "clean", "dsm".
#include <string>
#include <string_view>

#include "softdiff/error.hpp"

namespace softdiff::loss {

enum class loss_kind { ssm, clean, dsm };

[[nodiscard]] inline std::string loss_kind_name(loss_kind k) {
  switch (k) {
    case loss_kind::ssm: return "ssm";
    case loss_kind::clean: return "clean";
    case loss_kind::dsm: return "dsm";
  }
  return "?";
}

/// "ssm", "clean" or "dsm"; anything else throws naming the value.
[[nodiscard]] inline loss_kind loss_kind_from_name(std::string_view s) {
  if (s == "ssm") return loss_kind::ssm;
  if (s == "clean") return loss_kind::clean;
  if (s == "dsm") return loss_kind::dsm;
  throw error(softdiff::detail::concat("unknown loss '", s, "' (known: ssm, clean, dsm)"));
}

}  // namespace softdiff::loss
