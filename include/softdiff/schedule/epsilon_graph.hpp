#pragma once
// The epsilon-graph of Soft Diffusion (section 3.3, appendix C, eq. 20) over candidate corruption
// levels 0 = theta_0 < theta_1 < ... < theta_T, as nodes 0..n-1 (n = T + 1):
//   M_eps(D_i, D_j) = M(D_i, D_j)  if M(D_i, D_j) <= eps,   +inf otherwise     (eq. 20)
// with edges only from lower to higher levels (i < j). The schedule is a shortest path from D_0
// (clean) to D_T (most corrupted); eps is tuned by bisection so that the path has a target number
// of nodes.
//
// Distances are evaluated lazily and memoised: `distance(i, j)` (i < j) is called only for pairs a
// path can use. The search assumes the distance is monotone along the ordered levels,
//   M(i, j) <= M(i, j + 1)  and  M(i + 1, j) <= M(i, j),
// as a Wasserstein distance between ever more corrupted datasets is. Then, for a given eps, node i
// connects to the contiguous range i + 1..r(i), found by binary search, and the fewest hops from 0
// to n - 1 are found greedily (always jump to r(i)). With K = target nodes:
//  1. bisection on eps finds the smallest eps for which a path of at most K nodes exists. The
//     bracket starts at M(0, n-1) / (K - 1) (a lower bound by the triangle inequality) and
//     doubles until feasible (M(0, n-1), one hop, always is); a feasible step lowers the upper
//     end straight to the largest edge of the greedy path found;
//  2. at that eps, node k of any K-node path lies in a band [B_k, F_k] (F_k: greedy forward from
//     0; B_k: greedy backward from n - 1), so a dynamic programme over the bands finds the path of
//     exactly K nodes that is shortest in the eps-graph. With the node count fixed, the paper's
//     length sum M is nearly the same for every such path (W2 is close to additive along a
//     corruption family), and its minimum tends to spend the spare node on a tiny step; so by
//     default (even_steps) the programme minimises sum M^2 instead, which among paths of K nodes
//     prefers equal steps; even_steps = false minimises sum M. Bands wider than `max_band_width`
//     are thinned to evenly spaced nodes that always include both ends (the envelope paths stay
//     feasible), which bounds the number of distances evaluated.
// Whatever the distances, every edge of the returned path has been evaluated and is <= eps.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <string_view>
#include <vector>

#include "softdiff/error.hpp"

namespace softdiff::schedule {

/// Progress of long work: a stage name and the fraction of it done, in [0, 1].
using progress_callback = std::function<void(std::string_view stage, double fraction)>;

struct epsilon_search_options {
  std::size_t target_nodes = 32;         // K, including D_0 and D_T
  double relative_tolerance = 1e-3;      // bisection stops when hi - lo <= tolerance * hi
  std::size_t max_bisection_steps = 60;
  std::size_t max_band_width = 6;        // nodes per band in the final dynamic programme
  bool even_steps = true;                // final path: least sum M^2 (true) or least sum M (false)
};

struct epsilon_path {
  std::vector<std::size_t> nodes;  // increasing, nodes.front() = 0, nodes.back() = n - 1
  std::vector<double> steps;       // M(nodes[k], nodes[k + 1])
  double epsilon = 0;              // every step is <= epsilon
  double length = 0;               // sum of steps (sum M)
  std::size_t bisection_steps = 0;
  std::size_t evaluations = 0;     // distinct distances computed
};

namespace detail {

/// Memoised M(i, j), one ordered map per row i, with the monotone frontier searches.
template <class Distance>
class lazy_distances {
public:
  lazy_distances(std::size_t n, Distance& d) : rows_(n), d_(d) {}

  double operator()(std::size_t i, std::size_t j) {
    auto& row = rows_[i];
    if (auto it = row.find(j); it != row.end()) return it->second;
    const double v = static_cast<double>(d_(i, j));
    softdiff::detail::require(std::isfinite(v) && v >= 0, "epsilon graph: distance between levels ", i, " and ", j,
                              " is ", v, " (expected a finite number >= 0)");
    row.emplace(j, v);
    ++evaluations_;
    return v;
  }

