#pragma once
// Nearest neighbours in pixel (or feature) space: for each query (e.g. a generated sample), the
// indices of and Euclidean distances to its k nearest reference points (e.g. training images),
// nearest first. Soft Diffusion's appendix F.4 shows each sample beside its nearest training
// images to show that the model does not copy the training set.
// Candidates come from blocked GEMM distances (||q||^2 + ||r||^2 - 2 q.r); the reported distances
// of the k chosen are then recomputed exactly in double and the k re-sorted by them (ties by index).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::metrics {

struct neighbours {
  std::size_t k = 0;
  std::size_t queries = 0;
  std::vector<std::size_t> index;  // queries x k, row-major, nearest first
  std::vector<double> distance;    // Euclidean distance, same layout

  [[nodiscard]] std::size_t nearest(std::size_t query) const { return index[query * k]; }
  [[nodiscard]] double nearest_distance(std::size_t query) const { return distance[query * k]; }
};

/// The k nearest rows of `reference` for each row of `queries`. With exclude_self (queries and
/// reference the same set), point i is not its own neighbour.
template <class T>
[[nodiscard]] neighbours nearest_neighbours(const detail::point_cloud<T>& queries,
                                            const detail::point_cloud<T>& reference, std::size_t k = 1,
                                            bool exclude_self = false) {
  detail::check_cloud(queries, "nearest_neighbours: queries");
  detail::check_cloud(reference, "nearest_neighbours: reference set");
  detail::check_same_dimension(queries, reference, "nearest_neighbours");
  softdiff::detail::require(k >= 1, "nearest_neighbours: k must be >= 1");
  const std::size_t available = reference.rows - (exclude_self ? 1 : 0);
  softdiff::detail::require(k <= available, "nearest_neighbours: k = ", k, " but the reference set has only ",
                            available, exclude_self ? " other" : "", " point(s)");
  softdiff::detail::require(!exclude_self || queries.rows == reference.rows,
                            "nearest_neighbours: exclude_self needs the same set as queries and reference");
  const std::size_t nq = queries.rows;
  const double inf = std::numeric_limits<double>::infinity();
  // per query: the k best (squared GEMM distance, index), kept sorted
  std::vector<double> best_d(nq * k, inf);
  std::vector<std::size_t> best_i(nq * k, 0);
  detail::for_each_distance_block(queries, reference, [&](std::size_t q0, std::size_t q1, std::size_t r0,
                                                          std::size_t r1, const T* tile, std::size_t ld) {
    const auto rows = static_cast<std::int64_t>(q1 - q0);
#pragma omp parallel for schedule(static) if (rows * static_cast<std::int64_t>(r1 - r0) > 65536)
    for (std::int64_t qi = 0; qi < rows; ++qi) {
      const std::size_t q = q0 + static_cast<std::size_t>(qi);
      double* bd = best_d.data() + q * k;
      std::size_t* bi = best_i.data() + q * k;
      const T* row = tile + static_cast<std::size_t>(qi) * ld;
      for (std::size_t r = r0; r < r1; ++r) {
        const double v = static_cast<double>(row[r - r0]);
        if (v >= bd[k - 1] || (exclude_self && r == q)) continue;
        std::size_t pos = k - 1;
        while (pos > 0 && bd[pos - 1] > v) {
          bd[pos] = bd[pos - 1];
          bi[pos] = bi[pos - 1];
          --pos;
        }
        bd[pos] = v;
        bi[pos] = r;
      }
    }
  });
  neighbours out{k, nq, std::move(best_i), std::vector<double>(nq * k)};
  const std::size_t d = queries.cols;
  std::vector<std::pair<double, std::size_t>> order(k);
  for (std::size_t q = 0; q < nq; ++q) {
    for (std::size_t s = 0; s < k; ++s) {
      const std::size_t r = out.index[q * k + s];
      order[s] = {std::sqrt(detail::squared_distance(queries.row(q), reference.row(r), d)), r};
    }
    std::sort(order.begin(), order.end());
    for (std::size_t s = 0; s < k; ++s) {
      out.distance[q * k + s] = order[s].first;
      out.index[q * k + s] = order[s].second;
    }
  }
  return out;
}

/// For each sample image, the k nearest training images (same image shape required).
template <class T>
[[nodiscard]] neighbours nearest_neighbours(const batch<T>& samples, const batch<T>& training, std::size_t k = 1) {
  softdiff::detail::require(shape_of(samples)[1] == shape_of(training)[1] &&
                                shape_of(samples)[2] == shape_of(training)[2] &&
                                shape_of(samples)[3] == shape_of(training)[3],
                            "nearest_neighbours: image shapes differ: samples ", to_string(shape_of(samples)),
                            ", training ", to_string(shape_of(training)));
  return nearest_neighbours(detail::points_of(samples), detail::points_of(training), k);
}

}  // namespace softdiff::metrics
