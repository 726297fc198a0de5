// The Wasserstein scheduler (schedule/wasserstein.hpp, epsilon_graph.hpp) and the MSE-matching
// baseline (schedule/mse_matching.hpp): the eps-graph search against brute force, distances
// against closed-form W2 between Gaussians, the path on families whose answer is known, the
// tabulated output, and bad arguments.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "softdiff/metrics/frechet.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/random.hpp"
#include "softdiff/schedule/epsilon_graph.hpp"
#include "softdiff/schedule/mse_matching.hpp"
#include "softdiff/schedule/validate.hpp"
#include "softdiff/schedule/wasserstein.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

/// C(level) = diag(exp(-level * rate_p)) on [N, 1, 1, d] batches: a linear family that, like a
/// blur, removes some coordinates faster than others. Level range [0, max].
template <class T>
struct diagonal_attenuation {
  using scalar_type = T;
  static constexpr bool self_adjoint = true;
  std::vector<double> rate;
  double max = 4.0;

  void apply(double level, const batch<T>& x, batch<T>& y) const {
    check_level(*this, level, "diagonal_attenuation");
    ensure_shape(y, shape_of(x));
    const std::size_t d = rate.size();
    for (std::size_t i = 0; i < x.size(); ++i)
      y.data()[i] = static_cast<T>(std::exp(-level * rate[i % d]) * x.data()[i]);
  }
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { apply(level, x, y); }
  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return max; }
  [[nodiscard]] std::string name() const { return "diagonal_attenuation"; }
};
static_assert(CorruptionOperator<diagonal_attenuation<float>>);

/// n samples of N(0, diag(variance)) as [n, 1, 1, d].
template <class T>
batch<T> gaussian_samples(std::size_t n, const std::vector<double>& variance, std::uint64_t seed) {
  const std::size_t d = variance.size();
  batch<T> x(shape4{n, 1, 1, d});
  noise_source{seed, 3}.fill(x);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(x.data()[i] * std::sqrt(variance[i % d]));
  return x;
}

std::vector<double> test_variances(std::size_t d) {
  std::vector<double> v(d);
  for (std::size_t p = 0; p < d; ++p) v[p] = 0.5 + 1.5 * static_cast<double>(p) / static_cast<double>(d - 1);
  return v;
}

/// Brute force: the least sum of M^power over paths 0 -> n-1 with exactly K nodes and every step <= eps.
double brute_force_length(const std::vector<std::vector<double>>& M, std::size_t K, double eps, double power) {
  const std::size_t n = M.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> cur(n, inf), next(n);
  cur[0] = 0;
  for (std::size_t k = 1; k < K; ++k) {
    std::fill(next.begin(), next.end(), inf);
    for (std::size_t i = 0; i < n; ++i)
      if (cur[i] < inf)
        for (std::size_t j = i + 1; j < n; ++j)
          if (M[i][j] <= eps) next[j] = std::min(next[j], cur[i] + std::pow(M[i][j], power));
    cur.swap(next);
  }
  return cur[n - 1];
}

/// Brute force: the least eps for which a path of at most K nodes exists (minimax over K-node paths).
double brute_force_epsilon(const std::vector<std::vector<double>>& M, std::size_t K) {
  const std::size_t n = M.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> cur(n, inf), next(n);
  cur[0] = 0;
  double best = inf;
  for (std::size_t k = 1; k < K; ++k) {
    std::fill(next.begin(), next.end(), inf);
    for (std::size_t i = 0; i < n; ++i)
      if (cur[i] < inf)
        for (std::size_t j = i + 1; j < n; ++j) next[j] = std::min(next[j], std::max(cur[i], M[i][j]));
    cur.swap(next);
    best = std::min(best, cur[n - 1]);
  }
  return best;
}

}  // namespace

TEST_CASE("eps-graph search on an additive line finds equal steps lazily", "[scheduler]") {
  // M(i, j) = j - i: every path has the same length; the least eps for 33 nodes over 256 unit
  // steps is 8, and then the only 33-node path takes steps of exactly 8.
  std::size_t calls = 0;
  auto line = [&](std::size_t i, std::size_t j) {
    ++calls;
    return static_cast<double>(j - i);
  };
  schedule::epsilon_search_options o;
  o.target_nodes = 33;
  const auto p = schedule::shortest_epsilon_path(257, line, o);
  REQUIRE(p.nodes.size() == 33);
  for (std::size_t k = 0; k < 33; ++k) CHECK(p.nodes[k] == 8 * k);
  CHECK(p.epsilon == 8.0);
  CHECK(p.length == 256.0);
  CHECK(p.evaluations == calls);
  CHECK(calls < 257 * 256 / 20);  // lazy: a small share of the 32,896 pairs
}