  /// Largest j in (i, n) with M(i, j) <= eps, or i when even M(i, i + 1) > eps. Searches outwards
  /// from i (first at i + hint, then doubling the step) before bisecting, so that it probes pairs of
  /// nearby levels rather than far ones, which are the slow ones for Sinkhorn.
  std::size_t forward_frontier(std::size_t i, double eps, std::size_t hint = 1) {
    const std::size_t n = rows_.size();
    std::size_t ok = i, bad = n;  // M(i, ok) <= eps (ok = i trivially), M(i, j) > eps for j >= bad
    for (const auto& [j, v] : rows_[i]) {  // tighten with what is already known (increasing j)
      if (j >= bad) break;
      if (v <= eps) ok = j;
      else bad = j;
    }
    std::size_t step = std::max<std::size_t>(hint, 1);
    while (bad == n) {
      const std::size_t j = std::min(ok + step, n - 1);
      if ((*this)(i, j) <= eps) {
        ok = j;
        if (j == n - 1) return ok;
      } else {
        bad = j;
      }
      step *= 2;
    }
    while (bad - ok > 1) {
      const std::size_t mid = ok + (bad - ok) / 2;
      if ((*this)(i, mid) <= eps) ok = mid;
      else bad = mid;
    }
    return ok;
  }

  /// Smallest i in [0, j) with M(i, j) <= eps, or j when even M(j - 1, j) > eps.
  std::size_t backward_frontier(std::size_t j, double eps) {
    if (j == 0) return 0;
    if ((*this)(j - 1, j) > eps) return j;
    if ((*this)(0, j) <= eps) return 0;
    std::size_t bad = 0, ok = j - 1;
    while (ok - bad > 1) {
      const std::size_t mid = bad + (ok - bad) / 2;
      if ((*this)(mid, j) <= eps) ok = mid;
      else bad = mid;
    }
    return ok;
  }

