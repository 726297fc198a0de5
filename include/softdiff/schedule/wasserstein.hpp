#pragma once
// The Wasserstein scheduler of Soft Diffusion (section 3.3, appendix C). Candidate levels
// theta_0 (clean) < theta_1 < ... < theta_T of any CorruptionOperator; the corrupted datasets
// D_i = {C(theta_i) x : x in a data slice}; edge weights M(D_i, D_j) = a Wasserstein distance
// between them where it is at most eps, else infinite (eq. 20, the eps-graph); the schedule is
// the shortest path from D_0 to D_T with eps tuned by bisection so that the path has a target
// number of nodes (32), linearly interpolated to continuous t, after the noise stage of
// schedule::two_stage (sigma geometric from 0.01 to sigma_max during the first noise_fraction of
// t, then held).
//
// M is estimated in one of two ways, always with the same clean images x at every level (so that
// M(D_i, D_i) = 0 and nearby levels are compared image by image):
//  - distance_estimate::sinkhorn (the paper's): W2 from log-domain Sinkhorn (schedule/sinkhorn.hpp)
//    on a seeded random sub-slice of `sinkhorn_points` images: sqrt of the debiased Sinkhorn
//    divergence S_eps = OT_eps(D_i, D_j) - (OT_eps(D_i, D_i) + OT_eps(D_j, D_j)) / 2 by default
//    (less entropic bias, fast convergence), or sqrt(<P, C>) of one solve (debiased = false);
//    with sinkhorn_batches = B > 1, M^2 is the mean of the estimates on B disjoint sub-slices;
//  - distance_estimate::sliced: sliced W2 (metrics/sliced_wasserstein.hpp) on the whole slice with
//    `projections` fixed directions, each level's sorted projections kept as `quantiles` quantile
//    means (computed once per level, so a pair costs K Q operations).
// Only pairs that a path can use are evaluated (epsilon_graph.hpp): about target_nodes * log2(T)
// per bisection step, never all T^2. Among the paths with the target number of nodes at the
// smallest feasible eps, the default picks the one with the most even steps (least sum M^2);
// even_steps = false picks the least sum M (see epsilon_graph.hpp for why that is degenerate).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/metrics/sliced_wasserstein.hpp"
#include "softdiff/random.hpp"
#include "softdiff/schedule/detail/level_path.hpp"
#include "softdiff/schedule/epsilon_graph.hpp"
#include "softdiff/schedule/sinkhorn.hpp"
#include "softdiff/schedule/tabulated.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::schedule {

enum class distance_estimate { sinkhorn, sliced };

struct wasserstein_options {
  candidate_level_options levels{};
  std::size_t target_nodes = 32;
  distance_estimate distance = distance_estimate::sinkhorn;
  std::size_t sinkhorn_points = 256;  // images per Sinkhorn estimate (all of the slice if it is smaller)
  std::size_t sinkhorn_batches = 1;   // disjoint sub-slices averaged: M^2 = mean of their estimates
  // Sinkhorn as the scheduler runs it: the debiased divergence, its cross solve stopped at converged
  // marginals or 50 iterations (epsilon-scaling included) and its self solves run as many. Pairs of
  // strongly blurred datasets are near-degenerate OT problems whose plans converge slowly; truncated
  // alike, the shortfalls of the three dual values largely cancel and the estimate is within about
  // 1% of the converged one (docs/performance.md, "Wasserstein scheduler"). debiased = false uses sqrt(<P, C>) of
  // one solve instead (the plain Sinkhorn cost; give it more iterations).
  sinkhorn_options sinkhorn{.cost_tolerance = 0, .max_iterations = 50};
  bool debiased = true;
  std::size_t projections = 64;       // sliced estimate
  std::size_t quantiles = 256;        // sliced estimate (0 keeps every sorted projection)
  std::uint64_t seed = 0;             // sub-slice choice and projection directions
  double epsilon = 0;                 // > 0: the paper's fixed-eps shortest path, no bisection
  double relative_tolerance = 1e-3;   // bisection on eps
  std::size_t max_bisection_steps = 60;
  std::size_t max_band_width = 6;
  bool even_steps = true;             // among target-node paths: least sum M^2 (true) or sum M (false)
  std::size_t cache_levels = 64;      // corrupted sub-slices kept in memory (Sinkhorn)
  noise_stage_options noise{};
  progress_callback progress;
};

