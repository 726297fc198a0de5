#pragma once
// Point clouds for optimal transport and the sample metrics: a batch of N images is N points
// in R^(C*H*W), one flattened image per row. Squared Euclidean distances come from one GEMM,
//   ||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 <a_i, b_j>,
// with the norms accumulated in double and negative round-off clamped to 0.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::metrics::detail {

/// A read-only view of `rows` points of dimension `cols`, row-major and contiguous.
template <class T>
struct point_cloud {
  const T* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  [[nodiscard]] const T* row(std::size_t i) const { return data + i * cols; }
};

/// The images of an NCHW batch as points (one flattened image per row).
template <class T>
[[nodiscard]] point_cloud<T> points_of(const batch<T>& x) {
  return {x.data(), x.shape()[0], x.shape()[1] * x.shape()[2] * x.shape()[3]};
}

/// The rows of a 2-D tensor (e.g. network features) as points.
template <class T>
[[nodiscard]] point_cloud<T> points_of(const xt::xtensor<T, 2>& x) {
  return {x.data(), x.shape()[0], x.shape()[1]};
}

/// Throws naming `what` unless the cloud has at least `min_rows` points of positive dimension,
/// all entries finite.
template <class T>
void check_cloud(const point_cloud<T>& p, const char* what, std::size_t min_rows = 1) {
  softdiff::detail::require(p.rows >= min_rows, what, ": needs at least ", min_rows, " point(s), got ", p.rows);
  softdiff::detail::require(p.cols > 0, what, ": points have dimension 0");
  const std::size_t n = p.rows * p.cols;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(p.data[i]))
      throw error(softdiff::detail::concat(what, ": non-finite value ", p.data[i], " in point ", i / p.cols,
                                           ", coordinate ", i % p.cols));
}

/// Throws naming `what` unless both clouds have the same dimension.
template <class T>
void check_same_dimension(const point_cloud<T>& a, const point_cloud<T>& b, const char* what) {
  softdiff::detail::require(a.cols == b.cols, what, ": point dimensions differ: ", a.cols, " vs ", b.cols,
                            " (images of different shapes?)");
}

/// out[i] = ||p_i||^2, accumulated in double.
template <class T>
void row_squared_norms(const point_cloud<T>& p, std::vector<double>& out) {
  out.resize(p.rows);
  const T* x = p.data;
  const std::size_t d = p.cols;
  double* o = out.data();
  const auto n = static_cast<std::int64_t>(p.rows);
#pragma omp parallel for schedule(static) if (n * static_cast<std::int64_t>(d) > 65536)
  for (std::int64_t i = 0; i < n; ++i) {
    const T* r = x + static_cast<std::size_t>(i) * d;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (std::size_t k = 0; k < d; ++k) s += static_cast<double>(r[k]) * static_cast<double>(r[k]);
    o[i] = s;
  }
}

/// out[i * ld + (j - b_begin)] = ||a_i - b_j||^2 for all i and j in [b_begin, b_end): one GEMM
/// (threaded by BLAS) and a norm pass. `ld` >= b_end - b_begin.
template <class T>
void squared_distances(const point_cloud<T>& a, const std::vector<double>& a_norms, const point_cloud<T>& b,
                       const std::vector<double>& b_norms, std::size_t b_begin, std::size_t b_end, T* out,
                       std::size_t ld) {
  const std::size_t m = b_end - b_begin;
  if (a.rows == 0 || m == 0) return;
  backend::cpu::gemm<T>(false, true, static_cast<int>(a.rows), static_cast<int>(m), static_cast<int>(a.cols), T(-2),
                        a.data, static_cast<int>(a.cols), b.row(b_begin), static_cast<int>(b.cols), T(0), out,
                        static_cast<int>(ld));
  const double* nb = b_norms.data() + b_begin;
  const auto n = static_cast<std::int64_t>(a.rows);
#pragma omp parallel for schedule(static) if (n * static_cast<std::int64_t>(m) > 65536)
  for (std::int64_t i = 0; i < n; ++i) {
    T* o = out + static_cast<std::size_t>(i) * ld;
    const double na = a_norms[static_cast<std::size_t>(i)];
#pragma omp simd
    for (std::size_t j = 0; j < m; ++j) o[j] = static_cast<T>(std::max(0.0, na + nb[j] + static_cast<double>(o[j])));
  }
}

/// Calls f(q0, q1, r0, r1, block, ld) for tiles of the squared-distance matrix between the rows of
/// `queries` and `reference`: block[(i - q0) * ld + (j - r0)] = ||q_i - r_j||^2. Tiles are at most
/// query_block x reference_block, so memory stays bounded for large sets.
template <class T, class F>
void for_each_distance_block(const point_cloud<T>& queries, const point_cloud<T>& reference, F&& f,
                             std::size_t query_block = 1024, std::size_t reference_block = 4096) {
  std::vector<double> nq, nr;
  row_squared_norms(queries, nq);
  row_squared_norms(reference, nr);
  std::vector<T> tile(std::min(query_block, queries.rows) * std::min(reference_block, reference.rows));
  std::vector<double> nq_block;
  for (std::size_t q0 = 0; q0 < queries.rows; q0 += query_block) {
    const std::size_t q1 = std::min(queries.rows, q0 + query_block);
    const point_cloud<T> qs{queries.row(q0), q1 - q0, queries.cols};
    nq_block.assign(nq.begin() + static_cast<std::ptrdiff_t>(q0), nq.begin() + static_cast<std::ptrdiff_t>(q1));
    for (std::size_t r0 = 0; r0 < reference.rows; r0 += reference_block) {
      const std::size_t r1 = std::min(reference.rows, r0 + reference_block);
      squared_distances(qs, nq_block, reference, nr, r0, r1, tile.data(), r1 - r0);
      f(q0, q1, r0, r1, static_cast<const T*>(tile.data()), r1 - r0);
    }
  }
}

/// ||a - b||^2 of two points of dimension d, in double (used to report exact distances after a
/// GEMM-based search).
template <class T>
[[nodiscard]] double squared_distance(const T* a, const T* b, std::size_t d) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (std::size_t k = 0; k < d; ++k) {
    const double e = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    s += e * e;
  }
  return s;
}

}  // namespace softdiff::metrics::detail
