#pragma once
// Entropic optimal transport between two point clouds with uniform weights, by log-domain
// Sinkhorn iterations with epsilon-scaling (Cuturi 2013; Schmitzer 2019). Soft Diffusion
// (section 3.3, appendix C) estimates the Wasserstein distance M(D_i, D_j) between two
// corrupted datasets this way, on data slices.
//
//   OT_eps = min_P <P, C> + eps KL(P | a (x) b)  s.t.  P 1 = a, P^T 1 = b,
//   C_ij = ||x_i - y_j||^2,  a_i = 1/n,  b_j = 1/m.
// Log-domain updates of the dual potentials (log-sum-exp accumulated in double):
//   f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)
//   g_j = -eps log sum_i a_i exp((f_i - C_ij) / eps)
// and the plan P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).
// Reported: transport_cost = <P, C>, which tends to W2^2 as eps -> 0, w2 = sqrt(transport_cost),
// and the dual value <f, a> + <g, b> (= OT_eps at convergence).
//
// eps = regularisation * reference, the reference being the median (default) or mean of C, or 1
// (absolute). Iterations start at eps_0 = max C and multiply eps by `annealing` per iteration
// until it reaches its target (epsilon-scaling), then run until the row marginals of P are within
// `tolerance` in L1 (the column marginals are exact after each g update).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::schedule {

/// What the regularisation is relative to.
enum class regularisation_reference { median_cost, mean_cost, absolute };

struct sinkhorn_options {
  double regularisation = 0.01;  // eps = regularisation * reference
  regularisation_reference reference = regularisation_reference::median_cost;
  double tolerance = 1e-6;       // L1 violation of the row marginals (total mass 1)
  int max_iterations = 5000;
  double annealing = 0.5;        // epsilon-scaling factor per iteration in [0, 1); 0 starts at the target eps
};

struct sinkhorn_result {
  double transport_cost = 0;  // <P, C>: the entropic estimate of W2^2
  double w2 = 0;              // sqrt(transport_cost)
  double dual_value = 0;      // <f, a> + <g, b>
  double epsilon = 0;         // the absolute regularisation used
  double marginal_error = 0;  // sum_i |(P 1)_i - a_i| of the returned plan
  int iterations = 0;
  bool converged = false;
};

namespace detail {

/// e^x for x <= 0 (x below -708 is taken as -708, whose e^x ~ 3e-308 is negligible in a sum
/// that contains 1). Range reduction x = k ln 2 + r, |r| <= ln 2 / 2, Taylor polynomial to r^12
/// (relative error < 3e-16), 2^k added to the exponent bits. Branch-free so `omp simd` loops
/// vectorise.
inline double exp_nonpositive(double x) {
  x = x < -708.0 ? -708.0 : x;
  constexpr double log2e = 1.4426950408889634;
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  const double kd = x * log2e + shifter;           // low mantissa bits now hold round(x / ln 2)
  const double k = kd - shifter;
  const double r = (x - k * ln2_hi) - k * ln2_lo;
  double p = 1.0 / 479001600.0;  // 1/12!
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const std::uint64_t bits = std::bit_cast<std::uint64_t>(p) + (std::bit_cast<std::uint64_t>(kd) << 52);
  return std::bit_cast<double>(bits);
}

/// One half-step of the log-domain Sinkhorn update for `rows` rows of the cost matrix `c`
/// (row length `len`): out_r = -eps log sum_j w exp((h_j - c_rj) / eps), w = 1 / len.
/// Returns sum_r |exp((out_old_r - out_new_r) / eps) - 1| / rows, the L1 marginal violation
/// of the plan before this update.
template <class T>
double log_domain_update(const T* c, std::size_t rows, std::size_t len, const double* h, double eps, double* out) {
  const double inv_eps = 1.0 / eps, log_len = std::log(static_cast<double>(len));
  double err = 0;
  const auto n = static_cast<std::int64_t>(rows);
#pragma omp parallel for schedule(static) reduction(+ : err) if (n * static_cast<std::int64_t>(len) > 16384)
  for (std::int64_t r = 0; r < n; ++r) {
    const T* cr = c + static_cast<std::size_t>(r) * len;
    double mx = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : mx)
    for (std::size_t j = 0; j < len; ++j) mx = std::max(mx, h[j] - static_cast<double>(cr[j]));
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (std::size_t j = 0; j < len; ++j) s += exp_nonpositive((h[j] - static_cast<double>(cr[j]) - mx) * inv_eps);
    // f = -eps (log(1/len) + mx/eps + log s)
    const double updated = -mx - eps * (std::log(s) - log_len);
    const double old = out[r];
    err += std::abs(std::exp(std::min((old - updated) * inv_eps, 700.0)) - 1.0);
    out[r] = updated;
  }
  return err / static_cast<double>(rows);
}

}  // namespace detail

