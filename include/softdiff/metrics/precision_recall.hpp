#pragma once
// Improved precision and recall (Kynkaanniemi et al., "Improved Precision and Recall Metric for
// Assessing Generative Models", NeurIPS 2019). Each set approximates its manifold by balls around
// its points, the radius of point x being the distance to its k-th nearest neighbour in its own
// set (k = 3 by default):
//   f(y, X) = 1 if ||y - x|| <= NN_k(x, X) for some x in X, else 0,
//   precision = mean over generated g of f(g, real),   recall = mean over real r of f(r, generated).
// Works on any features (rows) or on images in pixel space; distances by blocked GEMM.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/metrics/nearest_neighbours.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::metrics {

struct precision_recall_result {
  double precision = 0;
  double recall = 0;
};

namespace detail {

/// The squared k-NN radius of every point of x within x (itself excluded).
template <class T>
[[nodiscard]] std::vector<double> squared_knn_radii(const point_cloud<T>& x, std::size_t k) {
  const auto nn = nearest_neighbours(x, x, k, true);
  std::vector<double> r(x.rows);
  for (std::size_t i = 0; i < x.rows; ++i) r[i] = nn.distance[i * k + k - 1] * nn.distance[i * k + k - 1];
  return r;
}

/// Share of the rows of y inside the k-NN manifold of x (balls of squared radii r2 around x).
template <class T>
[[nodiscard]] double manifold_coverage(const point_cloud<T>& y, const point_cloud<T>& x, const std::vector<double>& r2) {
  std::vector<unsigned char> inside(y.rows, 0);
  for_each_distance_block(y, x, [&](std::size_t q0, std::size_t q1, std::size_t r0, std::size_t r1, const T* tile,
                                    std::size_t ld) {
    const auto rows = static_cast<std::int64_t>(q1 - q0);
#pragma omp parallel for schedule(static) if (rows * static_cast<std::int64_t>(r1 - r0) > 65536)
    for (std::int64_t qi = 0; qi < rows; ++qi) {
      const std::size_t q = q0 + static_cast<std::size_t>(qi);
      if (inside[q]) continue;
      const T* row = tile + static_cast<std::size_t>(qi) * ld;
      for (std::size_t r = r0; r < r1; ++r)
        if (static_cast<double>(row[r - r0]) <= r2[r]) {
          inside[q] = 1;
          break;
        }
    }
  });
  std::size_t count = 0;
  for (const unsigned char v : inside) count += v;
  return static_cast<double>(count) / static_cast<double>(y.rows);
}

}  // namespace detail

/// Precision and recall of `generated` with respect to `real` (rows = samples, same dimension);
/// each set needs more than k points.
template <class T>
[[nodiscard]] precision_recall_result precision_recall(const detail::point_cloud<T>& real,
                                                       const detail::point_cloud<T>& generated, std::size_t k = 3) {
  detail::check_cloud(real, "precision_recall: real set");
  detail::check_cloud(generated, "precision_recall: generated set");
  detail::check_same_dimension(real, generated, "precision_recall");
  softdiff::detail::require(k >= 1, "precision_recall: k must be >= 1");
  softdiff::detail::require(real.rows > k && generated.rows > k, "precision_recall: each set needs more than k = ", k,
                            " points (real ", real.rows, ", generated ", generated.rows, ")");
  const auto real_r2 = detail::squared_knn_radii(real, k);
  const auto gen_r2 = detail::squared_knn_radii(generated, k);
  return {detail::manifold_coverage(generated, real, real_r2), detail::manifold_coverage(real, generated, gen_r2)};
}

template <class T>
[[nodiscard]] precision_recall_result precision_recall(const batch<T>& real, const batch<T>& generated,
                                                       std::size_t k = 3) {
  return precision_recall(detail::points_of(real), detail::points_of(generated), k);
}

template <class T>
[[nodiscard]] precision_recall_result precision_recall(const xt::xtensor<T, 2>& real,
                                                       const xt::xtensor<T, 2>& generated, std::size_t k = 3) {
  return precision_recall(detail::points_of(real), detail::points_of(generated), k);
}

}  // namespace softdiff::metrics
