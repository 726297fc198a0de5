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
// eps = regularisation * reference, the reference being the median (default; taken over a strided
// sample of at most 65,536 entries) or the mean of C, or 1 (absolute). Iterations start at
// eps_0 = max C and multiply eps by `annealing` per iteration until it reaches its target
// (epsilon-scaling), then run until the row marginals of P are within `tolerance` in L1 (the
// column marginals are exact after each g update), or until <P, C> is stable to `cost_tolerance`
// (relative, checked every 10 iterations; near-degenerate problems reach a stable transport cost
// long before their marginals converge), or until the dual value is stable to `dual_tolerance`
// times eps, or for max_iterations. tolerance = 0 (with the other two 0) runs max_iterations.
// The debiased divergence (sinkhorn_divergence_result) is also offered; the scheduler uses it.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include <omp.h>

#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::schedule {

/// What the regularisation is relative to.
enum class regularisation_reference { median_cost, mean_cost, absolute };

/// The default regularisation is small: between a dataset and a slightly more corrupted copy of it
/// the optimal plan is close to a permutation, and Sinkhorn with epsilon-scaling converges in a few
/// dozen iterations for small eps, but slowly at intermediate eps where the plan is neither sharp
/// nor diffuse.
struct sinkhorn_options {
  double regularisation = 1e-3;  // eps = regularisation * reference
  regularisation_reference reference = regularisation_reference::median_cost;
  double tolerance = 1e-5;       // stop when the L1 violation of the row marginals (mass 1) is below (0: off)
  double cost_tolerance = 1e-6;  // ... or when <P, C> changes by less than this share in 10 iterations (0: off)
  double dual_tolerance = 0;     // ... or when the dual value changes by less than this * eps in one (0: off)
  int max_iterations = 2000;
  double annealing = 0.5;        // epsilon-scaling factor per iteration in [0, 1); 0 starts at the target eps
};

struct sinkhorn_result {
  double transport_cost = 0;  // <P, C>: the entropic estimate of W2^2
  double w2 = 0;              // sqrt(transport_cost)
  double dual_value = 0;      // <f, a> + <g, b>
  double epsilon = 0;         // the absolute regularisation used
  double marginal_error = 0;  // sum_i |(P 1)_i - a_i| of the returned plan
  int iterations = 0;
  bool converged = false;     // a stopping criterion (marginals, cost or dual stability) was met
};

/// The debiased Sinkhorn divergence (Genevay et al. 2018; Feydy et al. 2019)
///   S_eps(x, y) = OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2,
/// the OT_eps terms being dual values at one absolute eps (that of the cross term). It is >= 0,
/// 0 for x = y, and tends to W2^2 as eps -> 0 with a smaller entropic bias than <P, C>.
struct sinkhorn_divergence_result {
  double divergence = 0;  // S_eps (clamped at 0)
  double w2 = 0;          // sqrt(divergence): the W2 estimate
  double self_x = 0;      // OT_eps(x, x)
  double self_y = 0;      // OT_eps(y, y)
  sinkhorn_result cross;  // the OT_eps(x, y) solve (its epsilon is the one used throughout)
};

