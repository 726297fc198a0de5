#pragma once
// Frechet distance between two Gaussians fitted to feature sets (Heusel et al. 2017; FID when the
// features are Inception activations). For N(mu1, S1) and N(mu2, S2):
//   d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2}),
// which is also W2^2 between the two Gaussians. frechet_distance returns d^2 (the number FID
// reports). Square roots of symmetric positive semi-definite matrices come from Eigen's
// SelfAdjointEigenSolver, S^{1/2} = V diag(sqrt(max(lambda, 0))) V^T, so the result is real and the
// trace term uses the eigenvalues of the symmetric S1^{1/2} S2 S1^{1/2}.
// Fitting is in double: mean, then the unbiased covariance (divided by N - 1, as numpy.cov) from
// blocked GEMMs over the rows.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include <Eigen/Dense>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::metrics {

struct gaussian_fit {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
  std::size_t count = 0;
};

/// Mean and unbiased covariance of the rows of x (N >= 2 points).
template <class T>
[[nodiscard]] gaussian_fit fit_gaussian(const detail::point_cloud<T>& x) {
  detail::check_cloud(x, "fit_gaussian", 2);
  const std::size_t n = x.rows, d = x.cols;
  gaussian_fit g{Eigen::VectorXd::Zero(static_cast<Eigen::Index>(d)),
                 Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d)), n};
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < d; ++k) g.mean[static_cast<Eigen::Index>(k)] += static_cast<double>(x.data[i * d + k]);
  g.mean /= static_cast<double>(n);
  constexpr std::size_t block = 256;
  std::vector<double> centred(std::min(block, n) * d);
  // Row-major d x d accumulator; Eigen's default is column-major, but the matrix is symmetric.
  double* sigma = g.covariance.data();
  for (std::size_t b = 0; b < n; b += block) {
    const std::size_t rows = std::min(block, n - b);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t k = 0; k < d; ++k)
        centred[i * d + k] = static_cast<double>(x.data[(b + i) * d + k]) - g.mean[static_cast<Eigen::Index>(k)];
    backend::cpu::gemm<double>(true, false, static_cast<int>(d), static_cast<int>(d), static_cast<int>(rows), 1.0,
                               centred.data(), static_cast<int>(d), centred.data(), static_cast<int>(d), 1.0, sigma,
                               static_cast<int>(d));
  }
  g.covariance /= static_cast<double>(n - 1);
  g.covariance = 0.5 * (g.covariance + g.covariance.transpose()).eval();
  return g;
}

template <class T>
[[nodiscard]] gaussian_fit fit_gaussian(const xt::xtensor<T, 2>& features) {
  return fit_gaussian(detail::points_of(features));
}

/// Images as features (one flattened image per row).
template <class T>
[[nodiscard]] gaussian_fit fit_gaussian(const batch<T>& images) {
  return fit_gaussian(detail::points_of(images));
}

/// S^{1/2} of a symmetric positive semi-definite S (negative round-off eigenvalues clamped to 0).
[[nodiscard]] inline Eigen::MatrixXd symmetric_sqrt(const Eigen::MatrixXd& S) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
  softdiff::detail::require(es.info() == Eigen::Success, "symmetric_sqrt: the eigen-decomposition failed");
  const Eigen::VectorXd root = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return es.eigenvectors() * root.asDiagonal() * es.eigenvectors().transpose();
}

/// d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2}).
[[nodiscard]] inline double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& S1,
                                             const Eigen::VectorXd& mu2, const Eigen::MatrixXd& S2) {
  using softdiff::detail::require;
  const auto d = mu1.size();
  require(d > 0, "frechet_distance: empty mean");
  require(mu2.size() == d && S1.rows() == d && S1.cols() == d && S2.rows() == d && S2.cols() == d,
          "frechet_distance: sizes differ: mu1 ", mu1.size(), ", mu2 ", mu2.size(), ", S1 ", S1.rows(), "x", S1.cols(),
          ", S2 ", S2.rows(), "x", S2.cols());
  require(mu1.allFinite() && mu2.allFinite() && S1.allFinite() && S2.allFinite(),
          "frechet_distance: non-finite mean or covariance");
  const double asym = std::max((S1 - S1.transpose()).cwiseAbs().maxCoeff(), (S2 - S2.transpose()).cwiseAbs().maxCoeff());
  const double scale = std::max({1.0, S1.cwiseAbs().maxCoeff(), S2.cwiseAbs().maxCoeff()});
  require(asym <= 1e-9 * scale, "frechet_distance: a covariance is not symmetric (largest |S - S^T| = ", asym, ")");
  const Eigen::MatrixXd root1 = symmetric_sqrt(S1);
  Eigen::MatrixXd inner = root1 * S2 * root1;
  inner = 0.5 * (inner + inner.transpose()).eval();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(inner, Eigen::EigenvaluesOnly);
  require(es.info() == Eigen::Success, "frechet_distance: the eigen-decomposition failed");
  const double trace_root = es.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  const double d2 = (mu1 - mu2).squaredNorm() + S1.trace() + S2.trace() - 2.0 * trace_root;
  return std::max(d2, 0.0);
}

[[nodiscard]] inline double frechet_distance(const gaussian_fit& a, const gaussian_fit& b) {
  return frechet_distance(a.mean, a.covariance, b.mean, b.covariance);
}

/// d^2 between Gaussians fitted to two feature sets (rows = samples, same feature dimension).
template <class T>
[[nodiscard]] double frechet_distance(const xt::xtensor<T, 2>& a, const xt::xtensor<T, 2>& b) {
  detail::check_same_dimension(detail::points_of(a), detail::points_of(b), "frechet_distance");
  return frechet_distance(fit_gaussian(a), fit_gaussian(b));
}

}  // namespace softdiff::metrics