TEST_CASE("eps-graph search matches brute force on non-additive monotone distances", "[scheduler]") {
  // Points on a curved line; M(i, j) = sqrt(|x_j - x_i|) (strictly sub-additive) and |x_j - x_i|^1.5.
  for (double power : {0.5, 1.0, 1.5}) {
    const std::size_t n = 61;
    std::vector<double> x(n);
    for (std::size_t k = 0; k < n; ++k) x[k] = std::pow(static_cast<double>(k) / 60.0, 1.7) + 0.01 * std::sin(k * 1.3);
    std::sort(x.begin(), x.end());
    std::vector<std::vector<double>> M(n, std::vector<double>(n, 0.0));
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j) M[i][j] = std::pow(x[j] - x[i], power);
    for (std::size_t K : {2u, 3u, 7u, 12u, 30u, 61u}) {
      for (bool even : {true, false}) {
        schedule::epsilon_search_options o;
        o.target_nodes = K;
        o.relative_tolerance = 1e-9;
        o.max_band_width = 100;  // exact dynamic programme over the bands
        o.even_steps = even;
        const auto p = schedule::shortest_epsilon_path(n, [&](std::size_t i, std::size_t j) { return M[i][j]; }, o);
        INFO("power " << power << " K " << K << " even_steps " << even);
        REQUIRE(p.nodes.size() == K);
        CHECK(p.nodes.front() == 0);
        CHECK(p.nodes.back() == n - 1);
        CHECK(std::is_sorted(p.nodes.begin(), p.nodes.end()));
        CHECK(std::adjacent_find(p.nodes.begin(), p.nodes.end()) == p.nodes.end());
        const double eps_star = brute_force_epsilon(M, K);
        CHECK(p.epsilon == Approx(eps_star).epsilon(1e-8));
        double sum = 0, squares = 0;
        for (double s : p.steps) {
          CHECK(s <= p.epsilon);
          sum += s;
          squares += s * s;
        }
        CHECK(p.length == Approx(sum).epsilon(1e-12));
        CHECK((even ? squares : sum) == Approx(brute_force_length(M, K, p.epsilon, even ? 2.0 : 1.0)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("fixed-eps shortest path (eq. 20) and its failure when eps is too small", "[scheduler]") {
  const std::size_t n = 41;
  auto concave = [](std::size_t i, std::size_t j) { return std::sqrt(static_cast<double>(j - i)); };
  // sqrt is sub-additive, so the shortest path takes the longest steps allowed: eps = 3 allows
  // 9 units per step; 40 = 4 * 9 + 4 -> cost 4 * 3 + 2 beats any split of the remainder.
  const auto p = schedule::shortest_path_at(n, concave, 3.0);
  CHECK(p.length == Approx(14.0));
  CHECK(p.nodes.size() == 6);
  for (double s : p.steps) CHECK(s <= 3.0);
  CHECK_THROWS_WITH(schedule::shortest_path_at(n, concave, 0.5),
                    Contains("no path from level 0 to level 40") && Contains("increase epsilon"));
  CHECK_THROWS_WITH(schedule::shortest_path_at(n, concave, -1.0), Contains("epsilon = -1"));
}

TEST_CASE("eps-graph search rejects bad arguments", "[scheduler]") {
  auto line = [](std::size_t i, std::size_t j) { return static_cast<double>(j - i); };
  schedule::epsilon_search_options o;
  o.target_nodes = 32;
  CHECK_THROWS_WITH(schedule::shortest_epsilon_path(20, line, o), Contains("fewer candidate levels (20"));
  o.target_nodes = 1;
  CHECK_THROWS_WITH(schedule::shortest_epsilon_path(20, line, o), Contains("target_nodes = 1"));
  o.target_nodes = 2;
  CHECK_THROWS_WITH(schedule::shortest_epsilon_path(1, line, o), Contains("at least 2 levels"));
  o.target_nodes = 5;
  auto broken = [](std::size_t i, std::size_t j) { return j == 7 ? std::nan("") : 1.0 * (j - i); };
  CHECK_THROWS_WITH(schedule::shortest_epsilon_path(20, broken, o), Contains("between levels") && Contains("nan"));
}

TEST_CASE("Sinkhorn distances between corrupted Gaussians match the closed-form W2", "[scheduler]") {
  // x ~ N(0, S) with S diagonal; C = diag(c) gives C x ~ N(0, C S C), and
  // W2^2(N(0, A), N(0, B)) = tr A + tr B - 2 tr (A^1/2 B A^1/2)^1/2 (the Frechet formula).
  // With 512 samples in 16 dimensions the estimate of W2^2 has a relative standard deviation of
  // about sqrt(2 / (512 * 16)) = 1.6%, so W2 is checked to 5%.
  const std::size_t d = 16;
  const auto var = test_variances(d);
  diagonal_attenuation<float> op;
  for (std::size_t p = 0; p < d; ++p) op.rate.push_back(0.2 + 0.1 * static_cast<double>(p));
  const auto slice = gaussian_samples<float>(512, var, 21);
  const std::vector<double> levels{0.0, 0.1, 0.5, 1.0, 2.0, 4.0};
  schedule::wasserstein_options o;
  o.sinkhorn_points = 512;
  schedule::level_distances<diagonal_attenuation<float>> M(op, slice, levels, o);
  auto covariance = [&](double level) {
    Eigen::MatrixXd S = Eigen::MatrixXd::Zero(d, d);
    for (std::size_t p = 0; p < d; ++p) S(p, p) = std::exp(-2 * level * op.rate[p]) * var[p];
    return S;
  };
  const Eigen::VectorXd zero = Eigen::VectorXd::Zero(d);
  for (std::size_t i = 0; i < levels.size(); ++i)
    for (std::size_t j = i + 1; j < levels.size(); ++j) {
      const double exact = std::sqrt(metrics::frechet_distance(zero, covariance(levels[i]), zero, covariance(levels[j])));
      INFO("levels " << levels[i] << " -> " << levels[j]);
      CHECK(M(i, j) == Approx(exact).epsilon(0.05));
    }
}

TEST_CASE("Sinkhorn distances between Gaussian images under the paper's blur match the Frechet formula",
          "[scheduler]") {
  // x ~ N(0, I) on 6 x 6 images; C = the Gaussian blur (appendix G) as a dense 36 x 36 matrix, so
  // C_i x ~ N(0, C_i C_i^T) and W2 between levels is the Frechet formula. The blur matrices nearly
  // commute, so pairing each image with itself is nearly optimal, and with 512 samples the
  // estimate of W2 has a relative standard deviation of about sqrt(2 / (512 * d_eff)) / 2 < 2%
  // for the few (d_eff >= 3) directions the difference of two blurs acts on: checked to 7%.
  // Two disjoint sub-slices averaged (sinkhorn_batches = 2) give the same to within that.
  const std::size_t side = 6, d = side * side;
  const op::gaussian_blur<double> blur(5);
  batch<double> slice(shape4{1024, 1, side, side});
  noise_source{31, 3}.fill(slice);
  const std::vector<double> levels{0.0, 0.5, 1.0, 2.0};
  auto dense = [&](double level) {
    batch<double> basis(shape4{d, 1, side, side}), out;
    basis.fill(0.0);
    for (std::size_t k = 0; k < d; ++k) basis.data()[k * d + k] = 1.0;
    blur.apply(level, basis, out);
    Eigen::MatrixXd C(d, d);  // column k = C e_k
    for (std::size_t k = 0; k < d; ++k)
      for (std::size_t p = 0; p < d; ++p) C(static_cast<Eigen::Index>(p), static_cast<Eigen::Index>(k)) = out.data()[k * d + p];
    return Eigen::MatrixXd(C * C.transpose());
  };
  schedule::wasserstein_options o;
  o.sinkhorn_points = 512;
  schedule::level_distances<op::gaussian_blur<double>> M(blur, slice, levels, o);
  o.sinkhorn_batches = 2;
  schedule::level_distances<op::gaussian_blur<double>> M2(blur, slice, levels, o);
  const Eigen::VectorXd zero = Eigen::VectorXd::Zero(d);
  for (std::size_t i = 0; i < levels.size(); ++i)
    for (std::size_t j = i + 1; j < levels.size(); ++j) {
      const double exact = std::sqrt(metrics::frechet_distance(zero, dense(levels[i]), zero, dense(levels[j])));
      INFO("blur std " << levels[i] << " -> " << levels[j] << ": exact " << exact);
      CHECK(M(i, j) == Approx(exact).epsilon(0.07));
      CHECK(M2(i, j) == Approx(exact).epsilon(0.07));
    }
}

TEST_CASE("scale family: W2 = |alpha_i - alpha_j| sqrt(tr S) and equally spaced alphas are chosen", "[scheduler]") {
  const std::size_t d = 12;
  const auto var = test_variances(d);
  double trace = 0;
  for (double v : var) trace += v;
  const auto slice = gaussian_samples<float>(400, var, 5);
  op::scale<float> op;
  for (auto estimate : {schedule::distance_estimate::sinkhorn, schedule::distance_estimate::sliced}) {
    schedule::wasserstein_options o;
    o.distance = estimate;
    o.levels.spacing = schedule::level_spacing::linear;
    o.levels.count = 24;  // alpha = 1 - k / 24
    o.target_nodes = 7;   // -> steps of 4 candidates
    o.sinkhorn_points = 150;
    const auto r = schedule::wasserstein_schedule(op, slice, o);
    INFO("estimate " << (estimate == schedule::distance_estimate::sinkhorn ? "sinkhorn" : "sliced"));
    REQUIRE(r.path.nodes.size() == 7);
    for (std::size_t k = 0; k < 7; ++k) CHECK(r.path.nodes[k] == 4 * k);
    REQUIRE(r.levels.size() == 25);
    CHECK(r.path_levels.back() == 1.0);
    if (estimate == schedule::distance_estimate::sinkhorn) {
      // sample W2 of a scaling = |da| sqrt(mean |x|^2): within 5% of sqrt(tr S) for 200 samples
      for (double s : r.path.steps) CHECK(s == Approx(4.0 / 24 * std::sqrt(trace)).epsilon(0.05));
      CHECK(r.sinkhorn_pairs == r.path.evaluations);
      CHECK(r.sinkhorn_pairs < 25 * 24 / 4);
    }
    // the schedule: noise stage, then the path's levels on [f, 1]
    const auto& s = r.schedule;
    CHECK(s.level(0.0) == 0.0);
    CHECK(s.sigma(0.0) == 0.0);
    CHECK(s.sigma(0.1) == Approx(0.01 * std::sqrt(10.0)));  // geometric 0.01 -> 0.1 over [0, 0.2]
    CHECK(s.sigma(0.2) == Approx(0.1));
    CHECK(s.level(0.2) == 0.0);
    CHECK(s.level(0.2 + 0.8 * 3 / 6) == Approx(r.path_levels[3]));
    CHECK(s.level(0.2 + 0.8 * 3.5 / 6) == Approx(0.5 * (r.path_levels[3] + r.path_levels[4])));
    CHECK(s.level(1.0) == 1.0);
    CHECK(s.sigma(1.0) == Approx(0.1));
    CHECK(s.operator_name() == "scale");
    CHECK_NOTHROW(schedule::validate_schedule(s, op));
  }
}

TEST_CASE("the scheduler on a non-uniform family follows the Gaussian W2 geometry", "[scheduler]") {
  // Geometric candidates of the diagonal family; the chosen path's steps must all be close to
  // eps, and eps close to the closed-form length / (K - 1) (a geodesic-like family).
  const std::size_t d = 16;
  const auto var = test_variances(d);
  diagonal_attenuation<double> op;
  for (std::size_t p = 0; p < d; ++p) op.rate.push_back(0.2 + 0.1 * static_cast<double>(p));
  const auto slice = gaussian_samples<double>(100, var, 8);
  schedule::wasserstein_options o;
  o.levels.count = 48;
  o.target_nodes = 9;
  std::vector<std::pair<std::string, double>> seen;
  o.progress = [&](std::string_view stage, double f) { seen.emplace_back(std::string(stage), f); };
  const auto r = schedule::wasserstein_schedule(op, slice, o);
  REQUIRE(r.path.nodes.size() == 9);
  for (double s : r.path.steps) {
    CHECK(s <= r.path.epsilon);
    CHECK(s >= 0.6 * r.path.epsilon);  // no wasted short step at 48 candidates
  }
  // The diagonal family's W2 path length along levels (closed form, integrated finely).
  double length = 0;
  for (int k = 0; k < 4000; ++k) {
    const double a = 4.0 * k / 4000, b = 4.0 * (k + 1) / 4000;
    double w = 0;
    for (std::size_t p = 0; p < d; ++p) {
      const double e = std::exp(-a * op.rate[p]) - std::exp(-b * op.rate[p]);
      w += e * e * var[p];
    }
    length += std::sqrt(w);
  }
  CHECK(r.path.length == Approx(length).epsilon(0.1));
  CHECK(r.path.epsilon >= length / 8 * 0.9);
  REQUIRE(!seen.empty());
  CHECK(seen.back().first == "done");
  for (const auto& [stage, f] : seen) CHECK((f >= 0.0 && f <= 1.0));
  CHECK(std::any_of(seen.begin(), seen.end(), [](const auto& e) { return e.first == "epsilon bisection"; }));
}

TEST_CASE("the scheduler rejects bad arguments with clear messages", "[scheduler]") {
  const auto slice = gaussian_samples<float>(50, test_variances(8), 1);
  op::scale<float> op;
  schedule::wasserstein_options o;
  o.levels.count = 20;
  o.target_nodes = 32;
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(op, slice, o), Contains("fewer candidate levels (21"));
  o.target_nodes = 5;
  batch<float> empty(shape4{0, 1, 1, 8});
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(op, empty, o), Contains("slice is empty"));
  batch<float> bad = slice;
  bad(3, 0, 0, 2) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(op, bad, o), Contains("data slice") && Contains("non-finite"));
  o.epsilon = 1e-6;  // fixed eps too small for any path
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(op, slice, o), Contains("no path") && Contains("increase epsilon"));
  o.epsilon = 0;
  o.levels.last = 2.0;  // outside scale's range [0, 1]
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(op, slice, o), Contains("outside the range"));
  diagonal_attenuation<float> unbounded{std::vector<double>(8, 1.0), std::numeric_limits<double>::infinity()};
  o.levels.last = std::nan("");
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(unbounded, slice, o), Contains("no finite maximum level"));
  o.levels.last = 3.0;
  o.levels.first = 5.0;
  CHECK_THROWS_WITH(schedule::wasserstein_schedule(unbounded, slice, o), Contains("first level 5"));
  // a level list handed to level_distances must start at the clean level and increase
  CHECK_THROWS_WITH((schedule::level_distances<op::scale<float>>(op, slice, {0.1, 0.5}, o)),
                    Contains("not the clean level"));
  CHECK_THROWS_WITH((schedule::level_distances<op::scale<float>>(op, slice, {0.0, 0.5, 0.4}, o)),
                    Contains("not increasing at index 2"));
  o.sinkhorn_points = 1;
  CHECK_THROWS_WITH((schedule::level_distances<op::scale<float>>(op, slice, {0.0, 0.5}, o)),
                    Contains("sinkhorn_points = 1"));
}

