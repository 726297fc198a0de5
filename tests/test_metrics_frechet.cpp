// Frechet distance (metrics/frechet.hpp):
//   d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
// against hand-computed closed forms, an independent formula (eigenvalues of S1 S2), and the
// fitting of means and unbiased covariances.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <xtensor/xtensor.hpp>

#include "softdiff/metrics/frechet.hpp"
#include "softdiff/random.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

Eigen::MatrixXd random_spd(int d, std::uint64_t seed) {
  xt::xtensor<double, 4> a(std::array<std::size_t, 4>{1, 1, static_cast<std::size_t>(d), static_cast<std::size_t>(d)});
  noise_source{seed, 1}.fill(a);
  Eigen::MatrixXd A(d, d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) A(i, j) = a(0, 0, i, j);
  return A * A.transpose() / d + 0.1 * Eigen::MatrixXd::Identity(d, d);
}

}  // namespace

TEST_CASE("Frechet distance of diagonal Gaussians: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2", "[metrics]") {
  Eigen::VectorXd mu1(3), mu2(3), a(3), b(3);
  mu1 << 1, 2, 3;
  mu2 << 0, 2, 5;
  a << 4, 1, 9;
  b << 1, 1, 16;
  const double expected = (1 + 0 + 4) + (1 + 0 + 1);  // (2-1)^2 + 0 + (3-4)^2
  CHECK(metrics::frechet_distance(mu1, Eigen::MatrixXd(a.asDiagonal()), mu2, Eigen::MatrixXd(b.asDiagonal())) ==
        Approx(expected).epsilon(1e-12));
}

TEST_CASE("Frechet distance of full covariances", "[metrics]") {
  // S1 = I, S2 = [[2, 1], [1, 2]] (eigenvalues 3 and 1): d^2 = 2 + 4 - 2 (sqrt 3 + 1) = 4 - 2 sqrt 3
  const Eigen::VectorXd zero = Eigen::VectorXd::Zero(2);
  Eigen::MatrixXd S2(2, 2);
  S2 << 2, 1, 1, 2;
  CHECK(metrics::frechet_distance(zero, Eigen::MatrixXd::Identity(2, 2), zero, S2) ==
        Approx(4 - 2 * std::sqrt(3.0)).epsilon(1e-12));
  // Commuting pair with the same eigenvectors: (sqrt 4 - sqrt 1)^2 + (sqrt 9 - sqrt 16)^2 = 2
  const double c = std::cos(0.3), s = std::sin(0.3);
  Eigen::MatrixXd Q(2, 2);
  Q << c, -s, s, c;
  const Eigen::MatrixXd A = Q * Eigen::Vector2d(4, 9).asDiagonal() * Q.transpose();
  const Eigen::MatrixXd B = Q * Eigen::Vector2d(1, 16).asDiagonal() * Q.transpose();
  CHECK(metrics::frechet_distance(zero, A, zero, B) == Approx(2.0).epsilon(1e-12));
}

TEST_CASE("Frechet distance agrees with tr sqrt(S1 S2) from the eigenvalues of S1 S2", "[metrics]") {
  // S1 S2 is similar to S1^1/2 S2 S1^1/2, so tr (S1^1/2 S2 S1^1/2)^1/2 = sum sqrt(lambda_i(S1 S2)).
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const int d = 7;
    const Eigen::MatrixXd S1 = random_spd(d, seed), S2 = random_spd(d, seed + 10);
    Eigen::VectorXd mu1 = Eigen::VectorXd::LinSpaced(d, 0, 1), mu2 = Eigen::VectorXd::Constant(d, 0.3);
    const Eigen::EigenSolver<Eigen::MatrixXd> es(S1 * S2);
    double tr = 0;
    for (int i = 0; i < d; ++i) tr += std::sqrt(es.eigenvalues()[i].real());
    const double expected = (mu1 - mu2).squaredNorm() + S1.trace() + S2.trace() - 2 * tr;
    const double got = metrics::frechet_distance(mu1, S1, mu2, S2);
    CHECK(got == Approx(expected).epsilon(1e-10));
    CHECK(metrics::frechet_distance(mu2, S2, mu1, S1) == Approx(got).epsilon(1e-10));
    CHECK(metrics::frechet_distance(mu1, S1, mu1, S1) == Approx(0.0).margin(1e-10));
  }
}

