#pragma once
// C(level) = alpha I with alpha = 1 - level, so that level 0 is the identity and
// level 1 removes the signal: the VP / sub-VP corruption x_t = alpha_t x_0 + sigma_t eta.
// (The VP schedule maps alpha_t to level = 1 - alpha_t.)
#include <cstddef>
#include <string>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/algorithms.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

template <class T = float>
struct scale {
  using scalar_type = T;
  static constexpr bool self_adjoint = true;

  /// The factor alpha applied at `level`.
  [[nodiscard]] static double factor(double level) { return 1.0 - level; }

  void apply(double level, const batch<T>& x, batch<T>& y) const {
    check_level(*this, level, "scale");
    ensure_shape(y, shape_of(x));
    scale_apply<backend::cpu>(static_cast<T>(factor(level)), x.data(), y.data(), x.size());
  }
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { apply(level, x, y); }
  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return 1.0; }
  [[nodiscard]] std::string name() const { return "scale"; }
};

static_assert(CorruptionOperator<scale<float>>);
static_assert(CorruptionOperator<scale<double>>);

}  // namespace softdiff::op
