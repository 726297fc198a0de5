#pragma once
// The exact posterior-mean denoiser for a finite dataset {x_1, ..., x_M}: under the
// forward process x_t = C_t x_0 + sigma_t eta with x_0 uniform on the dataset,
//   q_t(x)        = (1/M) sum_i N(x; C_t x_i, sigma_t^2 I),
//   E[x_0 | x_t]  = sum_i w_i x_i,   w_i ∝ exp(-||x_t - C_t x_i||^2 / (2 sigma_t^2)),
// the minimiser of the Soft Score Matching loss (eq. 12). It stands in for a perfectly
// trained network ("the true score") when testing samplers, and log_density gives the
// exact log q_t for the Tweedie check (eq. 16: C_t E[x_0|x_t] = x_t + sigma_t^2 grad log q_t).
// As a Denoiser it returns phi = E[x_0 | x_t] - x_t (eq. 8, 10), so h = phi + x_t is the
// posterior mean. Arithmetic is in double; weights use log-sum-exp.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <numbers>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::nn {

template <CorruptionOperator Op, Schedule Sched>
class oracle {
public:
  using scalar_type = typename Op::scalar_type;
  using T = scalar_type;

  /// `data` holds the M dataset images [M, C, H, W]; `cache_levels` bounds how many
  /// operator levels keep their C_t x_i (one per sampling step is enough).
  oracle(Op op, Sched schedule, batch<T> data, std::size_t cache_levels = 8)
      : op_(std::move(op)), schedule_(std::move(schedule)), data_(std::move(data)),
        cache_levels_(std::max<std::size_t>(cache_levels, 1)) {
    softdiff::detail::require(data_.size() > 0, "nn::oracle: empty dataset of shape ", to_string(shape_of(data_)));
    check_finite(data_, "nn::oracle: dataset");
  }

  [[nodiscard]] const batch<T>& data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return data_.shape()[0]; }
  [[nodiscard]] const Op& op() const { return op_; }
  [[nodiscard]] const Sched& schedule() const { return schedule_; }

  /// phi = E[x_0 | x_t] - x_t for each sample n at its own time t[n].
  void predict(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    posterior_mean(x, t, phi);
    T* p = phi.data();
    const T* xp = x.data();
    for (std::size_t i = 0; i < x.size(); ++i) p[i] -= xp[i];
  }

  /// mean = E[x_0 | x_t] = sum_i w_i x_i for each sample n at time t[n].
  void posterior_mean(const batch<T>& x, std::span<const double> t, batch<T>& mean) {
    const std::size_t N = check_input(x, t, "nn::oracle::predict");
    ensure_shape(mean, shape_of(x));
    const std::size_t M = size(), D = x.size() / std::max<std::size_t>(N, 1);
    logw_.resize(N * M);
    acc_.resize(N * D);
    for_each_level(t, [&](const batch<T>& cx, double sigma, const std::vector<std::int64_t>& members) {
      const auto count = static_cast<std::int64_t>(members.size());
#pragma omp parallel for schedule(static) if (members.size() * M * D > (std::size_t{1} << 16))
      for (std::int64_t k = 0; k < count; ++k) {
        const auto n = static_cast<std::size_t>(members[static_cast<std::size_t>(k)]);
        double* lw = logw_.data() + n * M;
        log_weights(x.data() + n * D, cx, sigma, lw);  // lw[i] = log w_i (normalised)
        double* a = acc_.data() + n * D;
        std::fill(a, a + D, 0.0);
        for (std::size_t i = 0; i < M; ++i) {
          const double w = std::exp(lw[i]);
          const T* xi = data_.data() + i * D;
          for (std::size_t j = 0; j < D; ++j) a[j] += w * static_cast<double>(xi[j]);
        }
        T* out = mean.data() + n * D;
        for (std::size_t j = 0; j < D; ++j) out[j] = static_cast<T>(a[j]);
      }
    });
  }

  /// log q_t(x_n) = log (1/M) sum_i N(x_n; C_t x_i, sigma_t^2 I) for each sample, one time t.
  [[nodiscard]] std::vector<double> log_density(const batch<T>& x, double t) {
    const std::size_t N = x.shape()[0];
    const std::vector<double> ts(N, t);
    check_input(x, ts, "nn::oracle::log_density");
    const std::size_t M = size(), D = x.size() / std::max<std::size_t>(N, 1);
    std::vector<double> out(N), lw(N * M);
    for_each_level(ts, [&](const batch<T>& cx, double sigma, const std::vector<std::int64_t>& members) {
      const double norm = -std::log(static_cast<double>(M)) -
                          0.5 * static_cast<double>(D) * std::log(2.0 * std::numbers::pi * sigma * sigma);
      const auto count = static_cast<std::int64_t>(members.size());
#pragma omp parallel for schedule(static) if (members.size() * M * D > (std::size_t{1} << 16))
      for (std::int64_t k = 0; k < count; ++k) {
        const auto n = static_cast<std::size_t>(members[static_cast<std::size_t>(k)]);
        out[n] = log_weights(x.data() + n * D, cx, sigma, lw.data() + n * M) + norm;
      }
    });
    return out;
  }