/// M(D_i, D_j) between the corrupted datasets at candidate levels i and j, on demand.
/// Keeps a reference to `op` and `slice`, which must outlive it.
template <CorruptionOperator Op>
class level_distances {
public:
  using T = typename Op::scalar_type;

  level_distances(const Op& op, const batch<T>& slice, std::vector<double> levels, const wasserstein_options& o)
      : op_(op), slice_(slice), levels_(std::move(levels)), o_(o) {
    using softdiff::detail::require;
    require(slice.shape()[0] > 0, "wasserstein scheduler: the data slice is empty");
    require(slice.size() > 0, "wasserstein scheduler: the data slice has images of size 0 (",
            to_string(shape_of(slice)), ")");
    check_finite(slice, "wasserstein scheduler: data slice");
    require(levels_.size() >= 2, "wasserstein scheduler: needs at least 2 levels, got ", levels_.size());
    require(levels_.front() == op.min_level(), "wasserstein scheduler: the first level ", levels_.front(),
            " is not the clean level ", op.min_level(), " of ", op.name());
    for (std::size_t k = 0; k < levels_.size(); ++k) {
      check_level(op, levels_[k], "wasserstein scheduler");
      if (k > 0)
        require(levels_[k] > levels_[k - 1], "wasserstein scheduler: levels not increasing at index ", k, ": ",
                levels_[k - 1], " then ", levels_[k]);
    }
    if (o.distance == distance_estimate::sinkhorn) {
      require(o.sinkhorn_points >= 2, "wasserstein scheduler: sinkhorn_points = ", o.sinkhorn_points, " must be >= 2");
      require(o.sinkhorn_batches >= 1, "wasserstein scheduler: sinkhorn_batches must be >= 1");
      const std::size_t n = slice.shape()[0];
      batches_ = std::min(o.sinkhorn_batches, std::max<std::size_t>(1, n / std::min(n, o.sinkhorn_points)));
      points_ = std::min(n / batches_, o.sinkhorn_points);
      require(o.cache_levels >= 2, "wasserstein scheduler: cache_levels = ", o.cache_levels, " must be >= 2");
      sub_ = detail::gather_images(slice, detail::seeded_subset(n, batches_ * points_, o.seed));
      slot_of_.assign(levels_.size(), -1);
      capacity_ = std::min(o.cache_levels, levels_.size());
      slots_.reserve(capacity_);  // never reallocated: references to cached slices stay valid
    } else {
      require(o.projections >= 1, "wasserstein scheduler: projections must be >= 1");
      const std::size_t d = slice.size() / slice.shape()[0];
      projector_.emplace(d, o.projections, noise_source{o.seed, stream_for(stream_purpose::user, 0x5ced)});
      profiles_.resize(levels_.size());
    }
  }

  double operator()(std::size_t i, std::size_t j) {
    if (o_.distance == distance_estimate::sliced) return metrics::sliced_distance(profile(i), profile(j));
    const batch<T>& x = corrupted(i);
    const batch<T>& y = corrupted(j);
    ++evaluations_;
    const std::size_t d = x.size() / x.shape()[0];
    double sum = 0;
    for (std::size_t b = 0; b < batches_; ++b) {
      const metrics::detail::point_cloud<T> xb{x.data() + b * points_ * d, points_, d};
      const metrics::detail::point_cloud<T> yb{y.data() + b * points_ * d, points_, d};
      if (o_.debiased) sum += solver_.divergence(xb, yb, o_.sinkhorn).divergence;
      else sum += solver_.solve(xb, yb, o_.sinkhorn).transport_cost;
    }
    return std::sqrt(std::max(0.0, sum / static_cast<double>(batches_)));
  }

