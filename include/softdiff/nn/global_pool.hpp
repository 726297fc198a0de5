#pragma once
// Global average pooling, [N, C, H, W] -> [N, C]:
//   y[n,c] = (1 / (H W)) sum_{i,j} x[n,c,i,j]
// Backward (the gradient rule, once): dx[n,c,i,j] = dy[n,c] / (H W).
// It ends the convolutional part of the evaluation classifier (classifier.hpp); its output is
// a matrix, so it is not a Layer (batch -> batch) but follows the same protocol otherwise.
#include <array>
#include <cstddef>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

template <class T = float>
struct global_average_pool {
  using scalar_type = T;

  matrix<T> y;  // [N, C], output of the last forward
  batch<T> dx;  // [N, C, H, W], input gradient of the last backward

  const matrix<T>& forward(const batch<T>& x) {
    const shape4 s = shape_of(x);
    SOFTDIFF_REQUIRE(s[2] * s[3] > 0, "global_average_pool: input ", to_string(s), " has no pixels");
    detail::ensure_shape(y, std::array<std::size_t, 2>{s[0], s[1]});
    in_ = s, has_input_ = true;
    const std::size_t rows = s[0] * s[1], HW = s[2] * s[3];
    const double inv = 1.0 / static_cast<double>(HW);
    const T* xp = x.data();
    T* yp = y.data();
    for (std::size_t r = 0; r < rows; ++r) {
      const T* xr = xp + r * HW;
      double sum = 0;  // double: the mean of many float activations
#pragma omp simd reduction(+ : sum)
      for (std::size_t i = 0; i < HW; ++i) sum += static_cast<double>(xr[i]);
      yp[r] = static_cast<T>(sum * inv);
    }
    return y;
  }

  const batch<T>& backward(const matrix<T>& dy) {
    SOFTDIFF_REQUIRE(has_input_, "global_average_pool::backward: called before forward");
    SOFTDIFF_REQUIRE(dy.shape()[0] == in_[0] && dy.shape()[1] == in_[1], "global_average_pool::backward: dy ",
                    detail::shape_string(detail::shape_array(dy)), " does not match the forward output [", in_[0],
                    ", ", in_[1], "]");
    ensure_shape(dx, in_);
    const std::size_t rows = in_[0] * in_[1], HW = in_[2] * in_[3];
    const T inv = static_cast<T>(1.0 / static_cast<double>(HW));
    const T* gp = dy.data();
    T* dp = dx.data();
    for (std::size_t r = 0; r < rows; ++r) {
      const T g = gp[r] * inv;
      T* dr = dp + r * HW;
#pragma omp simd
      for (std::size_t i = 0; i < HW; ++i) dr[i] = g;
    }
    return dx;
  }

private:
  shape4 in_{};
  bool has_input_ = false;
};

}  // namespace softdiff::nn