TEST_CASE("MSE matching (eq. 55) on the scale family has a closed form", "[scheduler]") {
  // C = (1 - theta) I gives mse(theta) = theta^2 E|x|^2 / d, so eq. 55 gives
  // theta_k = sqrt((s_k^2 - s_min^2) / (s_max^2 - s_min^2)), s_k = s_min (s_max / s_min)^(k / (K - 1)).
  const auto slice = gaussian_samples<double>(64, test_variances(8), 2);
  op::scale<double> op;
  schedule::mse_matching_options o;
  o.levels.spacing = schedule::level_spacing::linear;
  o.levels.count = 1000;
  o.target_nodes = 12;
  const auto r = schedule::mse_matching_schedule(op, slice, o);
  REQUIRE(r.path_levels.size() == 12);
  CHECK(r.path_levels.front() == 0.0);
  CHECK(r.path_levels.back() == 1.0);
  for (std::size_t k = 1; k + 1 < 12; ++k) {
    const double s = 0.01 * std::pow(5000.0, k / 11.0);
    const double expected = std::sqrt((s * s - 1e-4) / (2500.0 - 1e-4));
    CHECK(r.path_levels[k] == Approx(expected).margin(2e-3));
  }
  CHECK(std::is_sorted(r.mse.begin(), r.mse.end()));
  CHECK_NOTHROW(schedule::validate_schedule(r.schedule, op));
  o.ve_sigma_max = 0.001;
  CHECK_THROWS_WITH(schedule::mse_matching_schedule(op, slice, o), Contains("ve_sigma_min < ve_sigma_max"));
  o.ve_sigma_max = 50;
  batch<double> empty(shape4{0, 1, 1, 8});
  CHECK_THROWS_WITH(schedule::mse_matching_schedule(op, empty, o), Contains("slice is empty"));
}
