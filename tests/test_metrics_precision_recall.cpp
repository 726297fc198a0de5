// Improved precision and recall (metrics/precision_recall.hpp, Kynkaanniemi et al. 2019):
// identical sets, disjoint sets, a mode-dropping generator, and a small case worked by hand.
#include <catch2/catch.hpp>

#include <xtensor/xtensor.hpp>

#include "softdiff/metrics/precision_recall.hpp"
#include "softdiff/random.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

batch<float> cluster(std::size_t n, float centre, std::uint64_t seed) {
  batch<float> x(shape4{n, 1, 4, 4});
  noise_source{seed, 4}.fill(x);
  for (auto& v : x) v = 0.1f * v + centre;
  return x;
}

batch<float> concat(const batch<float>& a, const batch<float>& b) {
  batch<float> out(shape4{a.shape()[0] + b.shape()[0], 1, 4, 4});
  std::copy(a.begin(), a.end(), out.begin());
  std::copy(b.begin(), b.end(), out.begin() + static_cast<std::ptrdiff_t>(a.size()));
  return out;
}

}  // namespace

TEST_CASE("precision and recall of identical sets are 1", "[metrics]") {
  const auto x = cluster(200, 0.0f, 1);
  const auto r = metrics::precision_recall(x, x);
  CHECK(r.precision == 1.0);
  CHECK(r.recall == 1.0);
}

TEST_CASE("precision and recall of disjoint far sets are 0", "[metrics]") {
  const auto r = metrics::precision_recall(cluster(100, 0.0f, 1), cluster(120, 50.0f, 2));
  CHECK(r.precision == 0.0);
  CHECK(r.recall == 0.0);
}

TEST_CASE("a generator that drops a mode keeps its precision and loses half its recall", "[metrics]") {
  // Two far modes. A generator with fresh samples of both modes and one with the first mode only
  // have about the same precision; the second covers only the first mode's half of the real set.
  const auto real = concat(cluster(200, 0.0f, 3), cluster(200, 10.0f, 4));
  const auto both = concat(cluster(100, 0.0f, 5), cluster(100, 10.0f, 6));
  const auto one = cluster(200, 0.0f, 7);
  const auto full = metrics::precision_recall(real, both, 3);
  const auto dropped = metrics::precision_recall(real, one, 3);
  CHECK(full.precision > 0.5);
  CHECK(dropped.precision == Approx(full.precision).margin(0.1));
  CHECK(dropped.recall <= 0.5);
  CHECK(dropped.recall == Approx(full.recall / 2).margin(0.1));
}

TEST_CASE("precision and recall on a one-dimensional case worked by hand", "[metrics]") {
  // real {0, 1, 2, 3}: k = 1 radii all 1. generated {0.5, 2.5, 10, 20}: k = 1 radii 2, 2, 7.5, 10.
  // precision: 0.5 and 2.5 lie within 1 of a real point, 10 and 20 do not -> 1/2.
  // recall: every real point lies within 2 of 0.5 or 2.5 -> 1.
  xt::xtensor<double, 2> real = {{0}, {1}, {2}, {3}}, generated = {{0.5}, {2.5}, {10}, {20}};
  const auto r = metrics::precision_recall(real, generated, 1);
  CHECK(r.precision == 0.5);
  CHECK(r.recall == 1.0);
  // with k = 2 the real radii become 1, 1, 1, 1 (second neighbour of 1 is at 1) -> unchanged
  // precision; generated radii grow and recall stays 1
  const auto r2 = metrics::precision_recall(real, generated, 2);
  CHECK(r2.precision == 0.5);
  CHECK(r2.recall == 1.0);
}

TEST_CASE("precision and recall reject bad input", "[metrics]") {
  const auto x = cluster(3, 0.0f, 1);
  const auto y = cluster(10, 0.0f, 2);
  CHECK_THROWS_WITH(metrics::precision_recall(x, y, 3), Contains("more than k = 3"));
  CHECK_THROWS_WITH(metrics::precision_recall(y, y, 0), Contains("k must be >= 1"));
  const batch<float> other = xt::zeros<float>(shape4{10, 1, 4, 5});
  CHECK_THROWS_WITH(metrics::precision_recall(y, other), Contains("dimensions differ"));
}
