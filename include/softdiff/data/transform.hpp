#pragma once
// Batch-to-batch helpers that bring a dataset to a size the network accepts
// (RefUNet needs H and W divisible by 2^(levels-1)), and per-channel statistics.
//
// Padding fills with -1, which is black in softdiff's [-1, 1] pixel range (zero
// padding of [0, 1] data), and centres the image. Resizing follows PyTorch's
// F.interpolate conventions so that results agree with torch pipelines:
// "nearest-exact" (half-pixel centres), "bilinear" with align_corners=False and
// no antialiasing (alias-prone when shrinking by more than 2x: use area there),
// and "area" (adaptive average pooling).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <string_view>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::data {

/// Centres each image in an H x W canvas filled with `fill` (default -1, black); the odd
/// pixel of an uneven margin goes to the bottom / right. H and W must not be smaller than the images.
template <class T>
[[nodiscard]] batch<T> pad_to(const batch<T>& x, std::size_t height, std::size_t width, T fill = T(-1)) {
  const shape4 s = shape_of(x);
  softdiff::detail::require(height >= s[2] && width >= s[3], "pad_to: cannot pad ", to_string(s), " to ", height, "x",
                            width, " (smaller than the images; resize instead)");
  const std::size_t top = (height - s[2]) / 2, left = (width - s[3]) / 2;
  batch<T> out(shape4{s[0], s[1], height, width}, fill);
  const T* src = x.data();
  T* dst = out.data();
  backend::cpu::parallel_for(s[0] * s[1], [&](std::size_t p) {
    for (std::size_t y = 0; y < s[2]; ++y)
      std::copy(src + (p * s[2] + y) * s[3], src + (p * s[2] + y + 1) * s[3], dst + (p * height + top + y) * width + left);
  });
  return out;
}

/// The smallest multiple of `multiple` that is at least n.
[[nodiscard]] inline std::size_t round_up_to_multiple(std::size_t n, std::size_t multiple) {
  softdiff::detail::require(multiple > 0, "round_up_to_multiple: multiple is 0");
  return (n + multiple - 1) / multiple * multiple;
}

/// The side length divisor a U-Net with `levels` resolutions needs: 2^(levels-1).
[[nodiscard]] inline std::size_t size_multiple_for_levels(std::size_t levels) {
  softdiff::detail::require(levels >= 1 && levels <= 16, "size_multiple_for_levels: levels = ", levels,
                            ", expected 1..16");
  return std::size_t{1} << (levels - 1);
}

/// Pads (with -1, centred) to the next H and W divisible by `multiple`; a no-op copy when they already are.
template <class T>
[[nodiscard]] batch<T> pad_to_multiple(const batch<T>& x, std::size_t multiple) {
  return pad_to(x, round_up_to_multiple(x.shape()[2], multiple), round_up_to_multiple(x.shape()[3], multiple));
}

namespace detail {

/// One axis of a separable resampling: output i is sum_k weight[i][k] * input[first[i] + k].
struct resample_taps {
  std::vector<std::size_t> first, count;
  std::vector<double> weight;  // count[i] weights per output, concatenated
  std::vector<std::size_t> offset;

  void push(std::size_t f, std::initializer_list<double> w) { push(f, std::vector<double>(w)); }
  void push(std::size_t f, const std::vector<double>& w) {
    first.push_back(f);
    count.push_back(w.size());
    offset.push_back(weight.size());
    weight.insert(weight.end(), w.begin(), w.end());
  }
};

/// PyTorch nearest-exact: source = min(floor((i + 0.5) * in / out), in - 1).
inline resample_taps nearest_taps(std::size_t in, std::size_t out) {
  resample_taps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (std::size_t i = 0; i < out; ++i)
    t.push(std::min(static_cast<std::size_t>(std::floor((static_cast<double>(i) + 0.5) * scale)), in - 1), {1.0});
  return t;
}

/// PyTorch bilinear, align_corners=False: source = max((i + 0.5) * in / out - 0.5, 0),
/// linear between floor(source) and the next pixel (clamped at the edge).
inline resample_taps linear_taps(std::size_t in, std::size_t out) {
  resample_taps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (std::size_t i = 0; i < out; ++i) {
    const double src = std::max((static_cast<double>(i) + 0.5) * scale - 0.5, 0.0);
    const auto i0 = std::min(static_cast<std::size_t>(src), in - 1);
    const double lambda = i0 + 1 < in ? src - static_cast<double>(i0) : 0.0;
    if (i0 + 1 < in) t.push(i0, {1.0 - lambda, lambda});
    else t.push(i0, {1.0});
  }
  return t;
}

/// PyTorch area (adaptive average pooling): the mean of [floor(i in / out), ceil((i + 1) in / out)).
inline resample_taps area_taps(std::size_t in, std::size_t out) {
  resample_taps t;
  for (std::size_t i = 0; i < out; ++i) {
    const std::size_t b = i * in / out, e = ((i + 1) * in + out - 1) / out;
    t.push(b, std::vector<double>(e - b, 1.0 / static_cast<double>(e - b)));
  }
  return t;
}

template <class T>
batch<T> resample(const batch<T>& x, std::size_t height, std::size_t width, const resample_taps& ty,
                  const resample_taps& tx) {
  const shape4 s = shape_of(x);
  batch<T> out(shape4{s[0], s[1], height, width});
  const T* src = x.data();
  T* dst = out.data();
  backend::cpu::parallel_chunks(s[0] * s[1], 1, [&](std::size_t p0, std::size_t p1) {
    std::vector<double> rows(s[2] * width);  // horizontal pass of one plane
    for (std::size_t p = p0; p < p1; ++p) {
      const T* in = src + p * s[2] * s[3];
      for (std::size_t y = 0; y < s[2]; ++y)
        for (std::size_t j = 0; j < width; ++j) {
          double acc = 0;
          const double* w = tx.weight.data() + tx.offset[j];
          for (std::size_t k = 0; k < tx.count[j]; ++k) acc += w[k] * static_cast<double>(in[y * s[3] + tx.first[j] + k]);
          rows[y * width + j] = acc;
        }
      T* o = dst + p * height * width;
      for (std::size_t i = 0; i < height; ++i) {
        const double* w = ty.weight.data() + ty.offset[i];
        for (std::size_t j = 0; j < width; ++j) {
          double acc = 0;
          for (std::size_t k = 0; k < ty.count[i]; ++k) acc += w[k] * rows[(ty.first[i] + k) * width + j];
          o[i * width + j] = static_cast<T>(acc);
        }
      }
    }
  });
  return out;
}

inline void check_resize(const shape4& s, std::size_t height, std::size_t width, std::string_view what) {
  softdiff::detail::require(height > 0 && width > 0, what, ": target size ", height, "x", width, " is empty");
  softdiff::detail::require(s[2] > 0 && s[3] > 0, what, ": input ", to_string(s), " has no pixels");
}

}  // namespace detail