TEST_CASE("fit_gaussian gives the mean and the unbiased covariance", "[metrics]") {
  xt::xtensor<double, 2> f = {{1, 2}, {3, 0}, {5, 4}, {-1, 2}};
  const auto g = metrics::fit_gaussian(f);
  CHECK(g.count == 4);
  CHECK(g.mean[0] == Approx(2.0));
  CHECK(g.mean[1] == Approx(2.0));
  // deviations (-1, 0), (1, -2), (3, 2), (-3, 0): sums of products / 3
  CHECK(g.covariance(0, 0) == Approx(20.0 / 3));
  CHECK(g.covariance(1, 1) == Approx(8.0 / 3));
  CHECK(g.covariance(0, 1) == Approx(4.0 / 3));
  CHECK(g.covariance(1, 0) == Approx(4.0 / 3));
}

TEST_CASE("Frechet distance of fitted samples approaches the population value", "[metrics]") {
  // 20,000 float samples of N(mu, S) in 6 dimensions (more rows than one GEMM block) against
  // N(0, I): the fitted d^2 is within a few per cent of the exact one.
  const int d = 6;
  const Eigen::MatrixXd S = random_spd(d, 4);
  const Eigen::LLT<Eigen::MatrixXd> llt(S);
  const Eigen::MatrixXd L = llt.matrixL();
  const Eigen::VectorXd mu = Eigen::VectorXd::LinSpaced(d, -0.5, 0.5);
  const std::size_t n = 20000;
  xt::xtensor<float, 2> a({n, static_cast<std::size_t>(d)}), b({n, static_cast<std::size_t>(d)});
  noise_source{5, 1}.fill(std::span<float>(a.data(), a.size()));
  noise_source{6, 1}.fill(std::span<float>(b.data(), b.size()));
  for (std::size_t i = 0; i < n; ++i) {
    Eigen::VectorXd z(d);
    for (int k = 0; k < d; ++k) z[k] = a(i, k);
    const Eigen::VectorXd x = mu + L * z;
    for (int k = 0; k < d; ++k) a(i, k) = static_cast<float>(x[k]);
  }
  const double exact = metrics::frechet_distance(mu, S, Eigen::VectorXd::Zero(d), Eigen::MatrixXd::Identity(d, d));
  CHECK(metrics::frechet_distance(a, b) == Approx(exact).epsilon(0.05));
}

TEST_CASE("Frechet distance rejects bad input", "[metrics]") {
  const Eigen::VectorXd mu = Eigen::VectorXd::Zero(2);
  Eigen::MatrixXd S = Eigen::MatrixXd::Identity(2, 2);
  CHECK_THROWS_WITH(metrics::frechet_distance(mu, S, Eigen::VectorXd::Zero(3), Eigen::MatrixXd::Identity(3, 3)),
                    Contains("sizes differ"));
  Eigen::MatrixXd skew = S;
  skew(0, 1) = 0.5;
  CHECK_THROWS_WITH(metrics::frechet_distance(mu, skew, mu, S), Contains("not symmetric"));
  Eigen::MatrixXd nan = S;
  nan(1, 1) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(metrics::frechet_distance(mu, S, mu, nan), Contains("non-finite"));
  xt::xtensor<float, 2> one = {{1.0f, 2.0f}};
  CHECK_THROWS_WITH(metrics::fit_gaussian(one), Contains("at least 2 point"));
  xt::xtensor<float, 2> two = {{1.0f, 2.0f}, {3.0f, 4.0f}}, three = {{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}};
  CHECK_THROWS_WITH(metrics::frechet_distance(two, three), Contains("dimensions differ"));
}
