#pragma once
// Linear(a, b), PyTorch semantics: y = x W^T + bias, x [N, a], W [b, a], bias [b], y [N, b].
// Backward (the gradient rule, once): dW += dy^T x,  dbias += sum_N dy,  dx = dy W.
// Forward: one dot product per output (a sample's output does not depend on its batch); backward:
// one GEMM each for dW and dx (backend::cpu::gemm: the same rounding for any thread count).
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/parameter_store.hpp"

namespace softdiff::nn {

template <class T = float>
struct linear {
  using scalar_type = T;

  std::size_t in_features = 0, out_features = 0;
  std::span<T> weight, bias;    // [out, in], [out]
  std::span<T> dweight, dbias;  // their gradients (backward adds)
  parameter_slot weight_slot, bias_slot;
  matrix<T> y;   // [N, out], output of the last forward
  matrix<T> dx;  // [N, in], input gradient of the last backward

  linear() = default;
  linear(std::size_t in, std::size_t out) : in_features(in), out_features(out) {
    SOFTDIFF_REQUIRE(in > 0 && out > 0, "linear: features (", in, ", ", out, ") must be positive");
  }

  /// Registers `prefix.weight` [out, in] and `prefix.bias` [out].
  void declare(parameter_store<T>& store, std::string_view prefix) {
    weight_slot = store.add(std::string(prefix) + ".weight", {out_features, in_features});
    bias_slot = store.add(std::string(prefix) + ".bias", {out_features});
  }
  void bind(parameter_store<T>& store) {
    weight = store.values(weight_slot), dweight = store.grads(weight_slot);
    bias = store.values(bias_slot), dbias = store.grads(bias_slot);
  }
  /// PyTorch's default initialisation (U(+-1/sqrt(in)) for weight and bias).
  void init(const noise_source& noise) {
    detail::fill_uniform_fan_in(weight, in_features, noise, weight_slot.offset);
    detail::fill_uniform_fan_in(bias, in_features, noise, bias_slot.offset);
  }

  const matrix<T>& forward(const matrix<T>& x) {
    check_bound();
    SOFTDIFF_REQUIRE(x.shape()[1] == in_features, "linear: input [", x.shape()[0], ", ", x.shape()[1], "] has ",
                    x.shape()[1], " features, expected ", in_features);
    const std::size_t N = x.shape()[0], a = in_features, b = out_features;
    detail::ensure_shape(y, std::array<std::size_t, 2>{N, b});
    x_ = &x;
    // One dot product per output rather than a GEMM: BLAS rounds a row differently with the
    // number of rows (its edge kernels), and a sample's output must not depend on its batch.
    const T *xp = x.data(), *wp = weight.data(), *bp = bias.data();
    T* yp = y.data();
    const auto count = static_cast<std::ptrdiff_t>(N * b);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (N * b * a > detail::parallel_threshold)
    for (std::ptrdiff_t r = 0; r < count; ++r) {
      const std::size_t n = static_cast<std::size_t>(r) / b, o = static_cast<std::size_t>(r) % b;
      const T *xr = xp + n * a, *wr = wp + o * a;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (std::size_t i = 0; i < a; ++i) s += xr[i] * wr[i];
      yp[r] = bp[o] + s;
    }
    return y;
  }

  /// Adds into dweight, dbias; returns dL/dx unless need_dx is false.
  const matrix<T>& backward(const matrix<T>& dy, bool need_dx = true) {
    check_bound();
    SOFTDIFF_REQUIRE(x_ != nullptr, "linear::backward: called before forward");
    SOFTDIFF_REQUIRE(detail::shape_array(dy) == detail::shape_array(y), "linear::backward: dy ",
                    detail::shape_string(detail::shape_array(dy)), " does not match the forward output ",
                    detail::shape_string(detail::shape_array(y)));
    const matrix<T>& x = *x_;
    const std::size_t N = x.shape()[0], a = in_features, b = out_features;
    if (N == 0) return dx;
    backend::cpu::gemm<T>(true, false, int(b), int(a), int(N), T(1), dy.data(), int(b), x.data(), int(a), T(1),
                    dweight.data(), int(a));
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t o = 0; o < b; ++o) dbias[o] += dy.data()[n * b + o];
    if (need_dx) {
      detail::ensure_shape(dx, std::array<std::size_t, 2>{N, a});
      backend::cpu::gemm<T>(false, false, int(N), int(a), int(b), T(1), dy.data(), int(b), weight.data(), int(a),
                      T(0), dx.data(), int(a));
    }
    return dx;
  }

private:
  void check_bound() const {
    SOFTDIFF_REQUIRE(weight.size() == out_features * in_features && bias.size() == out_features &&
                        dweight.size() == weight.size() && dbias.size() == bias.size(),
                    "linear: parameters not bound (call declare, parameter_store::allocate, bind)");
  }

  const matrix<T>* x_ = nullptr;
};

}  // namespace softdiff::nn