/// Nearest-neighbour resize to H x W with half-pixel centres (PyTorch "nearest-exact").
template <class T>
[[nodiscard]] batch<T> resize_nearest(const batch<T>& x, std::size_t height, std::size_t width) {
  detail::check_resize(shape_of(x), height, width, "resize_nearest");
  return detail::resample(x, height, width, detail::nearest_taps(x.shape()[2], height),
                          detail::nearest_taps(x.shape()[3], width));
}

/// Bilinear resize to H x W (PyTorch "bilinear", align_corners=False, no antialiasing).
template <class T>
[[nodiscard]] batch<T> resize_bilinear(const batch<T>& x, std::size_t height, std::size_t width) {
  detail::check_resize(shape_of(x), height, width, "resize_bilinear");
  return detail::resample(x, height, width, detail::linear_taps(x.shape()[2], height),
                          detail::linear_taps(x.shape()[3], width));
}

/// Box-filter resize to H x W (PyTorch "area" = adaptive average pooling); the one to shrink with.
template <class T>
[[nodiscard]] batch<T> resize_area(const batch<T>& x, std::size_t height, std::size_t width) {
  detail::check_resize(shape_of(x), height, width, "resize_area");
  return detail::resample(x, height, width, detail::area_taps(x.shape()[2], height),
                          detail::area_taps(x.shape()[3], width));
}

/// Mean and (population) standard deviation of each channel over all images and pixels.
struct channel_statistics {
  std::vector<double> mean, stddev;
};

template <class T>
[[nodiscard]] channel_statistics channel_stats(const batch<T>& x) {
  const shape4 s = shape_of(x);
  const std::size_t plane = s[2] * s[3];
  softdiff::detail::require(s[0] * plane > 0, "channel_stats: batch ", to_string(s), " is empty");
  channel_statistics out{std::vector<double>(s[1]), std::vector<double>(s[1])};
  for (std::size_t c = 0; c < s[1]; ++c) {
    double sum = 0, sq = 0;  // two passes: the mean first, so the variance does not cancel
    for (std::size_t n = 0; n < s[0]; ++n) {
      const T* p = x.data() + (n * s[1] + c) * plane;
      for (std::size_t k = 0; k < plane; ++k) sum += static_cast<double>(p[k]);
    }
    const double mean = sum / static_cast<double>(s[0] * plane);
    for (std::size_t n = 0; n < s[0]; ++n) {
      const T* p = x.data() + (n * s[1] + c) * plane;
      for (std::size_t k = 0; k < plane; ++k) sq += (static_cast<double>(p[k]) - mean) * (static_cast<double>(p[k]) - mean);
    }
    out.mean[c] = mean;
    out.stddev[c] = std::sqrt(sq / static_cast<double>(s[0] * plane));
  }
  return out;
}

/// Each image's mean colour, [N, C]. Appendix D: an image blurred to the limit is a constant
/// colour, so the final distribution is a diagonal Gaussian fitted to these means.
template <class T>
[[nodiscard]] xt::xtensor<T, 2> mean_colours(const batch<T>& x) {
  const shape4 s = shape_of(x);
  const std::size_t plane = s[2] * s[3];
  softdiff::detail::require(plane > 0, "mean_colours: images ", to_string(s), " have no pixels");
  xt::xtensor<T, 2> out({s[0], s[1]});
  backend::cpu::parallel_for(s[0] * s[1], [&](std::size_t p) {
    double sum = 0;
    const T* q = x.data() + p * plane;
    for (std::size_t k = 0; k < plane; ++k) sum += static_cast<double>(q[k]);
    out.data()[p] = static_cast<T>(sum / static_cast<double>(plane));
  });
  return out;
}

}  // namespace softdiff::data
