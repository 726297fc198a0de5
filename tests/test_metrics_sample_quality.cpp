// metrics::sample_quality_reference on synthetic images with simple feature maps: identities
// (samples == held-out -> Frechet 0, a shifted set -> the closed form), the floor as specified
// (K evenly strided training images against the held-out fit), sliced W and precision / recall
// against the functions they reuse, float and double, and the bad-input errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "softdiff/metrics/frechet.hpp"
#include "softdiff/metrics/precision_recall.hpp"
#include "softdiff/metrics/sample_quality.hpp"
#include "softdiff/metrics/sliced_wasserstein.hpp"
#include "softdiff/random.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

template <class T>
batch<T> normal_images(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::uint64_t seed, double scale,
                       double shift = 0) {
  batch<T> x(shape4{n, c, h, w});
  noise_source{seed, stream_for(stream_purpose::user, 7)}.fill(x);
  for (auto& v : x) v = static_cast<T>(scale * static_cast<double>(v) + shift);
  return x;
}

/// Every pixel is a feature (the Frechet distance in pixel space).
template <class T>
xt::xtensor<T, 2> flatten(const batch<T>& x) {
  const std::size_t n = x.shape()[0], d = x.shape()[1] * x.shape()[2] * x.shape()[3];
  auto f = xt::xtensor<T, 2>::from_shape({n, d});
  std::copy(x.data(), x.data() + n * d, f.data());
  return f;
}

template <class T>
batch<T> rows(const batch<T>& x, std::size_t first, std::size_t n, std::size_t stride = 1) {
  const std::size_t d = x.shape()[1] * x.shape()[2] * x.shape()[3];
  batch<T> out(shape4{n, x.shape()[1], x.shape()[2], x.shape()[3]});
  for (std::size_t i = 0; i < n; ++i)
    std::copy(x.data() + (first + i * stride) * d, x.data() + (first + i * stride + 1) * d, out.data() + i * d);
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("sample_quality: identities and the floor", "[metrics][sample_quality]", float, double) {
  using T = TestType;
  const std::size_t k = 40;
  const batch<T> held_out = normal_images<T>(k, 1, 2, 3, 1, 1.0);
  const batch<T> training = normal_images<T>(3 * k + 2, 1, 2, 3, 2, 1.3, 0.2);
  metrics::sample_quality_options opt;
  opt.chunk = 7;  // several calls of the feature map per set
  metrics::sample_quality_reference<T> ref(held_out, training, flatten<T>, k, opt);
  CHECK(ref.sample_count() == k);
  CHECK(ref.feature_dimension() == 6);

  // floor: K evenly strided training images (stride floor(122 / 40) = 3) against the held-out fit
  const batch<T> floor_set = rows(training, 0, k, 3);
  const double floor = metrics::frechet_distance(metrics::fit_gaussian(floor_set), metrics::fit_gaussian(held_out));
  CHECK(ref.frechet_floor() == Approx(floor).epsilon(1e-9));
  CHECK(floor > 0.1);

  SECTION("samples equal to the held-out set score 0 and full precision and recall") {
    const metrics::sample_quality q = ref.evaluate(held_out);
    CHECK(q.count == k);
    CHECK(q.frechet == Approx(0).margin(1e-6));
    CHECK(q.frechet_floor == ref.frechet_floor());
    CHECK(q.sliced_w == Approx(0).margin(1e-6));
    CHECK(q.precision == 1.0);
    CHECK(q.recall == 1.0);
  }
  SECTION("a shifted set: d^2 = ||shift||^2 (same covariance), and SW against its own definition") {
    const double c = 0.5;
    batch<T> shifted = held_out;
    for (auto& v : shifted) v = static_cast<T>(v + c);
    const metrics::sample_quality q = ref.evaluate(shifted);
    CHECK(q.frechet == Approx(6 * c * c).epsilon(1e-4));
    // moving every point by the same vector moves every projection by <theta, c 1>, so
    // SW^2 = c^2 mean_k <theta_k, 1>^2, as sliced_wasserstein computes with the same directions
    CHECK(q.sliced_w == Approx(metrics::sliced_wasserstein(shifted, held_out, 128)).epsilon(1e-5));
    CHECK(q.sliced_w > 0.1);
    CHECK(q.sliced_w_floor == Approx(metrics::sliced_wasserstein(floor_set, held_out, 128)).epsilon(1e-5));
  }
  SECTION("precision and recall are Kynkaanniemi's on the features, equal set sizes") {
    const batch<T> other = normal_images<T>(k, 1, 2, 3, 9, 2.0, 1.0);
    const metrics::sample_quality q = ref.evaluate(other);
    const auto pr = metrics::precision_recall(flatten(held_out), flatten(other), 3);
    CHECK(q.precision == pr.precision);
    CHECK(q.recall == pr.recall);
    CHECK(q.precision < 1.0);
    CHECK(q.frechet == Approx(metrics::frechet_distance(flatten(other), flatten(held_out))).epsilon(1e-9));
  }
}

TEST_CASE("sample_quality: a feature map with fewer features; many sample sets", "[metrics][sample_quality]") {
  const std::size_t k = 30;
  const batch<float> held_out = normal_images<float>(100, 2, 4, 4, 3, 1.0);
  const batch<float> training = normal_images<float>(200, 2, 4, 4, 4, 1.0);
  int calls = 0;
  // per-channel means: 2 features
  metrics::feature_map<float> means = [&calls](const batch<float>& x) {
    ++calls;
    const std::size_t n = x.shape()[0], hw = x.shape()[2] * x.shape()[3];
    auto f = xt::xtensor<float, 2>::from_shape({n, 2});
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t c = 0; c < 2; ++c) {
        double s = 0;
        for (std::size_t p = 0; p < hw; ++p) s += x.data()[(i * 2 + c) * hw + p];
        f(i, c) = static_cast<float>(s / static_cast<double>(hw));
      }
    return f;
  };
  metrics::sample_quality_reference<float> ref(held_out, training, means, k);
  CHECK(calls == 2);  // held-out, training subset: once each, chunk 256
  CHECK(ref.feature_dimension() == 2);
  const batch<float> a = rows(held_out, 0, k), b = rows(held_out, 50, k);
  const auto qa = ref.evaluate(a), qb = ref.evaluate(b);
  CHECK(calls == 4);
  CHECK(qa.frechet_floor == qb.frechet_floor);
  CHECK(qa.precision == 1.0);  // the first K held-out images are the precision / recall reference
  CHECK(qa.recall == 1.0);
  CHECK(std::isfinite(qb.frechet));
  CHECK(qb.frechet > 0);
  CHECK(ref.evaluate(b).frechet == qb.frechet);  // deterministic
}