  [[nodiscard]] const std::vector<double>& levels() const { return levels_; }
  /// Sinkhorn solves so far (sliced: 0), and operator applications on the slice or sub-slice.
  [[nodiscard]] std::size_t evaluations() const { return evaluations_; }
  [[nodiscard]] std::size_t corruptions() const { return corruptions_; }

private:
  const batch<T>& corrupted(std::size_t level) {
    ++clock_;
    if (slot_of_[level] >= 0) {
      const auto s = static_cast<std::size_t>(slot_of_[level]);
      used_[s] = clock_;
      return slots_[s];
    }
    std::size_t s;
    if (slots_.size() < capacity_) {
      s = slots_.size();
      slots_.emplace_back();
      owner_.push_back(level);
      used_.push_back(0);
    } else {
      s = static_cast<std::size_t>(std::min_element(used_.begin(), used_.end()) - used_.begin());
      slot_of_[owner_[s]] = -1;
    }
    op_.apply(levels_[level], sub_, slots_[s]);
    ++corruptions_;
    owner_[s] = level;
    used_[s] = clock_;
    slot_of_[level] = static_cast<int>(s);
    return slots_[s];
  }

  const metrics::sliced_profile& profile(std::size_t level) {
    if (!profiles_[level]) {
      op_.apply(levels_[level], slice_, work_);
      ++corruptions_;
      profiles_[level] = projector_->profile(work_, o_.quantiles);
    }
    return *profiles_[level];
  }

  const Op& op_;
  const batch<T>& slice_;
  std::vector<double> levels_;
  wasserstein_options o_;
  std::size_t evaluations_ = 0, corruptions_ = 0;
  // Sinkhorn: the sub-slice and an LRU cache of its corrupted copies
  batch<T> sub_;  // batches_ consecutive blocks of points_ images
  std::size_t batches_ = 1, points_ = 0;
  sinkhorn_solver<T> solver_;
  std::vector<batch<T>> slots_;
  std::vector<std::size_t> owner_, used_;
  std::vector<int> slot_of_;
  std::size_t clock_ = 0, capacity_ = 0;
  // sliced: one profile per level
  std::optional<metrics::sliced_projector<T>> projector_;
  std::vector<std::optional<metrics::sliced_profile>> profiles_;
  batch<T> work_;
};

struct wasserstein_result {
  std::vector<double> levels;       // candidates theta_0..theta_T
  epsilon_path path;                // nodes index `levels`
  std::vector<double> path_levels;  // levels[path.nodes[k]]
  std::size_t sinkhorn_pairs = 0;   // pairs of levels estimated with Sinkhorn (3 solves each when debiased)
  std::size_t corruptions = 0;      // operator applications on the slice or sub-slice
  tabulated schedule;
};

/// The Wasserstein schedule for `op` on a data slice (NCHW images in the operator's value range).
template <CorruptionOperator Op>
[[nodiscard]] wasserstein_result wasserstein_schedule(const Op& op, const batch<typename Op::scalar_type>& slice,
                                                      const wasserstein_options& o = {}) {
  std::vector<double> levels = candidate_levels(op, o.levels);
  level_distances<Op> distances(op, slice, levels, o);
  epsilon_path path;
  if (o.epsilon > 0) {
    path = shortest_path_at(levels.size(), distances, o.epsilon);
  } else {
    epsilon_search_options s;
    s.target_nodes = o.target_nodes;
    s.relative_tolerance = o.relative_tolerance;
    s.max_bisection_steps = o.max_bisection_steps;
    s.max_band_width = o.max_band_width;
    s.even_steps = o.even_steps;
    path = shortest_epsilon_path(levels.size(), distances, s, o.progress);
  }
  std::vector<double> path_levels;
  for (const std::size_t k : path.nodes) path_levels.push_back(levels[k]);
  tabulated table = detail::tabulate_path(path_levels, o.noise, op.name());
  if (o.progress) o.progress("done", 1.0);
  return {std::move(levels), std::move(path), std::move(path_levels), distances.evaluations(),
          distances.corruptions(), std::move(table)};
}

}  // namespace softdiff::schedule
