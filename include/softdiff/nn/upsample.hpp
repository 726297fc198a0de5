#pragma once
// Nearest-neighbour upsampling by 2 (F.interpolate(scale_factor=2, mode="nearest")):
//   y[n,c,2i+u,2j+v] = x[n,c,i,j],  u, v in {0, 1};  x [N,C,H,W] -> y [N,C,2H,2W].
// Backward (the gradient rule, once): dx[n,c,i,j] = sum_{u,v} dy[n,c,2i+u,2j+v].
#include <cstddef>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

template <class T = float>
struct upsample_nearest2x {
  using scalar_type = T;

  batch<T> y;   // [N, C, 2H, 2W]
  batch<T> dx;  // [N, C, H, W]

  const batch<T>& forward(const batch<T>& x) {
    const shape4 s = shape_of(x);
    in_shape_ = s;
    forwarded_ = true;
    ensure_shape(y, {s[0], s[1], 2 * s[2], 2 * s[3]});
    const std::size_t H = s[2], W = s[3];
    const T* xp = x.data();
    T* yp = y.data();
    const auto planes = static_cast<std::ptrdiff_t>(s[0] * s[1]);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (y.size() > detail::parallel_threshold)
    for (std::ptrdiff_t p = 0; p < planes; ++p) {
      const T* xi = xp + static_cast<std::size_t>(p) * H * W;
      T* yo = yp + static_cast<std::size_t>(p) * 4 * H * W;
      for (std::size_t i = 0; i < H; ++i) {
        T* r0 = yo + (2 * i) * 2 * W;
        for (std::size_t j = 0; j < W; ++j) r0[2 * j] = r0[2 * j + 1] = xi[i * W + j];
        std::copy(r0, r0 + 2 * W, r0 + 2 * W);
      }
    }
    return y;
  }

  const batch<T>& backward(const batch<T>& dy) {
    SOFTDIFF_REQUIRE(forwarded_, "upsample_nearest2x::backward: called before forward");
    const shape4 s = in_shape_;
    SOFTDIFF_REQUIRE((shape_of(dy) == shape4{s[0], s[1], 2 * s[2], 2 * s[3]}),
                    "upsample_nearest2x::backward: dy ", to_string(shape_of(dy)),
                    " does not match the forward output ", to_string({s[0], s[1], 2 * s[2], 2 * s[3]}));
    ensure_shape(dx, s);
    const std::size_t H = s[2], W = s[3];
    const T* gp = dy.data();
    T* dp = dx.data();
    const auto planes = static_cast<std::ptrdiff_t>(s[0] * s[1]);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (y.size() > detail::parallel_threshold)
    for (std::ptrdiff_t p = 0; p < planes; ++p) {
      const T* gi = gp + static_cast<std::size_t>(p) * 4 * H * W;
      T* d = dp + static_cast<std::size_t>(p) * H * W;
      for (std::size_t i = 0; i < H; ++i) {
        const T* r0 = gi + (2 * i) * 2 * W;
        const T* r1 = r0 + 2 * W;
        for (std::size_t j = 0; j < W; ++j) d[i * W + j] = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
      }
    }
    return dx;
  }

private:
  shape4 in_shape_{};
  bool forwarded_ = false;
};

static_assert(Layer<upsample_nearest2x<float>>);
static_assert(Layer<upsample_nearest2x<double>>);

}  // namespace softdiff::nn