TEST_CASE("sample_quality: bad input names what is wrong", "[metrics][sample_quality]") {
  const std::size_t k = 10;
  const batch<float> held_out = normal_images<float>(20, 1, 2, 2, 1, 1.0);
  const batch<float> training = normal_images<float>(20, 1, 2, 2, 2, 1.0);
  metrics::feature_map<float> f = flatten<float>;
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, normal_images<float>(20, 1, 3, 2, 2, 1.0), f, k)),
                    Contains("image shapes differ: held-out [20, 1, 2, 2], training [20, 1, 3, 2]"));
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, training, f, 25)),
                    Contains("20 held-out images, fewer than the 25 samples"));
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, rows(training, 0, 5), f, k)),
                    Contains("5 training images, fewer than the 10 needed for the floor"));
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, training, f, 3)),
                    Contains("must exceed the k-NN k = 3"));
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, training, metrics::feature_map<float>{}, k)),
                    Contains("no feature map"));
  metrics::feature_map<float> wrong_rows = [](const batch<float>& x) {
    return xt::xtensor<float, 2>(xt::zeros<float>({x.shape()[0] + 1, std::size_t{3}}));
  };
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, training, wrong_rows, k)),
                    Contains("returned 21 rows for 20 held-out images"));
  batch<float> bad_held_out = held_out;
  bad_held_out.data()[9] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(bad_held_out, training, f, k)),
                    Contains("held-out images: non-finite value inf in point 2"));

  metrics::sample_quality_reference<float> ref(held_out, training, f, k);
  batch<float> s = rows(held_out, 0, k);
  s.data()[13] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(ref.evaluate(s), Contains("sample_quality: samples: non-finite value nan in point 3"));
  CHECK_THROWS_WITH(ref.evaluate(rows(held_out, 0, k - 1)), Contains("9 samples, but the reference was prepared for 10"));
  CHECK_THROWS_WITH(ref.evaluate(normal_images<float>(k, 1, 4, 1, 1, 1.0)),
                    Contains("samples have shape [10, 1, 4, 1] but the reference images [20, 1, 2, 2]"));
  int n = 0;
  metrics::feature_map<float> unstable = [&n](const batch<float>& x) {
    return xt::xtensor<float, 2>(xt::zeros<float>({x.shape()[0], ++n == 1 ? std::size_t{4} : std::size_t{3}}));
  };
  CHECK_THROWS_WITH((metrics::sample_quality_reference<float>(held_out, training, unstable, k)),
                    Contains("returned 3 features per image for the training images, expected 4"));
}