namespace detail {

/// Cost-matrix entries from which one solve's updates are split over OpenMP threads: below it a
/// fork per half-iteration costs more than it saves on a busy machine.
inline constexpr std::int64_t parallel_threshold = 262144;

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
#pragma omp parallel for schedule(static) reduction(+ : err) \
    if (n * static_cast<std::int64_t>(len) >= parallel_threshold)
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
    build_cost(x, y);
    return iterate(o);
  }

  /// The debiased Sinkhorn divergence between the images of x and y (see sinkhorn_divergence_result).
  sinkhorn_divergence_result divergence(const batch<T>& x, const batch<T>& y, const sinkhorn_options& o = {}) {
    return divergence(metrics::detail::points_of(x), metrics::detail::points_of(y), o);
  }

  sinkhorn_divergence_result divergence(const metrics::detail::point_cloud<T>& x,
                                        const metrics::detail::point_cloud<T>& y, const sinkhorn_options& o = {}) {
    metrics::detail::check_cloud(x, "sinkhorn divergence: first point cloud");
    metrics::detail::check_cloud(y, "sinkhorn divergence: second point cloud");
    metrics::detail::check_same_dimension(x, y, "sinkhorn divergence");
    check_options(o);
    if (!self_x_) self_x_ = std::make_unique<sinkhorn_solver>();
    if (!self_y_) self_y_ = std::make_unique<sinkhorn_solver>();
    sinkhorn_divergence_result r;
    // The self terms use the cross term's eps and run exactly as many iterations as it did: where
    // the cross problem stops before convergence (strongly blurred, near-degenerate pairs), the
    // three dual values are then truncated alike and their shortfalls largely cancel in S.
    sinkhorn_options fixed = o;
    fixed.reference = regularisation_reference::absolute;
    fixed.tolerance = fixed.cost_tolerance = fixed.dual_tolerance = 0;
    std::exception_ptr failure;
    auto guarded = [&](auto&& work) {
      try {
        work();
      } catch (...) {
#pragma omp critical(softdiff_sinkhorn_failure)
        if (!failure) failure = std::current_exception();
      }
    };
    auto self_term = [&](sinkhorn_solver& s) {
      sinkhorn_options f = fixed;
      f.max_iterations = std::max(1, r.cross.iterations);
      return s.iterate(f).dual_value;
    };
    // One parallel region per pair on two threads (a fork per half-iteration would cost more than
    // it saves); on one thread the same steps run in order:
    //   thread 0: cost(x, y), eps   | thread 1: cost(x, x)
    //   thread 0: OT_eps(x, y)      | thread 1: cost(y, y)
    //   thread 0: OT_eps(x, x)      | thread 1: OT_eps(y, y)
    const bool split = omp_get_max_threads() > 1 && !omp_in_parallel() &&
                       static_cast<std::int64_t>(x.rows * y.rows) >= detail::parallel_threshold / 4;
#pragma omp parallel num_threads(2) if (split)
    {
      const int tid = omp_get_thread_num(), last = omp_get_num_threads() - 1;
      if (tid == 0)
        guarded([&] {
          build_cost(x, y);
          fixed.regularisation = target_epsilon(o);
        });
      if (tid == last) guarded([&] { self_x_->build_cost(x, x); });
#pragma omp barrier
      if (!failure && tid == 0) guarded([&] { r.cross = iterate_at(o, fixed.regularisation); });
      if (!failure && tid == last) guarded([&] { self_y_->build_cost(y, y); });
#pragma omp barrier
      if (!failure && tid == 0) guarded([&] { r.self_x = self_term(*self_x_); });
      if (!failure && tid == last) guarded([&] { r.self_y = self_term(*self_y_); });
    }
    if (failure) std::rethrow_exception(failure);
    r.divergence = std::max(0.0, r.cross.dual_value - 0.5 * (r.self_x + r.self_y));
    r.w2 = std::sqrt(r.divergence);
    return r;
  }

  /// OT_eps(x, x) (the dual value of a solve of x against itself).
  double self_transport(const metrics::detail::point_cloud<T>& x, const sinkhorn_options& o) {
    metrics::detail::check_cloud(x, "sinkhorn: point cloud");
    check_options(o);
    build_cost(x, x);
    return iterate(o).dual_value;
  }

public:
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

  /// P of the last solve or solve_cost, row-major n x m.
  [[nodiscard]] std::vector<double> plan() const {
    std::vector<double> p(n_ * m_);
    const double inv_eps = 1.0 / eps_, w = 1.0 / (static_cast<double>(n_) * static_cast<double>(m_));
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = 0; j < m_; ++j)
        p[i * m_ + j] = w * std::exp((f_[i] + g_[j] - static_cast<double>(cost_[i * m_ + j])) * inv_eps);
    return p;
  }

