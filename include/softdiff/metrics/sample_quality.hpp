#pragma once
// Sample quality of a generative model against held-out data, for comparing samplers and step
// counts (Soft Diffusion, Figure 3: FID against the number of function evaluations):
//   frechet        d^2 between Gaussians fitted to the features of the samples and of the
//                  held-out set (frechet.hpp): ||mu_g - mu_r||^2 + tr(S_g + S_r - 2 (S_g^1/2 S_r S_g^1/2)^1/2);
//   frechet_floor  the same for as many TRAINING images as there are samples against the same
//                  held-out fit: what a perfect model would score. A Gaussian fitted to K points is
//                  biased (the estimate grows as K falls), so the floor uses K points too and the
//                  two numbers carry the same bias;
//   sliced_w       sliced W_2 in pixel space (sliced_wasserstein.hpp), samples vs the held-out
//                  set, exact 1-D W_2 per direction (sliced_w_floor: training subset vs held-out);
//   precision, recall  on k-NN manifolds of the features (Kynkaanniemi et al. 2019,
//                  precision_recall.hpp) against the first K held-out images, equal set sizes as
//                  that paper recommends.
// Everything about the reference sets (feature fits, k-NN radii, sorted projections) is computed
// once in the constructor, so evaluating many sample sets costs only their own features.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "softdiff/error.hpp"
#include "softdiff/metrics/detail/point_cloud.hpp"
#include "softdiff/metrics/frechet.hpp"
#include "softdiff/metrics/precision_recall.hpp"
#include "softdiff/metrics/sliced_wasserstein.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::metrics {

/// Any callable mapping N images [N, C, H, W] to N feature rows [N, F] (F the same for every call),
/// e.g. the penultimate layer of a classifier.
template <class T = float>
using feature_map = std::function<xt::xtensor<T, 2>(const batch<T>&)>;

struct sample_quality_options {
  std::size_t neighbours = 3;     // k of the k-NN manifolds
  std::size_t projections = 128;  // directions of the sliced Wasserstein distance
  std::size_t chunk = 256;        // images per call of the feature map (bounds its memory)
  std::uint64_t seed = 0;         // of the sliced Wasserstein directions
};

struct sample_quality {
  std::size_t count = 0;  // samples evaluated
  double frechet = 0, frechet_floor = 0;
  double sliced_w = 0, sliced_w_floor = 0;
  double precision = 0, recall = 0;
};

namespace detail {

/// `images` (every image) as a new batch [n, C, H, W] of rows begin, begin + stride, ...
template <class T>
[[nodiscard]] batch<T> strided_rows(const batch<T>& images, std::size_t n, std::size_t stride) {
  const shape4 s = shape_of(images);
  const std::size_t d = s[1] * s[2] * s[3];
  batch<T> out(shape4{n, s[1], s[2], s[3]});
  for (std::size_t i = 0; i < n; ++i)
    std::copy(images.data() + i * stride * d, images.data() + (i * stride + 1) * d, out.data() + i * d);
  return out;
}

/// features(images) in chunks of `chunk` images, checked: n rows, `dimension` columns (0: any,
/// set on the first call), all finite.
template <class T>
[[nodiscard]] xt::xtensor<T, 2> chunked_features(const feature_map<T>& features, const batch<T>& images,
                                                 std::size_t chunk, std::size_t& dimension, const char* what) {
  const shape4 s = shape_of(images);
  const std::size_t n = s[0], d = s[1] * s[2] * s[3];
  xt::xtensor<T, 2> out;
  batch<T> part;
  for (std::size_t b = 0; b < n; b += chunk) {
    const std::size_t m = std::min(chunk, n - b);
    part.resize(shape4{m, s[1], s[2], s[3]});
    std::copy(images.data() + b * d, images.data() + (b + m) * d, part.data());
    const xt::xtensor<T, 2> f = features(part);
    softdiff::detail::require(f.shape()[0] == m, "sample_quality: the feature map returned ", f.shape()[0],
                              " rows for ", m, " ", what, " images");
    if (dimension == 0) dimension = f.shape()[1];
    softdiff::detail::require(f.shape()[1] == dimension && dimension > 0, "sample_quality: the feature map returned ",
                              f.shape()[1], " features per image for the ", what, " images, expected ", dimension);
    if (b == 0) out = xt::xtensor<T, 2>::from_shape({n, dimension});
    std::copy(f.data(), f.data() + m * dimension, out.data() + b * dimension);
  }
  const std::string label = softdiff::detail::concat("sample_quality: features of the ", what, " images");
  check_cloud(points_of(out), label.c_str());
  return out;
}

}  // namespace detail

