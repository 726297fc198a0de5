#pragma once
// How a layer's backward sums its parameter gradients over the batch (layer_support.hpp's fixed
// summation tree): segment_count(N) segments, each summing its samples in order into its own
// partial, the partials added in segment order. Segments run in parallel when there are enough
// (`over_segments`), else one after another with each GEMM spread over threads (`within_gemm`):
// the same tree either way, so the gradients are bitwise the same for any thread count.
#include <algorithm>
#include <cstddef>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn::detail {

struct reduction_plan {
  std::size_t segments;
  int threads;  // workspace slots
  bool over_segments;
  bool within_gemm;
  /// Partial-sum slots: one per segment when they run in parallel; else the running total and
  /// the current segment's partial.
  [[nodiscard]] std::size_t slots() const { return over_segments ? segments : std::min<std::size_t>(segments, 2); }
  [[nodiscard]] std::size_t slot(std::size_t s) const { return over_segments ? s : std::min<std::size_t>(s, 1); }
  [[nodiscard]] std::size_t begin(std::size_t N, std::size_t s) const { return segment_begin(N, segments, s); }
};

/// The plan for a batch of N whose backward costs `macs` multiply-adds (small ones stay on one thread).
[[nodiscard]] inline reduction_plan make_reduction_plan(std::size_t N, std::size_t macs) {
  const int threads = macs > 4 * parallel_threshold ? layer_threads() : 1;
  const std::size_t S = segment_count(N);
  const bool over = threads > 1 && S > 1 && (S >= static_cast<std::size_t>(threads) || S == reduction_segments);
  return {S, over ? std::min(threads, static_cast<int>(S)) : 1, over, !over && threads > 1};
}

/// db[o] += sum over l < L of g[o L + l], for o < B: one sample's bias gradient, each plane summed
/// in one order (the float32 and the bf16 passes share it, so their dbias agree bit for bit).
template <class T>
void add_plane_sums(const T* g, std::size_t B, std::size_t L, T* db) {
  for (std::size_t o = 0; o < B; ++o) {
    const T* r = g + o * L;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (std::size_t l = 0; l < L; ++l) s += r[l];
    db[o] += s;
  }
}

/// total (slot 0 of acc) += slot s: the partial sums of segments are added in segment order.
template <class T>
void fold_slot(T* acc, std::size_t s, std::size_t n_acc) {
  T* total = acc;
  const T* part = acc + s * n_acc;
#pragma omp simd
  for (std::size_t i = 0; i < n_acc; ++i) total[i] += part[i];
}

/// With segments run one after another: folds segment s's partial (slot 1) into the total (slot 0).
template <class T>
void fold_partial(const reduction_plan& p, std::size_t s, T* acc, std::size_t n_acc) {
  if (!p.over_segments && s > 0) fold_slot(acc, 1, n_acc);
}

/// With segments run in parallel: folds every segment's partial into slot 0, in segment order.
template <class T>
void fold_segments(const reduction_plan& p, T* acc, std::size_t n_acc) {
  if (p.over_segments)
    for (std::size_t s = 1; s < p.segments; ++s) fold_slot(acc, s, n_acc);
}

}  // namespace softdiff::nn::detail
