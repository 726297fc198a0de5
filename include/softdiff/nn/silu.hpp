#pragma once
// SiLU (swish): y = x sigmoid(x).
// Backward (the gradient rule, once): with s = sigmoid(x), dx = dy s (1 + x (1 - s)).
// Element-wise over any rank (Rank 4 for NCHW activations, 2 for the [N, features]
// time embedding); float uses a vectorisable exp (detail::exp_f32).
#include <cstddef>

#include <xtensor/xtensor.hpp>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

template <class T = float, std::size_t Rank = 4>
struct silu {
  using scalar_type = T;
  using tensor = xt::xtensor<T, Rank>;

  tensor y;   // output of the last forward
  tensor dx;  // input gradient of the last backward

  const tensor& forward(const tensor& x) {
    detail::ensure_shape(y, detail::shape_array(x));
    x_ = &x;
    const T* xp = x.data();
    T* yp = y.data();
    const auto n = static_cast<std::ptrdiff_t>(x.size());
#pragma omp parallel for simd simdlen(16) schedule(static) num_threads(detail::layer_threads()) if (static_cast<std::size_t>(n) > detail::parallel_threshold)
    for (std::ptrdiff_t i = 0; i < n; ++i) yp[i] = xp[i] * detail::sigmoid(xp[i]);
    return y;
  }

  const tensor& backward(const tensor& dy) {
    SOFTDIFF_REQUIRE(x_ != nullptr, "silu::backward: called before forward");
    SOFTDIFF_REQUIRE(detail::shape_array(dy) == detail::shape_array(*x_), "silu::backward: dy ",
                    detail::shape_string(detail::shape_array(dy)), " does not match the forward input ",
                    detail::shape_string(detail::shape_array(*x_)));
    detail::ensure_shape(dx, detail::shape_array(dy));
    const T *xp = x_->data(), *gp = dy.data();
    T* dp = dx.data();
    const auto n = static_cast<std::ptrdiff_t>(dy.size());
#pragma omp parallel for simd simdlen(16) schedule(static) num_threads(detail::layer_threads()) if (static_cast<std::size_t>(n) > detail::parallel_threshold)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const T s = detail::sigmoid(xp[i]);
      dp[i] = gp[i] * s * (T(1) + xp[i] * (T(1) - s));
    }
    return dx;
  }

private:
  const tensor* x_ = nullptr;
};

static_assert(Layer<silu<float>>);
static_assert(Layer<silu<double>>);

}  // namespace softdiff::nn
