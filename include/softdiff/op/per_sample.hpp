#pragma once
// y_i = C(level_i) x_i (or C(level_i)^T x_i) for every sample i of a batch: training draws
// its own t, hence its own level, for every sample (eq. 12 takes E_t inside the batch).
//
// Samples with equal levels go through the operator in one call. When every level is
// the same, the whole batch goes through at once with no copy; otherwise each group is
// gathered into a per-thread workspace batch, transformed there and scattered back. The
// workspaces are kept per group size (a few, least recently used evicted), so steady-state
// training (stable shapes, e.g. all levels distinct: groups of one) allocates nothing.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

namespace detail {

/// Gather / result batches for groups of one size, per thread and scalar type.
template <class T>
struct per_sample_workspace {
  static constexpr std::size_t slots = 4;
  struct slot {
    shape4 shape{};
    batch<T> in, out;
    std::uint64_t last_use = 0;
  };
  std::array<slot, slots> cache;
  std::uint64_t clock = 0;
  std::vector<std::size_t> order;

  /// The slot for group shape s (its batches already sized to s).
  slot& for_shape(const shape4& s) {
    ++clock;
    slot* pick = &cache[0];
    for (auto& c : cache) {
      if (c.shape == s) {
        pick = &c;
        break;
      }
      if (c.last_use < pick->last_use) pick = &c;
    }
    if (pick->shape != s) {
      pick->shape = s;
      ensure_shape(pick->in, s);
      ensure_shape(pick->out, s);
    }
    pick->last_use = clock;
    return *pick;
  }
};

template <class T>
per_sample_workspace<T>& per_sample_thread_workspace() {
  thread_local per_sample_workspace<T> ws;
  return ws;
}

}  // namespace detail

/// y_i = C(levels[i]) x_i, or C(levels[i])^T x_i when `adjoint`; y may alias x and is resized
/// to x's shape. levels.size() must equal the batch size N.
template <CorruptionOperator Op>
void apply_per_sample(const Op& op, std::span<const double> levels, const batch<typename Op::scalar_type>& x,
                      batch<typename Op::scalar_type>& y, bool adjoint = false) {
  using T = typename Op::scalar_type;
  const shape4 s = shape_of(x);
  const std::size_t n = s[0];
  softdiff::detail::require(levels.size() == n, "apply_per_sample: ", levels.size(),
                            " levels for a batch of N = ", n, " samples (", op.name(), "); need one per sample");
  for (std::size_t i = 0; i < n; ++i)
    softdiff::detail::require(std::isfinite(levels[i]), "apply_per_sample: level ", levels[i], " of sample ", i,
                              " is not finite (", op.name(), ")");
  const auto run = [&](double level, const batch<T>& in, batch<T>& out) {
    if (adjoint)
      op.apply_adjoint(level, in, out);
    else
      op.apply(level, in, out);
  };
  if (n == 0 || std::all_of(levels.begin(), levels.end(), [&](double l) { return l == levels[0]; })) {
    if (n == 0) {
      ensure_shape(y, s);
      return;
    }
    run(levels[0], x, y);
    return;
  }
  ensure_shape(y, s);  // a no-op when y aliases x
  auto& ws = detail::per_sample_thread_workspace<T>();
  ws.order.resize(n);
  std::iota(ws.order.begin(), ws.order.end(), std::size_t{0});
  std::stable_sort(ws.order.begin(), ws.order.end(), [&](std::size_t a, std::size_t b) { return levels[a] < levels[b]; });
  const std::size_t sample = s[1] * s[2] * s[3];
  // Group g reads only its own samples of x before writing the same samples of y, so y may alias x.
  for (std::size_t g0 = 0; g0 < n;) {
    std::size_t g1 = g0 + 1;
    while (g1 < n && levels[ws.order[g1]] == levels[ws.order[g0]]) ++g1;
    auto& slot = ws.for_shape({g1 - g0, s[1], s[2], s[3]});
    for (std::size_t k = g0; k < g1; ++k) {
      const T* from = x.data() + ws.order[k] * sample;
      std::copy(from, from + sample, slot.in.data() + (k - g0) * sample);
    }
    run(levels[ws.order[g0]], slot.in, slot.out);
    for (std::size_t k = g0; k < g1; ++k) {
      const T* from = slot.out.data() + (k - g0) * sample;
      std::copy(from, from + sample, y.data() + ws.order[k] * sample);
    }
    g0 = g1;
  }
}

}  // namespace softdiff::op