/// Log-domain Sinkhorn with its workspaces kept between calls (no allocation when the sizes repeat).
template <class T = float>
class sinkhorn_solver {
public:
  using scalar_type = T;

  /// OT between the images of x and y (rows = flattened images), squared Euclidean cost.
  sinkhorn_result solve(const batch<T>& x, const batch<T>& y, const sinkhorn_options& o = {}) {
    return solve(metrics::detail::points_of(x), metrics::detail::points_of(y), o);
  }

  sinkhorn_result solve(const metrics::detail::point_cloud<T>& x, const metrics::detail::point_cloud<T>& y,
                        const sinkhorn_options& o = {}) {
    metrics::detail::check_cloud(x, "sinkhorn: first point cloud");
    metrics::detail::check_cloud(y, "sinkhorn: second point cloud");
    metrics::detail::check_same_dimension(x, y, "sinkhorn");
    check_options(o);
    n_ = x.rows;
    m_ = y.rows;
    // Shift both clouds by the mean of x: distances are unchanged and the GEMM form
    // ||x||^2 + ||y||^2 - 2 x.y loses less to cancellation in float.
    const std::size_t d = x.cols;
    shift_.assign(d, 0.0);
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t k = 0; k < d; ++k) shift_[k] += static_cast<double>(x.data[i * d + k]);
    for (double& s : shift_) s /= static_cast<double>(n_);
    centre(x, xc_);
    centre(y, yc_);
    const metrics::detail::point_cloud<T> xs{xc_.data(), n_, d}, ys{yc_.data(), m_, d};
    metrics::detail::row_squared_norms(xs, nx_);
    metrics::detail::row_squared_norms(ys, ny_);
    cost_.resize(n_ * m_);
    metrics::detail::squared_distances(xs, nx_, ys, ny_, 0, m_, cost_.data(), m_);
    return iterate(o);
  }

  /// OT for a given n x m cost matrix (row-major, finite, >= 0), uniform weights.
  sinkhorn_result solve_cost(std::span<const T> cost, std::size_t n, std::size_t m, const sinkhorn_options& o = {}) {
    softdiff::detail::require(n > 0 && m > 0, "sinkhorn: empty cost matrix (", n, " x ", m, ")");
    softdiff::detail::require(cost.size() == n * m, "sinkhorn: cost has ", cost.size(), " entries, expected ", n,
                              " x ", m);
    for (std::size_t k = 0; k < cost.size(); ++k)
      softdiff::detail::require(std::isfinite(cost[k]) && cost[k] >= 0, "sinkhorn: cost entry (", k / m, ", ",
                                k % m, ") = ", cost[k], " is not a finite non-negative number");
    check_options(o);
    n_ = n;
    m_ = m;
    cost_.assign(cost.begin(), cost.end());
    return iterate(o);
  }

  /// P of the last solve, row-major n x m.
  [[nodiscard]] std::vector<double> plan() const {
    std::vector<double> p(n_ * m_);
    const double inv_eps = 1.0 / eps_, w = 1.0 / (static_cast<double>(n_) * static_cast<double>(m_));
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = 0; j < m_; ++j)
        p[i * m_ + j] = w * std::exp((f_[i] + g_[j] - static_cast<double>(cost_[i * m_ + j])) * inv_eps);
    return p;
  }

