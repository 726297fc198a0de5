#pragma once
// Sliced Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015) between two sets of images
// in pixel space, the fast alternative to Sinkhorn in the Wasserstein scheduler:
//   SW_2(mu, nu)^2 = (1/K) sum_k W_2^2(<theta_k, .>_# mu, <theta_k, .>_# nu),
// theta_1..theta_K fixed unit directions drawn uniformly on the sphere from a noise_source.
// In one dimension W_2 is exact from sorted samples:
//   W_2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du,
// with F^-1, G^-1 the empirical quantile (step) functions. For isotropic data SW_2 is about
// W_2 / sqrt(dimension), so SW and Sinkhorn distances are on different scales.
//
// A sliced_profile keeps, per direction, Q equal-mass quantile means of the sorted projections
// (block q averages F^-1 over [q/Q, (q+1)/Q)); with Q = N it is exact, with Q < N the distance
// between two profiles is a lower bound (Jensen) that is tight for smooth distributions.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::metrics {

/// Per direction k, Q quantile means of the projections, values[k * Q + q].
struct sliced_profile {
  std::size_t projections = 0;
  std::size_t quantiles = 0;
  std::size_t points = 0;
  std::vector<double> values;
};

namespace detail {

/// Exact W_2^2 between the empirical distributions of sorted a[0..n) and sorted b[0..m), uniform
/// weights: the integral of the squared difference of the quantile step functions, merged at the
/// breakpoints i/n and j/m (compared in integers).
template <class T>
[[nodiscard]] double wasserstein_1d_squared(const T* a, std::size_t n, const T* b, std::size_t m) {
  std::size_t i = 0, j = 0;
  double u = 0, acc = 0;
  const double inv_n = 1.0 / static_cast<double>(n), inv_m = 1.0 / static_cast<double>(m);
  while (i < n && j < m) {
    const double e = static_cast<double>(a[i]) - static_cast<double>(b[j]);
    const std::size_t next_i = (i + 1) * m, next_j = (j + 1) * n;  // breakpoints scaled by n m
    double next;
    if (next_i < next_j) {
      next = static_cast<double>(i + 1) * inv_n;
      ++i;
    } else if (next_j < next_i) {
      next = static_cast<double>(j + 1) * inv_m;
      ++j;
    } else {
      next = static_cast<double>(i + 1) * inv_n;
      ++i;
      ++j;
    }
    acc += (next - u) * e * e;
    u = next;
  }
  return acc;
}

}  // namespace detail

/// K unit directions in R^d and the sorted projections of point clouds on them.
template <class T = float>
class sliced_projector {
public:
  using scalar_type = T;

  /// Directions: K x d standard normals from `noise`, each row normalised to length 1.
  sliced_projector(std::size_t dimension, std::size_t projections, const noise_source& noise)
      : d_(dimension), k_(projections), directions_(dimension * projections) {
    softdiff::detail::require(dimension > 0, "sliced_projector: dimension must be positive");
    softdiff::detail::require(projections > 0, "sliced_projector: needs at least one projection");
    noise.fill(std::span<T>(directions_));
    for (std::size_t k = 0; k < k_; ++k) {
      T* r = directions_.data() + k * d_;
      double s = 0;
      for (std::size_t c = 0; c < d_; ++c) s += static_cast<double>(r[c]) * r[c];
      const double inv = 1.0 / std::sqrt(s);
      for (std::size_t c = 0; c < d_; ++c) r[c] = static_cast<T>(r[c] * inv);
    }
  }

  [[nodiscard]] std::size_t dimension() const { return d_; }
  [[nodiscard]] std::size_t projections() const { return k_; }
  /// Row-major K x d.
  [[nodiscard]] const std::vector<T>& directions() const { return directions_; }

  /// out[k * N + n] = <theta_k, x_n>, each row k sorted ascending (one GEMM, then K sorts).
  void sorted_projections(const detail::point_cloud<T>& x, std::vector<T>& out) const {
    detail::check_cloud(x, "sliced_wasserstein");
    softdiff::detail::require(x.cols == d_, "sliced_wasserstein: points have dimension ", x.cols,
                              " but the projector was made for dimension ", d_);
    const std::size_t n = x.rows;
    out.resize(k_ * n);
    backend::cpu::gemm<T>(false, true, static_cast<int>(k_), static_cast<int>(n), static_cast<int>(d_), T(1),
                          directions_.data(), static_cast<int>(d_), x.data, static_cast<int>(d_), T(0), out.data(),
                          static_cast<int>(n));
    const auto kk = static_cast<std::int64_t>(k_);
#pragma omp parallel for schedule(dynamic) if (kk > 1 && n > 1024)
    for (std::int64_t k = 0; k < kk; ++k) {
      T* r = out.data() + static_cast<std::size_t>(k) * n;
      std::sort(r, r + n);
    }
  }

