#pragma once
// The distribution sampling starts from, p_1 (appendix D of Soft Diffusion). Blurred to
// the limit, an image is close to a constant colour, so p_1 is modelled as
//   x_1 = C_1 (colour * 1_{HxW}) + sigma_1 eta,   colour ~ N(mu, diag(v)),
// with mu[c] and v[c] the mean and (population) variance over the dataset of each
// image's mean colour in channel c. Applying C_1 keeps what the operator does at the
// end of the schedule (e.g. a zero-padded blur darkens the borders of a constant image).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/error.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/step_support.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::sampler {

template <class T = float>
class final_distribution {
public:
  using scalar_type = T;

  final_distribution() = default;
  /// Fits to `data` (see fit).
  explicit final_distribution(const batch<T>& data) { fit(data); }
  /// Given per-channel colour mean and variance for C x H x W images.
  final_distribution(std::size_t height, std::size_t width, std::vector<double> mean, std::vector<double> variance)
      : height_(height), width_(width), mean_(std::move(mean)), variance_(std::move(variance)) {
    softdiff::detail::require(height_ > 0 && width_ > 0 && !mean_.empty(),
                              "final_distribution: need height, width and at least one channel, got H = ", height_,
                              ", W = ", width_, ", ", mean_.size(), " channels");
    softdiff::detail::require(mean_.size() == variance_.size(), "final_distribution: ", mean_.size(),
                              " channel means but ", variance_.size(), " variances");
    for (std::size_t c = 0; c < mean_.size(); ++c)
      softdiff::detail::require(std::isfinite(mean_[c]) && std::isfinite(variance_[c]) && variance_[c] >= 0.0,
                                "final_distribution: channel ", c, " has mean ", mean_[c], " and variance ",
                                variance_[c], " (need finite values, variance >= 0)");
  }

  /// Per channel c: m_i[c] = mean over H x W of image i; mean[c] = (1/M) sum_i m_i[c],
  /// variance[c] = (1/M) sum_i (m_i[c] - mean[c])^2. Throws on an empty or non-finite dataset.
  void fit(const batch<T>& data) {
    const shape4 s = shape_of(data);
    softdiff::detail::require(data.size() > 0, "final_distribution::fit: empty dataset of shape ", to_string(s));
    check_finite(data, "final_distribution::fit: dataset");
    const std::size_t M = s[0], C = s[1], P = s[2] * s[3];
    std::vector<double> mean(C, 0.0), var(C, 0.0), m(M * C);
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t c = 0; c < C; ++c) {
        const T* p = data.data() + (i * C + c) * P;
        double acc = 0.0;
        for (std::size_t j = 0; j < P; ++j) acc += p[j];
        m[i * C + c] = acc / static_cast<double>(P);
        mean[c] += m[i * C + c] / static_cast<double>(M);
      }
    for (std::size_t i = 0; i < M; ++i)
      for (std::size_t c = 0; c < C; ++c) {
        const double d = m[i * C + c] - mean[c];
        var[c] += d * d / static_cast<double>(M);
      }
    height_ = s[2];
    width_ = s[3];
    mean_ = std::move(mean);
    variance_ = std::move(var);
  }

  [[nodiscard]] bool fitted() const { return !mean_.empty(); }
  [[nodiscard]] std::size_t channels() const { return mean_.size(); }
  [[nodiscard]] std::size_t height() const { return height_; }
  [[nodiscard]] std::size_t width() const { return width_; }
  [[nodiscard]] const std::vector<double>& mean() const { return mean_; }
  [[nodiscard]] const std::vector<double>& variance() const { return variance_; }

  /// out = C(level) (colour * 1) + sigma eta for `count` images, out of shape [count, C, H, W].
  /// Colours use noise.sub(1) (count * C normals, image-major); eta uses `noise`. A source
  /// shifted by f whole images (noise.offset = f * C * H * W) gives images f .. f + count - 1 of
  /// what an unshifted call for f + count images gives: colours are then drawn from index f * C.
  template <CorruptionOperator Op>
    requires std::same_as<typename Op::scalar_type, T>
  void sample(const Op& op, double level, double sigma, std::size_t count, const noise_source& noise,
              batch<T>& out) const {
    softdiff::detail::require(fitted(), "final_distribution::sample: not fitted (call fit or give mean and variance)");
    softdiff::detail::require(count > 0, "final_distribution::sample: count must be > 0");
    softdiff::detail::require(std::isfinite(sigma) && sigma >= 0.0,
                              "final_distribution::sample: sigma_1 must be finite and >= 0, got ", sigma);
    check_level(op, level, "final_distribution::sample");
    const std::size_t C = channels(), P = height_ * width_;
    softdiff::detail::require(noise.offset % (C * P) == 0, "final_distribution::sample: noise offset ", noise.offset,
                              " is not a whole number of ", C, "x", height_, "x", width_, " images");
    ensure_shape(out, shape4{count, C, height_, width_});
    const std::vector<double> z = colours(count, noise);
    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t c = 0; c < C; ++c) {
        const T colour = static_cast<T>(z[i * C + c]);
        T* p = out.data() + (i * C + c) * P;
        std::fill(p, p + P, colour);
      }
    op.apply(level, out, out);  // C_1 applied to the constant images
    const T sg = static_cast<T>(sigma);
    T* o = out.data();
    noise.for_each_normal<T>(out.size(), [=](std::size_t lo, std::size_t hi, const T* eta) {
#pragma omp simd
      for (std::size_t k = lo; k < hi; ++k) o[k] += sg * eta[k - lo];
    });
  }

  /// The colours of `count` images, image-major ([count, C]): mean[c] + sqrt(variance[c]) z with z
  /// from noise.sub(1), starting at the image noise.offset / (C H W) (what sample draws; backends
  /// other than the CPU draw them here too and fill the planes themselves).
  [[nodiscard]] std::vector<double> colours(std::size_t count, const noise_source& noise) const {
    softdiff::detail::require(fitted(), "final_distribution::colours: not fitted (call fit or give mean and variance)");
    const std::size_t C = channels(), P = height_ * width_;
    softdiff::detail::require(noise.offset % (C * P) == 0, "final_distribution: noise offset ", noise.offset,
                              " is not a whole number of ", C, "x", height_, "x", width_, " images");
    std::vector<double> z(count * C);
    noise_source source = noise.sub(1);
    source.offset = noise.offset / P;  // first image * C: the colours are image-major
    source.fill(std::span<double>(z));
    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t c = 0; c < C; ++c) z[i * C + c] = mean_[c] + std::sqrt(variance_[c]) * z[i * C + c];
    return z;
  }

private:
  std::size_t height_ = 0, width_ = 0;
  std::vector<double> mean_, variance_;
};

}  // namespace softdiff::sampler
