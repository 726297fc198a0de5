#pragma once
// C(level) = I for every level: the noise-only (VE) corruption, where x_t = x_0 + sigma_t eta
// and Soft Score Matching reduces to denoising score matching.
#include <limits>
#include <string>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/algorithms.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

template <class T = float>
struct identity {
  using scalar_type = T;
  static constexpr bool self_adjoint = true;

  void apply(double level, const batch<T>& x, batch<T>& y) const {
    check_level(*this, level, "identity");
    if (&x == &y) return;
    ensure_shape(y, shape_of(x));
    copy_apply<backend::cpu>(x.data(), y.data(), x.size());
  }
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { apply(level, x, y); }
  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return std::numeric_limits<double>::max(); }
  [[nodiscard]] std::string name() const { return "identity"; }
};

static_assert(CorruptionOperator<identity<float>>);
static_assert(CorruptionOperator<identity<double>>);

}  // namespace softdiff::op
