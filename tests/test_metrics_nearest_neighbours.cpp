// Nearest neighbours (metrics/nearest_neighbours.hpp): agreement with a float64 brute force
// across GEMM tiles, exact zero distance for memorised copies, and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "softdiff/metrics/nearest_neighbours.hpp"
#include "softdiff/random.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

TEST_CASE("k nearest neighbours agree with brute force across GEMM tiles", "[metrics]") {
  // 5,000 training points: more than one 4,096-row tile of the reference set.
  const std::size_t n_train = 5000, n_query = 70, d = 8, k = 4;
  batch<float> train(shape4{n_train, 2, 2, 2}), query(shape4{n_query, 2, 2, 2});
  noise_source{1, 5}.fill(train);
  noise_source{2, 5}.fill(query);
  const auto nn = metrics::nearest_neighbours(query, train, k);
  REQUIRE(nn.k == k);
  REQUIRE(nn.queries == n_query);
  std::vector<std::pair<double, std::size_t>> all(n_train);
  for (std::size_t q = 0; q < n_query; ++q) {
    for (std::size_t r = 0; r < n_train; ++r) {
      double s = 0;
      for (std::size_t c = 0; c < d; ++c) {
        const double e = static_cast<double>(query.data()[q * d + c]) - train.data()[r * d + c];
        s += e * e;
      }
      all[r] = {std::sqrt(s), r};
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    for (std::size_t s = 0; s < k; ++s) {
      CHECK(nn.index[q * k + s] == all[s].second);
      CHECK(nn.distance[q * k + s] == Approx(all[s].first).epsilon(1e-12));
    }
    CHECK(nn.nearest(q) == all[0].second);
  }
}

TEST_CASE("a copied training image is its own nearest neighbour at distance 0", "[metrics]") {
  batch<float> train(shape4{300, 1, 28, 28});
  noise_source{3, 5}.fill(train);
  for (auto& v : train) v = std::tanh(v) + 3.0f;  // large norms: the GEMM form alone would not give 0
  batch<float> samples(shape4{2, 1, 28, 28});
  std::copy_n(train.data() + 17 * 784, 784, samples.data());
  std::copy_n(train.data() + 250 * 784, 784, samples.data() + 784);
  const auto nn = metrics::nearest_neighbours(samples, train, 2);
  CHECK(nn.nearest(0) == 17);
  CHECK(nn.nearest_distance(0) == 0.0);
  CHECK(nn.nearest(1) == 250);
  CHECK(nn.nearest_distance(1) == 0.0);
  CHECK(nn.distance[1] > 0.0);
}

TEST_CASE("nearest neighbours reject bad input", "[metrics]") {
  batch<float> train(shape4{5, 1, 4, 4}), samples(shape4{2, 1, 4, 4}), other(shape4{2, 1, 2, 8});
  noise_source{4, 5}.fill(train);
  noise_source{5, 5}.fill(samples);
  other.fill(0.0f);
  CHECK_THROWS_WITH(metrics::nearest_neighbours(other, train), Contains("image shapes differ"));
  CHECK_THROWS_WITH(metrics::nearest_neighbours(samples, train, 6), Contains("only 5"));
  CHECK_THROWS_WITH(metrics::nearest_neighbours(samples, train, 0), Contains("k must be >= 1"));
  samples(1, 0, 2, 2) = std::nanf("");
  CHECK_THROWS_WITH(metrics::nearest_neighbours(samples, train), Contains("non-finite") && Contains("point 1"));
}