private:
  void build_cost(const metrics::detail::point_cloud<T>& x, const metrics::detail::point_cloud<T>& y) {
    n_ = x.rows;
    m_ = y.rows;
    // Shift both clouds by the mean of x: distances are unchanged and the GEMM form
    // ||x||^2 + ||y||^2 - 2 x.y loses less to cancellation in float.
    const std::size_t d = x.cols;
    shift_.assign(d, 0.0);
    for (std::size_t i = 0; i < n_; ++i) {
      const T* r = x.row(i);
#pragma omp simd
      for (std::size_t k = 0; k < d; ++k) shift_[k] += static_cast<double>(r[k]);
    }
    for (double& s : shift_) s /= static_cast<double>(n_);
    centre(x, xc_);
    centre(y, yc_);
    const metrics::detail::point_cloud<T> xs{xc_.data(), n_, d}, ys{yc_.data(), m_, d};
    metrics::detail::row_squared_norms(xs, nx_);
    metrics::detail::row_squared_norms(ys, ny_);
    cost_.resize(n_ * m_);
    metrics::detail::squared_distances(xs, nx_, ys, ny_, 0, m_, cost_.data(), m_);
  }

  static void check_options(const sinkhorn_options& o) {
    softdiff::detail::require(std::isfinite(o.regularisation) && o.regularisation > 0, "sinkhorn: regularisation = ",
                              o.regularisation, " must be a positive number");
    softdiff::detail::require(std::isfinite(o.tolerance) && o.tolerance >= 0, "sinkhorn: tolerance = ", o.tolerance,
                              " must be >= 0");
    softdiff::detail::require(o.cost_tolerance >= 0 && o.dual_tolerance >= 0,
                              "sinkhorn: cost_tolerance and dual_tolerance must be >= 0 (got ", o.cost_tolerance,
                              ", ", o.dual_tolerance, ")");
    softdiff::detail::require(o.max_iterations >= 1, "sinkhorn: max_iterations = ", o.max_iterations,
                              " must be >= 1");
    softdiff::detail::require(o.annealing >= 0 && o.annealing < 1, "sinkhorn: annealing = ", o.annealing,
                              " must lie in [0, 1)");
  }

  void centre(const metrics::detail::point_cloud<T>& p, std::vector<T>& out) const {
    const std::size_t d = p.cols;
    out.resize(p.rows * d);
    const double* sh = shift_.data();
    for (std::size_t i = 0; i < p.rows; ++i) {
      const T* r = p.row(i);
      T* o = out.data() + i * d;
#pragma omp simd
      for (std::size_t k = 0; k < d; ++k) o[k] = static_cast<T>(static_cast<double>(r[k]) - sh[k]);
    }
  }

  [[nodiscard]] double reference(const sinkhorn_options& o) {
    if (o.reference == regularisation_reference::absolute) return 1.0;
    if (o.reference == regularisation_reference::mean_cost) {
      double s = 0;
      for (const T c : cost_) s += static_cast<double>(c);
      return s / static_cast<double>(cost_.size());
    }
    // the median of a strided sample of at most 65,536 entries
    const std::size_t stride = (cost_.size() + 65535) / 65536;
    scratch_.clear();
    for (std::size_t k = 0; k < cost_.size(); k += stride) scratch_.push_back(cost_[k]);
    const auto mid = scratch_.begin() + static_cast<std::ptrdiff_t>(scratch_.size() / 2);
    std::nth_element(scratch_.begin(), mid, scratch_.end());
    return static_cast<double>(*mid);
  }

  /// The absolute eps for the current cost matrix; sets c_max_.
  [[nodiscard]] double target_epsilon(const sinkhorn_options& o) {
    c_max_ = static_cast<double>(*std::max_element(cost_.begin(), cost_.end()));
    if (o.reference == regularisation_reference::absolute) return o.regularisation;
    if (c_max_ == 0.0) return 0.0;
    double ref = reference(o);
    if (!(ref > 0)) ref = c_max_;  // e.g. a median of 0 when most pairs coincide
    return o.regularisation * ref;
  }

  sinkhorn_result iterate(const sinkhorn_options& o) { return iterate_at(o, target_epsilon(o)); }

  sinkhorn_result iterate_at(const sinkhorn_options& o, double target) {
    sinkhorn_result res;
    const double c_max = c_max_;
    f_.assign(n_, 0.0);
    g_.assign(m_, 0.0);
    res.epsilon = target;
    if (c_max == 0.0) {  // every point coincides: nothing to transport
      eps_ = 1.0;
      res.converged = true;
      return res;
    }
    cost_t_.resize(n_ * m_);
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = 0; j < m_; ++j) cost_t_[j * n_ + i] = cost_[i * m_ + j];

    double eps = o.annealing > 0 ? std::max(target, c_max) : target;
    constexpr int check_interval = 10;
    double last_cost = -1, last_dual = std::numeric_limits<double>::quiet_NaN();
    int it = 0, at_target = 0;
    for (; it < o.max_iterations; ++it) {
      const double err = detail::log_domain_update(cost_.data(), n_, m_, g_.data(), eps, f_.data());
      detail::log_domain_update(cost_t_.data(), m_, n_, f_.data(), eps, g_.data());
      if (eps == target) {
        ++at_target;
        if (at_target > 1 && err < o.tolerance) {
          res.converged = true;
          ++it;
          break;
        }
        if (o.dual_tolerance > 0) {
          const double dual = mean_of(f_) + mean_of(g_);
          if (std::abs(dual - last_dual) <= o.dual_tolerance * eps) {
            res.converged = true;
            ++it;
            break;
          }
          last_dual = dual;
        }
        if (o.cost_tolerance > 0 && at_target % check_interval == 0) {
          const double c = plan_cost(eps).first;
          if (last_cost >= 0 && std::abs(c - last_cost) <= o.cost_tolerance * std::abs(c)) {
            res.converged = true;
            ++it;
            break;
          }
          last_cost = c;
        }
      }
      if (eps > target) eps = std::max(target, eps * o.annealing);
    }
    eps_ = eps;
    res.iterations = it;
    res.epsilon = eps;
    const auto [cost, err] = plan_cost(eps);
    res.transport_cost = cost;
    res.w2 = std::sqrt(std::max(cost, 0.0));
    res.marginal_error = err;
    res.dual_value = mean_of(f_) + mean_of(g_);
    return res;
  }

  [[nodiscard]] static double mean_of(const std::vector<double>& v) {
    double s = 0;
    for (const double e : v) s += e;
    return s / static_cast<double>(v.size());
  }

  /// <P, C> and the L1 violation of the row marginals of P(f, g), in double.
  [[nodiscard]] std::pair<double, double> plan_cost(double eps) const {
    const double inv_eps = 1.0 / eps, inv_nm = 1.0 / (static_cast<double>(n_) * static_cast<double>(m_));
    const double inv_n = 1.0 / static_cast<double>(n_);
    double cost = 0, err = 0;
    const auto n = static_cast<std::int64_t>(n_);
    const std::size_t m = m_;
    const double* g = g_.data();
#pragma omp parallel for schedule(static) reduction(+ : cost, err) \
    if (n * static_cast<std::int64_t>(m) >= detail::parallel_threshold)
    for (std::int64_t i = 0; i < n; ++i) {
      const T* c = cost_.data() + static_cast<std::size_t>(i) * m;
      const double fi = f_[static_cast<std::size_t>(i)];
      // P_ij = exp((f_i + g_j - C_ij) / eps) / (n m), factored as exp(top) exp(z_j - top)
      double top = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : top)
      for (std::size_t j = 0; j < m; ++j) top = std::max(top, g[j] - static_cast<double>(c[j]));
      double row = 0, rc = 0;
#pragma omp simd reduction(+ : row, rc)
      for (std::size_t j = 0; j < m; ++j) {
        const double cij = static_cast<double>(c[j]);
        const double p = detail::exp_nonpositive((g[j] - cij - top) * inv_eps);
        row += p;
        rc += p * cij;
      }
      const double scale = std::exp(std::min((fi + top) * inv_eps, 700.0)) * inv_nm;
      cost += rc * scale;
      err += std::abs(row * scale - inv_n);
    }
    return {cost, err};
  }

  std::size_t n_ = 0, m_ = 0;
  double eps_ = 1.0, c_max_ = 0.0;
  std::unique_ptr<sinkhorn_solver> self_x_, self_y_;  // the self terms of a divergence
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