  [[nodiscard]] std::size_t size() const { return rows_.size(); }
  [[nodiscard]] std::size_t evaluations() const { return evaluations_; }

private:
  std::vector<std::map<std::size_t, double>> rows_;
  Distance& d_;
  std::size_t evaluations_ = 0;
};

struct greedy_walk {
  bool reached = false;
  std::vector<std::size_t> nodes;
  double bottleneck = 0;
};

/// Fewest-hop walk from 0 to n - 1 in the eps-graph, giving up after max_hops hops.
template <class Lazy>
greedy_walk greedy_forward(Lazy& m, double eps, std::size_t max_hops) {
  greedy_walk w;
  const std::size_t last = m.size() - 1;
  std::size_t i = 0, hop = 1;
  w.nodes.push_back(0);
  while (i < last) {
    if (w.nodes.size() - 1 >= max_hops) return w;
    const std::size_t r = m.forward_frontier(i, eps, hop);
    if (r == i) return w;
    hop = r - i;
    w.bottleneck = std::max(w.bottleneck, m(i, r));
    i = r;
    w.nodes.push_back(r);
  }
  w.reached = true;
  return w;
}

inline void check_graph_size(std::size_t node_count, std::size_t target_nodes) {
  softdiff::detail::require(node_count >= 2, "epsilon graph: needs at least 2 levels (clean and corrupted), got ",
                            node_count);
  softdiff::detail::require(target_nodes >= 2, "epsilon graph: target_nodes = ", target_nodes, " must be >= 2");
  softdiff::detail::require(target_nodes <= node_count, "epsilon graph: fewer candidate levels (", node_count,
                            ", including the clean level) than the target number of nodes (", target_nodes, ")");
}

}  // namespace detail

/// The shortest path (least sum of M, then fewest nodes) from node 0 to node n - 1 in the eps-graph
/// of eq. 20 for a given eps: the paper's fixed-epsilon construction, by dynamic programming on
/// the DAG. Evaluates every usable edge (n times the frontier width). Throws if no path exists.
template <class Distance>
[[nodiscard]] epsilon_path shortest_path_at(std::size_t node_count, Distance&& distance, double epsilon) {
  detail::check_graph_size(node_count, 2);
  softdiff::detail::require(std::isfinite(epsilon) && epsilon >= 0, "epsilon graph: epsilon = ", epsilon,
                            " must be a finite number >= 0");
  detail::lazy_distances m(node_count, distance);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> best(node_count, inf);
  std::vector<std::size_t> hops(node_count, 0), parent(node_count, 0);
  best[0] = 0;
  for (std::size_t i = 0; i + 1 < node_count; ++i) {
    if (best[i] == inf) continue;
    const std::size_t r = m.forward_frontier(i, epsilon);
    for (std::size_t j = i + 1; j <= r; ++j) {
      const double v = m(i, j);
      if (v > epsilon) continue;  // a dip below eps after a larger value is not trusted
      const double c = best[i] + v;
      if (c < best[j] || (c == best[j] && hops[i] + 1 < hops[j])) {
        best[j] = c;
        hops[j] = hops[i] + 1;
        parent[j] = i;
      }
    }
  }
  if (best[node_count - 1] == inf) {
    std::size_t stuck = 0;
    for (std::size_t j = 0; j < node_count; ++j)
      if (best[j] < inf) stuck = j;
    throw error(softdiff::detail::concat("epsilon graph: no path from level 0 to level ", node_count - 1,
                                         " with every step <= epsilon = ", epsilon, ": the furthest reachable level is ",
                                         stuck, " and M(", stuck, ", ", stuck + 1, ") = ", m(stuck, stuck + 1),
                                         "; increase epsilon"));
  }
  epsilon_path p;
  for (std::size_t j = node_count - 1;; j = parent[j]) {
    p.nodes.push_back(j);
    if (j == 0) break;
  }
  std::reverse(p.nodes.begin(), p.nodes.end());
  for (std::size_t k = 0; k + 1 < p.nodes.size(); ++k) p.steps.push_back(m(p.nodes[k], p.nodes[k + 1]));
  p.epsilon = epsilon;
  p.length = best[node_count - 1];
  p.evaluations = m.evaluations();
  return p;
}

/// Bisection on eps for a path of exactly opt.target_nodes nodes (see the header comment).
template <class Distance>
[[nodiscard]] epsilon_path shortest_epsilon_path(std::size_t node_count, Distance&& distance,
                                                 const epsilon_search_options& opt = {},
                                                 const progress_callback& progress = {}) {
  const std::size_t K = opt.target_nodes;
  detail::check_graph_size(node_count, K);
  softdiff::detail::require(opt.relative_tolerance > 0 && opt.relative_tolerance < 1,
                            "epsilon graph: relative_tolerance = ", opt.relative_tolerance, " must lie in (0, 1)");
  softdiff::detail::require(opt.max_band_width >= 2, "epsilon graph: max_band_width = ", opt.max_band_width,
                            " must be >= 2");
  detail::lazy_distances m(node_count, distance);
  const std::size_t last = node_count - 1, max_hops = K - 1;
  epsilon_path p;

  // 1. the smallest eps with a path of at most K nodes. By the triangle inequality a K-node path
  //    has a step >= M(0, n-1) / (K - 1); the bracket grows from there, so that the search probes
  //    steps of about the final size.
  double lo = 0, hi = m(0, last);
  for (double guess = hi / static_cast<double>(K - 1); guess < hi && K > 2; guess *= 2) {
    const auto w = detail::greedy_forward(m, guess, max_hops);
    ++p.bisection_steps;
    if (progress) progress("epsilon bracket", 0.0);
    if (w.reached) {
      hi = w.bottleneck;
      break;
    }
    lo = guess;
  }
  // each step at least halves hi - lo, so about log2((hi - lo) / (tol hi)) steps remain: the
  // progress fraction counts against that (capped at the step limit)
  const double expected = std::min(
      static_cast<double>(opt.max_bisection_steps - std::min(p.bisection_steps, opt.max_bisection_steps)),
      std::max(1.0, std::ceil(std::log2(std::max(1.0, (hi - lo) / (opt.relative_tolerance * hi))))));
  const std::size_t bracket_steps = p.bisection_steps;
  while (p.bisection_steps < opt.max_bisection_steps && hi - lo > opt.relative_tolerance * hi && K > 2) {
    const double mid = 0.5 * (lo + hi);
    const auto w = detail::greedy_forward(m, mid, max_hops);
    if (w.reached) hi = w.bottleneck;
    else lo = mid;
    ++p.bisection_steps;
    if (progress)
      progress("epsilon bisection",
               std::min(1.0, static_cast<double>(p.bisection_steps - bracket_steps) / std::max(1.0, expected)));
  }
  const double eps = hi;

  // 2. bands [lower_k, upper_k] for node k of a K-node path, then the least-sum path through them
  const auto forward = detail::greedy_forward(m, eps, max_hops);
  softdiff::detail::require(forward.reached, "epsilon graph: the greedy path stopped reaching the last level at "
                                             "epsilon = ", eps, " (the distance is not monotone in the level)");
  std::vector<std::size_t> lower(K), upper(K);
  std::size_t b = last;
  for (std::size_t k = K; k-- > 0;) {
    const std::size_t f = k < forward.nodes.size() ? forward.nodes[k] : last;
    upper[k] = std::min(f, last - (K - 1 - k));
    lower[k] = std::max(b, k);
    if (k > 0) {
      const std::size_t prev = b == 0 ? 0 : m.backward_frontier(b, eps);
      softdiff::detail::require(prev < b || b == 0, "epsilon graph: no step into level ", b, " is <= epsilon = ",
                                eps, " (the distance is not monotone in the level)");
      b = prev;
    }
    softdiff::detail::require(lower[k] <= upper[k], "epsilon graph: empty band for node ", k, " (levels ",
                              lower[k], "..", upper[k], "); the distance is not monotone in the level");
  }
  lower[0] = upper[0] = 0;
  std::vector<std::vector<std::size_t>> band(K);
  for (std::size_t k = 0; k < K; ++k) {
    const std::size_t width = upper[k] - lower[k] + 1;
    const std::size_t take = std::min(width, opt.max_band_width);
    for (std::size_t s = 0; s < take; ++s)
      band[k].push_back(take == 1 ? lower[k] : lower[k] + (s * (width - 1) + (take - 1) / 2) / (take - 1));
    band[k].front() = lower[k];
    band[k].back() = upper[k];
    band[k].erase(std::unique(band[k].begin(), band[k].end()), band[k].end());
  }
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(K);
  std::vector<std::vector<std::size_t>> parent(K);
  best[0] = {0.0};
  parent[0] = {0};
  for (std::size_t k = 1; k < K; ++k) {
    best[k].assign(band[k].size(), inf);
    parent[k].assign(band[k].size(), 0);
    for (std::size_t a = 0; a < band[k].size(); ++a)
      for (std::size_t c = 0; c < band[k - 1].size(); ++c) {
        const std::size_t from = band[k - 1][c], to = band[k][a];
        if (from >= to || best[k - 1][c] == inf) continue;
        const double v = m(from, to);
        if (v > eps) continue;
        const double w = opt.even_steps ? v * v : v;
        if (best[k - 1][c] + w < best[k][a]) {
          best[k][a] = best[k - 1][c] + w;
          parent[k][a] = c;
        }
      }
    if (progress) progress("shortest path", static_cast<double>(k) / static_cast<double>(K - 1));
  }
  softdiff::detail::require(best[K - 1][0] < inf, "epsilon graph: no path of ", K, " nodes with every step <= ", eps,
                            " (the distance is not monotone in the level)");
  p.nodes.assign(K, 0);
  for (std::size_t k = K - 1, a = 0;; --k) {
    p.nodes[k] = band[k][a];
    if (k == 0) break;
    a = parent[k][a];
  }
  for (std::size_t k = 0; k + 1 < K; ++k) {
    p.steps.push_back(m(p.nodes[k], p.nodes[k + 1]));
    p.length += p.steps.back();
  }
  p.epsilon = eps;
  p.evaluations = m.evaluations();
  return p;
}

}  // namespace softdiff::schedule
