// Log-domain Sinkhorn (schedule/sinkhorn.hpp): agreement with exact OT (an assignment problem
// for n equal-weight points, solved here by brute force over permutations) as the regularisation
// shrinks, marginals of the plan, closed-form cases, and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "softdiff/random.hpp"
#include "softdiff/schedule/sinkhorn.hpp"

using namespace softdiff;
using schedule::sinkhorn_options;
using schedule::sinkhorn_solver;

namespace {

template <class T>
batch<T> random_points(std::size_t n, std::size_t d, std::uint64_t seed) {
  batch<T> x(shape4{n, 1, 1, d});
  noise_source{seed, 7}.fill(x);
  return x;
}

/// Exact W2^2 between n equal-weight points and n equal-weight points: min over permutations.
template <class T>
double exact_w2_squared(const batch<T>& x, const batch<T>& y) {
  const std::size_t n = x.shape()[0], d = x.size() / n;
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < d; ++k) {
        const double e = static_cast<double>(x.data()[i * d + k]) - static_cast<double>(y.data()[perm[i] * d + k]);
        s += e * e;
      }
    best = std::min(best, s / static_cast<double>(n));
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

}  // namespace

TEST_CASE("the vectorisable exp agrees with std::exp on (-708, 0]", "[sinkhorn]") {
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const double x = -708.0 * static_cast<double>(i) / 200000.0;
    worst = std::max(worst, std::abs(schedule::detail::exp_nonpositive(x) / std::exp(x) - 1.0));
  }
  CHECK(worst < 1e-14);
  CHECK(schedule::detail::exp_nonpositive(0.0) == 1.0);
  CHECK(schedule::detail::exp_nonpositive(-1e6) < 1e-300);
}

TEMPLATE_TEST_CASE("sinkhorn approaches exact OT as the regularisation shrinks", "[sinkhorn]", float, double) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const auto x = random_points<TestType>(7, 3, seed);
    const auto y = random_points<TestType>(7, 3, seed + 100);
    const double exact = exact_w2_squared(x, y);
    sinkhorn_solver<TestType> solver;
    double previous_gap = std::numeric_limits<double>::infinity();
    for (double reg : {1e-1, 1e-2, 1e-3, 1e-4}) {
      // Near-degenerate assignments converge slowly at intermediate regularisation: allow many
      // iterations of this 7 x 7 problem.
      sinkhorn_options o;
      o.regularisation = reg;
      o.tolerance = 1e-5;
      o.max_iterations = 200000;
      const auto r = solver.solve(x, y, o);
      INFO("seed " << seed << " regularisation " << reg << " cost " << r.transport_cost << " exact " << exact);
      REQUIRE(r.converged);
      const double gap = std::abs(r.transport_cost - exact);
      CHECK(gap <= previous_gap + 1e-6 * exact);
      // a plan with marginals within 1e-5 cannot beat the optimum by more than about that share
      CHECK(r.transport_cost >= exact * (1 - 1e-4));
      previous_gap = gap;
    }
    CHECK(previous_gap < 1e-4 * exact);
  }
}

TEST_CASE("the sinkhorn plan has the prescribed marginals", "[sinkhorn]") {
  const auto x = random_points<double>(40, 5, 11);
  const auto y = random_points<double>(25, 5, 12);
  sinkhorn_options o;
  o.regularisation = 0.05;
  o.tolerance = 1e-9;
  o.cost_tolerance = 0;  // stop on the marginals only
  sinkhorn_solver<double> solver;
  const auto r = solver.solve(x, y, o);
  REQUIRE(r.converged);
  CHECK(r.marginal_error < 1e-8);
  const auto p = solver.plan();
  double worst_row = 0, worst_col = 0, total = 0;
  for (std::size_t i = 0; i < 40; ++i) {
    double s = 0;
    for (std::size_t j = 0; j < 25; ++j) s += p[i * 25 + j];
    worst_row = std::max(worst_row, std::abs(s - 1.0 / 40));
    total += s;
  }
  for (std::size_t j = 0; j < 25; ++j) {
    double s = 0;
    for (std::size_t i = 0; i < 40; ++i) s += p[i * 25 + j];
    worst_col = std::max(worst_col, std::abs(s - 1.0 / 25));
  }
  CHECK(worst_row < 1e-9);
  CHECK(worst_col < 1e-12);
  CHECK(total == Approx(1.0).epsilon(1e-9));
  // the entropic dual value exceeds the transport cost by eps KL(P | a x b) >= 0
  CHECK(r.dual_value >= r.transport_cost - 1e-9);
}

TEST_CASE("sinkhorn on translated and scaled copies gives the closed-form W2", "[sinkhorn]") {
  // A translation and a positive scaling are gradients of convex functions, so pairing each point
  // with its own image is the optimal plan: W2^2(X, X + v) = |v|^2 and
  // W2^2(aX, bX) = (a - b)^2 mean |x|^2.
  const auto x = random_points<float>(200, 16, 5);
  batch<float> shifted = x, scaled = x;
  std::vector<double> v(16);
  for (std::size_t k = 0; k < 16; ++k) v[k] = 0.25 * std::sin(static_cast<double>(k));
  double v2 = 0, mean_norm = 0;
  for (double e : v) v2 += e * e;
  for (std::size_t i = 0; i < 200; ++i)
    for (std::size_t k = 0; k < 16; ++k) {
      shifted.data()[i * 16 + k] += static_cast<float>(v[k]);
      scaled.data()[i * 16 + k] *= 0.7f;
      mean_norm += static_cast<double>(x.data()[i * 16 + k]) * x.data()[i * 16 + k] / 200.0;
    }
  sinkhorn_options o;
  o.regularisation = 1e-3;
  const auto t = schedule::sinkhorn(x, shifted, o);
  CHECK(t.transport_cost == Approx(v2).epsilon(2e-3));
  const auto s = schedule::sinkhorn(x, scaled, o);
  CHECK(s.w2 == Approx(0.3 * std::sqrt(mean_norm)).epsilon(2e-3));
  const auto same = schedule::sinkhorn(x, x, o);
  CHECK(same.transport_cost < 1e-3 * mean_norm);
}