/// The held-out and training statistics that every sample set of `sample_count` images is
/// compared with.
template <class T = float>
class sample_quality_reference {
public:
  /// held_out: the reference images (e.g. a test split, at least sample_count of them); training:
  /// at least sample_count training images, of which sample_count evenly strided ones give the
  /// floor. Image shapes must agree; every value must be finite.
  sample_quality_reference(const batch<T>& held_out, const batch<T>& training, feature_map<T> features,
                           std::size_t sample_count, sample_quality_options options = {})
      : features_(std::move(features)), options_(options), count_(sample_count), image_(shape_of(held_out)),
        projector_(image_[1] * image_[2] * image_[3], options.projections,
                   noise_source{options.seed, stream_for(stream_purpose::user, 0x5157)}) {
    using softdiff::detail::require;
    require(static_cast<bool>(features_), "sample_quality: no feature map");
    require(options_.chunk > 0, "sample_quality: chunk must be positive");
    require(options_.neighbours >= 1, "sample_quality: neighbours (k) must be >= 1");
    const shape4 t = shape_of(training);
    require(t[1] == image_[1] && t[2] == image_[2] && t[3] == image_[3],
            "sample_quality: image shapes differ: held-out ", to_string(image_), ", training ", to_string(t));
    require(sample_count > options_.neighbours, "sample_quality: the sample count (", sample_count,
            ") must exceed the k-NN k = ", options_.neighbours);
    require(image_[0] >= sample_count, "sample_quality: ", image_[0], " held-out images, fewer than the ",
            sample_count, " samples to compare");
    require(t[0] >= sample_count, "sample_quality: ", t[0], " training images, fewer than the ", sample_count,
            " needed for the floor");
    detail::check_cloud(detail::points_of(held_out), "sample_quality: held-out images");

    const xt::xtensor<T, 2> ref = detail::chunked_features(features_, held_out, options_.chunk, dimension_, "held-out");
    held_out_fit_ = fit_gaussian(ref);
    // the first K held-out feature rows and their k-NN radii (precision / recall, equal sizes)
    pr_real_ = xt::xtensor<T, 2>::from_shape({sample_count, dimension_});
    std::copy(ref.data(), ref.data() + sample_count * dimension_, pr_real_.data());
    pr_radii_ = detail::squared_knn_radii(detail::points_of(pr_real_), options_.neighbours);
    projector_.sorted_projections(detail::points_of(held_out), held_out_sorted_);

    const batch<T> floor_images = detail::strided_rows(training, sample_count, t[0] / sample_count);
    detail::check_cloud(detail::points_of(floor_images), "sample_quality: training images");
    const xt::xtensor<T, 2> floor_features =
        detail::chunked_features(features_, floor_images, options_.chunk, dimension_, "training");
    frechet_floor_ = frechet_distance(fit_gaussian(floor_features), held_out_fit_);
    sliced_w_floor_ = sliced_to_held_out(floor_images);
  }

  [[nodiscard]] std::size_t sample_count() const { return count_; }
  [[nodiscard]] std::size_t feature_dimension() const { return dimension_; }
  [[nodiscard]] double frechet_floor() const { return frechet_floor_; }
  [[nodiscard]] double sliced_w_floor() const { return sliced_w_floor_; }
  [[nodiscard]] const gaussian_fit& held_out_fit() const { return held_out_fit_; }

  /// The metrics of `samples` ([sample_count, C, H, W], all finite).
  [[nodiscard]] sample_quality evaluate(const batch<T>& samples) {
    using softdiff::detail::require;
    const shape4 s = shape_of(samples);
    require(s[1] == image_[1] && s[2] == image_[2] && s[3] == image_[3], "sample_quality: samples have shape ",
            to_string(s), " but the reference images ", to_string(image_));
    require(s[0] == count_, "sample_quality: ", s[0], " samples, but the reference was prepared for ", count_,
            " (the floor uses as many training images)");
    detail::check_cloud(detail::points_of(samples), "sample_quality: samples");
    const xt::xtensor<T, 2> f = detail::chunked_features(features_, samples, options_.chunk, dimension_, "sample");
    sample_quality q;
    q.count = count_;
    q.frechet = frechet_distance(fit_gaussian(f), held_out_fit_);
    q.frechet_floor = frechet_floor_;
    q.sliced_w = sliced_to_held_out(samples);
    q.sliced_w_floor = sliced_w_floor_;
    const auto gen = detail::points_of(f), real = detail::points_of(pr_real_);
    const auto gen_radii = detail::squared_knn_radii(gen, options_.neighbours);
    // precision = mean_g f(g, real), recall = mean_r f(r, generated), f(y, X) = 1 if ||y - x|| <= NN_k(x, X) for some x
    q.precision = detail::manifold_coverage(gen, real, pr_radii_);
    q.recall = detail::manifold_coverage(real, gen, gen_radii);
    return q;
  }

private:
  /// SW_2^2 = (1/K) sum_k W_2^2(<theta_k, samples>, <theta_k, held-out>), exact 1-D W_2 from sorted projections.
  [[nodiscard]] double sliced_to_held_out(const batch<T>& images) const {
    std::vector<T> sorted;
    const auto p = detail::points_of(images);
    projector_.sorted_projections(p, sorted);
    const std::size_t n = p.rows, m = image_[0], k = projector_.projections();
    double s = 0;
    for (std::size_t j = 0; j < k; ++j)
      s += detail::wasserstein_1d_squared(sorted.data() + j * n, n, held_out_sorted_.data() + j * m, m);
    return std::sqrt(s / static_cast<double>(k));
  }

  feature_map<T> features_;
  sample_quality_options options_;
  std::size_t count_;
  shape4 image_;
  std::size_t dimension_ = 0;
  sliced_projector<T> projector_;
  gaussian_fit held_out_fit_;
  xt::xtensor<T, 2> pr_real_;
  std::vector<double> pr_radii_;
  std::vector<T> held_out_sorted_;
  double frechet_floor_ = 0, sliced_w_floor_ = 0;
};

}  // namespace softdiff::metrics
