#pragma once
// C(level) zeroes a centred rectangle of every plane: the paper's masking corruption
// (appendix G), "a centred binary mask that zeroes a growing share of pixels";
// level in [0, 1] is the share of pixels removed.
//
// Rounding rule: the removed rectangle has the image's aspect ratio and area as close
// to level H W as a centred rectangle allows,
//   h = round(H sqrt(level)),  w = round(W sqrt(level))   (round half away from zero),
//   top = floor((H - h) / 2),  left = floor((W - w) / 2),
// so level 0 removes nothing (C_0 = I), level 1 removes everything, and
// |h w - level H W| <= (H + W) sqrt(level) / 2 + 1/4. h and w are non-decreasing in
// level. The same mask applies to every channel and sample. C is a 0/1 diagonal, hence
// symmetric (self_adjoint) and idempotent.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/algorithms.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

template <class T = float>
struct mask {
  using scalar_type = T;
  static constexpr bool self_adjoint = true;

  /// The zeroed rectangle: rows [top, top + h), columns [left, left + w).
  using rectangle = mask_rectangle;

  /// The rectangle removed at `level` from an H x W image (the rounding rule above).
  [[nodiscard]] static rectangle removed(double level, std::size_t height, std::size_t width) {
    check_level(mask{}, level, "mask::removed");
    const double r = std::sqrt(level);
    rectangle m;
    m.h = std::min(height, static_cast<std::size_t>(std::llround(static_cast<double>(height) * r)));
    m.w = std::min(width, static_cast<std::size_t>(std::llround(static_cast<double>(width) * r)));
    if (m.h == 0 || m.w == 0) m.h = m.w = 0;  // an empty rectangle removes nothing
    m.top = (height - m.h) / 2;
    m.left = (width - m.w) / 2;
    return m;
  }

  /// y = C(level) x; y may alias x.
  void apply(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, "mask::apply"); }
  /// C is a 0/1 diagonal: the adjoint is apply.
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, "mask::apply_adjoint"); }

  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return 1.0; }
  [[nodiscard]] std::string name() const { return "mask"; }

private:
  static void run(double level, const batch<T>& x, batch<T>& y, const char* where) {
    check_level(mask{}, level, where);
    const shape4 s = shape_of(x);
    if (&x != &y) ensure_shape(y, s);
    mask_apply<backend::cpu>(removed(level, s[2], s[3]), x.data(), y.data(), s);
  }
};

static_assert(CorruptionOperator<mask<float>>);
static_assert(CorruptionOperator<mask<double>>);

}  // namespace softdiff::op