private:
  static void check_options(const sinkhorn_options& o) {
    softdiff::detail::require(std::isfinite(o.regularisation) && o.regularisation > 0, "sinkhorn: regularisation = ",
                              o.regularisation, " must be a positive number");
    softdiff::detail::require(std::isfinite(o.tolerance) && o.tolerance > 0, "sinkhorn: tolerance = ", o.tolerance,
                              " must be positive");
    softdiff::detail::require(o.max_iterations >= 1, "sinkhorn: max_iterations = ", o.max_iterations,
                              " must be >= 1");
    softdiff::detail::require(o.annealing >= 0 && o.annealing < 1, "sinkhorn: annealing = ", o.annealing,
                              " must lie in [0, 1)");
  }

  void centre(const metrics::detail::point_cloud<T>& p, std::vector<T>& out) const {
    const std::size_t d = p.cols;
    out.resize(p.rows * d);
    for (std::size_t i = 0; i < p.rows; ++i)
      for (std::size_t k = 0; k < d; ++k)
        out[i * d + k] = static_cast<T>(static_cast<double>(p.data[i * d + k]) - shift_[k]);
  }

  [[nodiscard]] double reference(const sinkhorn_options& o) {
    if (o.reference == regularisation_reference::absolute) return 1.0;
    if (o.reference == regularisation_reference::mean_cost) {
      double s = 0;
      for (const T c : cost_) s += static_cast<double>(c);
      return s / static_cast<double>(cost_.size());
    }
    scratch_.assign(cost_.begin(), cost_.end());
    const auto mid = scratch_.begin() + static_cast<std::ptrdiff_t>(scratch_.size() / 2);
    std::nth_element(scratch_.begin(), mid, scratch_.end());
    return static_cast<double>(*mid);
  }

  sinkhorn_result iterate(const sinkhorn_options& o) {
    sinkhorn_result res;
    const double c_max = static_cast<double>(*std::max_element(cost_.begin(), cost_.end()));
    f_.assign(n_, 0.0);
    g_.assign(m_, 0.0);
    if (c_max == 0.0) {  // every point coincides: nothing to transport
      eps_ = 1.0;
      res.epsilon = o.reference == regularisation_reference::absolute ? o.regularisation : 0.0;
      res.converged = true;
      return res;
    }
    double ref = reference(o);
    if (!(ref > 0)) ref = c_max;  // e.g. a median of 0 when most pairs coincide
    const double target = o.regularisation * ref;
    cost_t_.resize(n_ * m_);
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = 0; j < m_; ++j) cost_t_[j * n_ + i] = cost_[i * m_ + j];

    double eps = o.annealing > 0 ? std::max(target, c_max) : target;
    int it = 0;
    for (; it < o.max_iterations; ++it) {
      const double err = detail::log_domain_update(cost_.data(), n_, m_, g_.data(), eps, f_.data());
      detail::log_domain_update(cost_t_.data(), m_, n_, f_.data(), eps, g_.data());
      if (eps == target && it > 0 && err < o.tolerance) {
        res.converged = true;
        ++it;
        break;
      }
      if (eps > target) eps = std::max(target, eps * o.annealing);
    }
    eps_ = eps;
    res.iterations = it;
    res.epsilon = eps;

    // <P, C> and the row marginals of the final plan, in double.
    const double inv_eps = 1.0 / eps, inv_nm = 1.0 / (static_cast<double>(n_) * static_cast<double>(m_));
    double cost = 0, err = 0;
    const auto n = static_cast<std::int64_t>(n_);
    const std::size_t m = m_;
#pragma omp parallel for schedule(static) reduction(+ : cost, err) if (n * static_cast<std::int64_t>(m) > 16384)
    for (std::int64_t i = 0; i < n; ++i) {
      const T* c = cost_.data() + static_cast<std::size_t>(i) * m;
      const double fi = f_[static_cast<std::size_t>(i)];
      double row = 0, rc = 0;
      for (std::size_t j = 0; j < m; ++j) {
        const double cij = static_cast<double>(c[j]);
        const double p = std::exp(std::min((fi + g_[j] - cij) * inv_eps, 700.0));
        row += p;
        rc += p * cij;
      }
      cost += rc * inv_nm;
      err += std::abs(row * inv_nm - 1.0 / static_cast<double>(n_));
    }
    res.transport_cost = cost;
    res.w2 = std::sqrt(std::max(cost, 0.0));
    res.marginal_error = err;
    double dual = 0;
    for (const double v : f_) dual += v / static_cast<double>(n_);
    for (const double v : g_) dual += v / static_cast<double>(m_);
    res.dual_value = dual;
    return res;
  }

  std::size_t n_ = 0, m_ = 0;
  double eps_ = 1.0;
  std::vector<double> shift_, nx_, ny_, f_, g_;
  std::vector<T> xc_, yc_, cost_, cost_t_, scratch_;
};

/// One-off Sinkhorn OT between the images of x and y (see sinkhorn_solver).
template <class T>
[[nodiscard]] sinkhorn_result sinkhorn(const batch<T>& x, const batch<T>& y, const sinkhorn_options& o = {}) {
  sinkhorn_solver<T> s;
  return s.solve(x, y, o);
}

}  // namespace softdiff::schedule