private:
  struct cache_entry {
    double level;
    batch<T> cx;  // C(level) applied to every dataset image
  };

  std::size_t check_input(const batch<T>& x, std::span<const double> t, const char* where) const {
    const shape4 s = shape_of(x), d = shape_of(data_);
    softdiff::detail::require(s[1] == d[1] && s[2] == d[2] && s[3] == d[3], where, ": input shape ", to_string(s),
                              " does not match the dataset's image shape ", to_string(d));
    softdiff::detail::require(t.size() == s[0], where, ": ", t.size(), " times for a batch of ", s[0]);
    check_finite(x, where);
    for (std::size_t n = 0; n < t.size(); ++n) {
      softdiff::detail::require(std::isfinite(t[n]) && t[n] >= 0.0 && t[n] <= 1.0, where, ": t[", n, "] = ", t[n],
                                " is outside [0, 1]");
      const double sg = schedule_.sigma(t[n]);
      softdiff::detail::require(std::isfinite(sg) && sg > 0.0, where, ": sigma(t) = ", sg, " at t[", n, "] = ", t[n],
                                "; the posterior mean needs sigma_t > 0");
    }
    return s[0];
  }

  /// Groups the samples by operator level (and sigma) and calls f(C x_i batch, sigma, sample indices)
  /// once per distinct (level, sigma), with C x_i from the cache.
  template <class F>
  void for_each_level(std::span<const double> t, F&& f) {
    std::vector<std::pair<std::pair<double, double>, std::int64_t>> keyed(t.size());
    for (std::size_t n = 0; n < t.size(); ++n)
      keyed[n] = {{schedule_.level(t[n]), schedule_.sigma(t[n])}, static_cast<std::int64_t>(n)};
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::int64_t> members;
    for (std::size_t b = 0; b < keyed.size();) {
      std::size_t e = b;
      members.clear();
      while (e < keyed.size() && keyed[e].first == keyed[b].first) members.push_back(keyed[e++].second);
      f(transformed(keyed[b].first.first), keyed[b].first.second, members);
      b = e;
    }
  }

  const batch<T>& transformed(double level) {
    for (const cache_entry& c : cache_)
      if (c.level == level) return c.cx;
    if (cache_.size() >= cache_levels_) cache_.pop_front();
    cache_.push_back({level, batch<T>{}});
    op_.apply(level, data_, cache_.back().cx);
    return cache_.back().cx;
  }

  /// lw[i] <- -||x - C x_i||^2 / (2 sigma^2) - log Z, returns log Z = log sum_i exp(...).
  double log_weights(const T* x, const batch<T>& cx, double sigma, double* lw) const {
    const std::size_t M = size(), D = data_.size() / M;
    const double inv = 1.0 / (2.0 * sigma * sigma);
    double peak = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < M; ++i) {
      const T* ci = cx.data() + i * D;
      double d2 = 0.0;
      for (std::size_t j = 0; j < D; ++j) {
        const double d = static_cast<double>(x[j]) - static_cast<double>(ci[j]);
        d2 += d * d;
      }
      lw[i] = -d2 * inv;
      peak = std::max(peak, lw[i]);
    }
    double z = 0.0;
    for (std::size_t i = 0; i < M; ++i) z += std::exp(lw[i] - peak);
    const double log_z = peak + std::log(z);
    for (std::size_t i = 0; i < M; ++i) lw[i] -= log_z;
    return log_z;
  }

  Op op_;
  Sched schedule_;
  batch<T> data_;
  std::size_t cache_levels_;
  std::deque<cache_entry> cache_;
  std::vector<double> logw_, acc_;  // per-call workspaces, kept to avoid reallocation
};

static_assert(Denoiser<oracle<op::identity<float>, ::softdiff::detail::schedule_archetype>>);
static_assert(Denoiser<oracle<op::identity<double>, ::softdiff::detail::schedule_archetype>>);

}  // namespace softdiff::nn
