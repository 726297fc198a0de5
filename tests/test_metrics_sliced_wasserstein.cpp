// Sliced Wasserstein (metrics/sliced_wasserstein.hpp): the 1-D quantile formula by hand, exact
// identities for scaled, translated and duplicated sets, quantile profiles, the Gaussian closed
// form on the drawn directions, and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "softdiff/metrics/sliced_wasserstein.hpp"
#include "softdiff/random.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

batch<float> random_images(std::size_t n, std::uint64_t seed) {
  batch<float> x(shape4{n, 1, 3, 4});
  noise_source{seed, 2}.fill(x);
  return x;
}

const noise_source directions{42, stream_for(stream_purpose::user, 1)};

}  // namespace

TEST_CASE("one-dimensional W2 from quantile functions", "[metrics]") {
  // F^-1 = 0 on [0, 1/2), 1 on [1/2, 1); G^-1 = 0, 1, 2 on thirds:
  // (0-1)^2 (1/2 - 1/3) + (1-2)^2 (1 - 2/3) = 1/6 + 1/3
  const std::vector<double> a{0, 1}, b{0, 1, 2};
  CHECK(metrics::detail::wasserstein_1d_squared(a.data(), 2, b.data(), 3) == Approx(0.5));
  CHECK(metrics::detail::wasserstein_1d_squared(b.data(), 3, a.data(), 2) == Approx(0.5));
  const std::vector<double> c{0, 0, 1, 1};  // the same distribution as a
  CHECK(metrics::detail::wasserstein_1d_squared(a.data(), 2, c.data(), 4) == 0.0);
}

TEST_CASE("sliced W2 identities: scaling, translation, duplication", "[metrics]") {
  const auto x = random_images(300, 1);
  const std::size_t K = 50, n = 300, d = 12;
  const metrics::sliced_projector<float> proj(d, K, directions);
  // second moments and the shift along each direction
  std::vector<float> shift(d);
  for (std::size_t c = 0; c < d; ++c) shift[c] = 0.1f * static_cast<float>(c) - 0.4f;
  double moment = 0, along = 0;
  for (std::size_t k = 0; k < K; ++k) {
    const float* th = proj.directions().data() + k * d;
    double v = 0;
    for (std::size_t c = 0; c < d; ++c) v += static_cast<double>(th[c]) * shift[c];
    along += v * v / K;
    for (std::size_t i = 0; i < n; ++i) {
      double p = 0;
      for (std::size_t c = 0; c < d; ++c) p += static_cast<double>(th[c]) * x.data()[i * d + c];
      moment += p * p / (static_cast<double>(K) * n);
    }
  }
  batch<float> scaled = x, moved = x;
  for (std::size_t i = 0; i < x.size(); ++i) {
    scaled.data()[i] *= 0.25f;
    moved.data()[i] += shift[i % d];
  }
  CHECK(metrics::sliced_wasserstein(x, scaled, K, directions) == Approx(0.75 * std::sqrt(moment)).epsilon(1e-5));
  CHECK(metrics::sliced_wasserstein(x, moved, K, directions) == Approx(std::sqrt(along)).epsilon(1e-4));
  CHECK(metrics::sliced_wasserstein(x, x, K, directions) == 0.0);
  batch<float> twice(shape4{600, 1, 3, 4});
  std::copy(x.begin(), x.end(), twice.begin());
  std::copy(x.begin(), x.end(), twice.begin() + static_cast<std::ptrdiff_t>(x.size()));
  CHECK(metrics::sliced_wasserstein(x, twice, K, directions) == Approx(0.0).margin(1e-6));
  const auto y = random_images(200, 2);
  CHECK(metrics::sliced_wasserstein(x, y, K, directions) == Approx(metrics::sliced_wasserstein(y, x, K, directions)));
}

TEST_CASE("quantile profiles: exact with all quantiles, a close lower bound with fewer", "[metrics]") {
  const auto x = random_images(1000, 3);
  batch<float> y = x;
  for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = 1.3f * y.data()[i] + 0.2f;
  const metrics::sliced_projector<float> proj(12, 32, directions);
  const double exact = metrics::sliced_wasserstein(x, y, 32, directions);
  CHECK(metrics::sliced_distance(proj.profile(x), proj.profile(y)) == Approx(exact).epsilon(1e-6));
  const double compressed = metrics::sliced_distance(proj.profile(x, 64), proj.profile(y, 64));
  CHECK(compressed <= exact * (1 + 1e-9));
  CHECK(compressed == Approx(exact).epsilon(0.02));
  const auto p = proj.profile(x, 64);
  CHECK(p.projections == 32);
  CHECK(p.quantiles == 64);
  CHECK(p.points == 1000);
  CHECK_THROWS_WITH(metrics::sliced_distance(p, proj.profile(x, 32)), Contains("differ in shape"));
}

TEST_CASE("sliced W2 of Gaussian samples matches the closed form on the drawn directions", "[metrics]") {
  // Projections of N(0, S) on theta are N(0, theta^T S theta), so per direction
  // W2^2 = (sqrt(theta^T S1 theta) - sqrt(theta^T S2 theta))^2 for S1 = I and S2 = diag(s).
  const std::size_t n = 20000, d = 4, K = 16;
  const std::vector<double> s{0.25, 1.0, 4.0, 2.0};
  batch<double> a(shape4{n, 1, 1, d}), b(shape4{n, 1, 1, d});
  noise_source{7, 1}.fill(a);
  noise_source{8, 1}.fill(b);
  for (std::size_t i = 0; i < b.size(); ++i) b.data()[i] *= std::sqrt(s[i % d]);
  const noise_source dirs{9, 3};
  const metrics::sliced_projector<double> proj(d, K, dirs);
  double expected = 0;
  for (std::size_t k = 0; k < K; ++k) {
    const double* th = proj.directions().data() + k * d;
    double v2 = 0;
    for (std::size_t c = 0; c < d; ++c) v2 += th[c] * th[c] * s[c];
    expected += std::pow(1.0 - std::sqrt(v2), 2) / K;
  }
  CHECK(metrics::sliced_wasserstein(a, b, K, dirs) == Approx(std::sqrt(expected)).epsilon(0.05));
}

TEST_CASE("sliced W2 rejects bad input", "[metrics]") {
  const auto x = random_images(10, 1);
  const batch<float> wide = xt::zeros<float>(shape4{10, 1, 3, 5});
  const batch<float> empty = xt::zeros<float>(shape4{0, 1, 3, 4});
  CHECK_THROWS_WITH(metrics::sliced_wasserstein(x, wide), Contains("dimensions differ"));
  CHECK_THROWS_WITH(metrics::sliced_wasserstein(empty, x), Contains("needs at least 1 point"));
  CHECK_THROWS_WITH(metrics::sliced_projector<float>(12, 0, directions), Contains("at least one projection"));
  const metrics::sliced_projector<float> proj(13, 4, directions);
  CHECK_THROWS_WITH(proj.profile(x), Contains("dimension 12"));
}