TEST_CASE("the debiased Sinkhorn divergence approaches exact OT and vanishes on equal sets", "[sinkhorn]") {
  const auto x = random_points<double>(7, 3, 4);
  const auto y = random_points<double>(7, 3, 104);
  const double exact = exact_w2_squared(x, y);
  sinkhorn_solver<double> solver;
  for (double reg : {1e-2, 1e-3, 1e-4}) {
    sinkhorn_options o;
    o.regularisation = reg;
    o.max_iterations = 200000;
    const auto r = solver.divergence(x, y, o);
    INFO("regularisation " << reg << " divergence " << r.divergence << " exact " << exact);
    CHECK(r.divergence == Approx(exact).epsilon(reg < 5e-3 ? 1e-3 : 0.05));
    CHECK(r.w2 == Approx(std::sqrt(r.divergence)));
    CHECK(r.cross.epsilon > 0);
  }
  // S(x, x) = 0; and a translated copy: S(x, x + v) -> |v|^2 (plans are permutations)
  const auto same = solver.divergence(x, x);
  CHECK(same.divergence == Approx(0.0).margin(1e-12));
  batch<double> moved = x;
  for (std::size_t i = 0; i < moved.size(); ++i) moved.data()[i] += 0.1 * static_cast<double>(i % 3);
  CHECK(solver.divergence(x, moved).divergence == Approx(0.01 + 0.04).epsilon(1e-3));
}

TEST_CASE("the divergence of larger clouds matches the converged plain Sinkhorn cost", "[sinkhorn]") {
  // 300 points in 20 dimensions against a slightly attenuated copy: the identity pairing is
  // optimal, both estimates converge to (1 - 0.9)^2 mean |x|^2.
  const auto x = random_points<float>(300, 20, 9);
  batch<float> y = x;
  double mean_norm = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    y.data()[i] *= 0.9f;
    mean_norm += static_cast<double>(x.data()[i]) * x.data()[i] / 300.0;
  }
  sinkhorn_solver<float> solver;
  const auto d = solver.divergence(x, y);
  const auto p = solver.solve(x, y);
  CHECK(d.w2 == Approx(0.1 * std::sqrt(mean_norm)).epsilon(2e-3));
  CHECK(p.w2 == Approx(0.1 * std::sqrt(mean_norm)).epsilon(2e-3));
  CHECK(d.self_x >= 0);
  CHECK(d.self_y >= 0);
}

TEST_CASE("sinkhorn on a given cost matrix", "[sinkhorn]") {
  // Two points each; the cheap assignment costs (0 + 0) / 2, the other (1 + 1) / 2.
  const std::vector<double> cost{0.0, 1.0, 1.0, 0.0};
  sinkhorn_solver<double> solver;
  sinkhorn_options o;
  o.reference = schedule::regularisation_reference::absolute;
  o.regularisation = 0.01;
  const auto r = solver.solve_cost(cost, 2, 2, o);
  CHECK(r.epsilon == 0.01);
  CHECK(r.transport_cost == Approx(std::exp(-100.0)).margin(1e-12));
  // a large regularisation gives the independent coupling, cost = mean of C
  o.regularisation = 1e6;
  CHECK(solver.solve_cost(cost, 2, 2, o).transport_cost == Approx(0.5).epsilon(1e-5));
}

TEST_CASE("sinkhorn rejects bad input with a clear message", "[sinkhorn]") {
  const auto x = random_points<float>(5, 3, 1);
  const auto wide = random_points<float>(5, 4, 2);
  batch<float> empty(shape4{0, 1, 1, 3});
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(schedule::sinkhorn(x, wide), Contains("dimensions differ"));
  CHECK_THROWS_WITH(schedule::sinkhorn(empty, x), Contains("needs at least 1 point"));
  batch<float> bad = x;
  bad(2, 0, 0, 1) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(schedule::sinkhorn(x, bad), Contains("non-finite value") && Contains("point 2"));
  sinkhorn_options o;
  o.regularisation = 0;
  CHECK_THROWS_WITH(schedule::sinkhorn(x, x, o), Contains("regularisation"));
  o = {};
  o.annealing = 1.0;
  CHECK_THROWS_WITH(schedule::sinkhorn(x, x, o), Contains("annealing"));
  o = {};
  o.dual_tolerance = -1;
  CHECK_THROWS_WITH(schedule::sinkhorn(x, x, o), Contains("dual_tolerance"));
  sinkhorn_solver<float> fs;
  CHECK_THROWS_WITH(fs.divergence(x, wide), Contains("dimensions differ"));
  sinkhorn_solver<double> solver;
  CHECK_THROWS_WITH(solver.solve_cost(std::vector<double>{0.0, -1.0}, 1, 2), Contains("non-negative"));
  CHECK_THROWS_WITH(solver.solve_cost(std::vector<double>{0.0, 1.0}, 2, 2), Contains("expected 2 x 2"));
}