  /// Q equal-mass quantile means per direction (Q = 0 or Q >= N keeps all N sorted values).
  [[nodiscard]] sliced_profile profile(const detail::point_cloud<T>& x, std::size_t quantiles = 0) const {
    std::vector<T> sorted;
    sorted_projections(x, sorted);
    const std::size_t n = x.rows;
    const std::size_t q_count = (quantiles == 0 || quantiles >= n) ? n : quantiles;
    sliced_profile p{k_, q_count, n, std::vector<double>(k_ * q_count)};
    std::vector<double> prefix(n + 1);
    for (std::size_t k = 0; k < k_; ++k) {
      const T* s = sorted.data() + k * n;
      double* v = p.values.data() + k * q_count;
      if (q_count == n) {
        for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<double>(s[i]);
        continue;
      }
      prefix[0] = 0;
      for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + static_cast<double>(s[i]);
      // S(x) = integral over [0, x) of the step function s(floor(.)), x in [0, n]
      auto integral = [&](double xpos) {
        const auto i = static_cast<std::size_t>(xpos);
        if (i >= n) return prefix[n];
        return prefix[i] + (xpos - static_cast<double>(i)) * static_cast<double>(s[i]);
      };
      const double width = static_cast<double>(n) / static_cast<double>(q_count);
      for (std::size_t q = 0; q < q_count; ++q) {
        const double x0 = static_cast<double>(q) * width;
        const double x1 = q + 1 == q_count ? static_cast<double>(n) : static_cast<double>(q + 1) * width;
        v[q] = (integral(x1) - integral(x0)) / (x1 - x0);
      }
    }
    return p;
  }

  [[nodiscard]] sliced_profile profile(const batch<T>& x, std::size_t quantiles = 0) const {
    return profile(detail::points_of(x), quantiles);
  }

private:
  std::size_t d_, k_;
  std::vector<T> directions_;
};

/// SW_2 between two profiles made by the same projector with the same quantile count:
/// sqrt((1/K) sum_k (1/Q) sum_q (a_kq - b_kq)^2).
[[nodiscard]] inline double sliced_distance(const sliced_profile& a, const sliced_profile& b) {
  softdiff::detail::require(a.projections == b.projections && a.quantiles == b.quantiles,
                            "sliced_distance: profiles differ in shape: ", a.projections, " x ", a.quantiles,
                            " vs ", b.projections, " x ", b.quantiles);
  softdiff::detail::require(!a.values.empty(), "sliced_distance: empty profiles");
  double s = 0;
  const std::size_t n = a.values.size();
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < n; ++i) {
    const double e = a.values[i] - b.values[i];
    s += e * e;
  }
  return std::sqrt(s / static_cast<double>(n));
}

/// Sliced W_2 between two sets of images of the same shape (any sizes), on `projections` random
/// directions drawn from `noise`; exact in one dimension (no quantile compression).
template <class T>
[[nodiscard]] double sliced_wasserstein(const batch<T>& a, const batch<T>& b, std::size_t projections = 128,
                                        const noise_source& noise = {0, stream_for(stream_purpose::user, 0x5157)}) {
  const auto pa = detail::points_of(a), pb = detail::points_of(b);
  detail::check_cloud(pa, "sliced_wasserstein: first set");
  detail::check_cloud(pb, "sliced_wasserstein: second set");
  detail::check_same_dimension(pa, pb, "sliced_wasserstein");
  const sliced_projector<T> proj(pa.cols, projections, noise);
  std::vector<T> sa, sb;
  proj.sorted_projections(pa, sa);
  proj.sorted_projections(pb, sb);
  double s = 0;
  for (std::size_t k = 0; k < projections; ++k)
    s += detail::wasserstein_1d_squared(sa.data() + k * pa.rows, pa.rows, sb.data() + k * pb.rows, pb.rows);
  return std::sqrt(s / static_cast<double>(projections));
}

}  // namespace softdiff::metrics
