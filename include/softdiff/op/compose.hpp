#pragma once
// C(level) = A(map_a(level)) B(map_b(level)): apply B, then A. One level drives both
// operators through two level maps, e.g. a mask whose share grows while a blur grows.
// The adjoint is C^T = B^T A^T (apply A^T, then B^T), exact when A's and B's are.
//
// Range: [min_level, max_level] is given at construction. With the default identity maps
// it is the intersection of A's and B's ranges (A's range whenever B's contains it).
// Either way the range's minimum must map to both operators' min_level (C_min = I), which
// the constructor checks; levels the maps send outside A's or B's range are rejected by
// that operator, with its name in the message.
//
// self_adjoint is false: A B is symmetric only when both are and they commute.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <string>
#include <utility>

#include "softdiff/concepts.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

template <CorruptionOperator A, CorruptionOperator B>
  requires std::same_as<typename A::scalar_type, typename B::scalar_type>
class compose {
public:
  using scalar_type = typename A::scalar_type;
  using level_map = std::function<double(double)>;
  static constexpr bool self_adjoint = false;

  /// Identity level maps; the range is the intersection of A's and B's.
  compose(A a, B b)
      : a_(std::move(a)),
        b_(std::move(b)),
        map_a_(identity_map),
        map_b_(identity_map),
        min_(std::max<double>(a_.min_level(), b_.min_level())),
        max_(std::min<double>(a_.max_level(), b_.max_level())) {
    validate();
  }

  /// level -> A at map_a(level), B at map_b(level), for level in [min_level, max_level].
  compose(A a, B b, level_map map_a, level_map map_b, double min_level, double max_level)
      : a_(std::move(a)),
        b_(std::move(b)),
        map_a_(std::move(map_a)),
        map_b_(std::move(map_b)),
        min_(min_level),
        max_(max_level) {
    softdiff::detail::require(static_cast<bool>(map_a_) && static_cast<bool>(map_b_), "compose: a level map is empty");
    validate();
  }

  /// y = A(map_a(level)) B(map_b(level)) x; y may alias x.
  void apply(double level, const batch<scalar_type>& x, batch<scalar_type>& y) const {
    check_level(*this, level, "compose::apply");
    b_.apply(map_b_(level), x, y);  // every operator accepts y aliasing x, so no temporary is needed
    a_.apply(map_a_(level), y, y);
  }
  /// y = B^T A^T x.
  void apply_adjoint(double level, const batch<scalar_type>& x, batch<scalar_type>& y) const {
    check_level(*this, level, "compose::apply_adjoint");
    a_.apply_adjoint(map_a_(level), x, y);
    b_.apply_adjoint(map_b_(level), y, y);
  }

  [[nodiscard]] double min_level() const { return min_; }
  [[nodiscard]] double max_level() const { return max_; }
  [[nodiscard]] std::string name() const { return "compose(" + std::string(a_.name()) + "," + std::string(b_.name()) + ")"; }

  [[nodiscard]] const A& outer() const { return a_; }  // applied second
  [[nodiscard]] const B& inner() const { return b_; }  // applied first
  [[nodiscard]] double level_a(double level) const { return map_a_(level); }
  [[nodiscard]] double level_b(double level) const { return map_b_(level); }

private:
  static double identity_map(double level) { return level; }

  void validate() const {
    softdiff::detail::require(std::isfinite(min_) && !std::isnan(max_) && min_ <= max_, "compose(", a_.name(), ",", b_.name(),
                    "): empty or invalid level range [", min_, ", ", max_, "]");
    const double la = map_a_(min_), lb = map_b_(min_);
    softdiff::detail::require(la == a_.min_level(), "compose(", a_.name(), ",", b_.name(), "): min_level ", min_,
                    " maps to level ", la, " of ", a_.name(), ", not its identity level ", a_.min_level());
    softdiff::detail::require(lb == b_.min_level(), "compose(", a_.name(), ",", b_.name(), "): min_level ", min_,
                    " maps to level ", lb, " of ", b_.name(), ", not its identity level ", b_.min_level());
  }

  A a_;
  B b_;
  level_map map_a_, map_b_;
  double min_ = 0, max_ = 0;
};

static_assert(CorruptionOperator<compose<identity<float>, scale<float>>>);
static_assert(CorruptionOperator<compose<scale<double>, identity<double>>>);

}  // namespace softdiff::op
