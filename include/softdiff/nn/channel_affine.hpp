#pragma once
// SiLU(a x + b) with a, b per (sample, channel): GroupNorm's normalisation and affine
// (group_norm.hpp: a = rstd gamma[c], b = beta[c] - mu rstd gamma[c]) followed by SiLU, the
// pair that precedes every 3 x 3 convolution of RefUNet (docs/refunet.md). group_norm writes it
// (forward_silu), recomputes its pre-activation in backward_silu, and conv2d applies it while it
// pads its input (conv2d::forward(x, map)), so the normalised activations need never be stored.
// All three evaluate the same two functions below, so they give the same bits.
#include <cstddef>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

/// The map x -> SiLU(scale[n * C + c] x + shift[n * C + c]) on a batch of C channels
/// (sample-major [N * C] arrays). A default-constructed map is empty (the identity, no SiLU).
/// A map may compute its coefficients on demand: then `fill(source, n)` writes sample n's
/// (group_norm::silu_map: the statistics of x[n]), and a consumer calls prepare(n) before it
/// reads sample n, so that x[n] is read twice while it is in cache instead of the whole batch
/// twice from memory. prepare(n) for different n may run on different threads.
template <class T>
struct channel_affine {
  const T* scale = nullptr;
  const T* shift = nullptr;
  std::size_t channels = 0;
  void (*fill)(void* source, std::size_t n) = nullptr;
  void* source = nullptr;

  [[nodiscard]] bool empty() const { return scale == nullptr; }
  /// Computes sample n's coefficients if the map does so on demand.
  void prepare(std::size_t n) const {
    if (fill) fill(source, n);
  }
  /// The map restricted to sample n (prepared): pointers to its C scales and shifts.
  [[nodiscard]] channel_affine sample(std::size_t n) const {
    return empty() ? channel_affine{} : channel_affine{scale + n * channels, shift + n * channels, channels};
  }
  /// The same map with every sample prepared, coefficients no longer computed on demand.
  [[nodiscard]] channel_affine prepared_all(std::size_t samples) const {
    if (fill) {
      const auto count = static_cast<std::ptrdiff_t>(samples);
#pragma omp parallel for schedule(static) num_threads(detail::layer_threads()) if (count > 1)
      for (std::ptrdiff_t n = 0; n < count; ++n) fill(source, static_cast<std::size_t>(n));
    }
    return {scale, shift, channels};
  }
};

namespace detail {

/// a x + b: the normalised, affine GroupNorm output (the pre-activation).
template <class T>
inline T affine(T x, T a, T b) {
  return x * a + b;
}

/// out[i] = SiLU(a x[i] + b), i < n. Sixteen lanes: the exponential and the division of the
/// sigmoid are the bulk of the cost, and -march=native on Intel otherwise picks 256-bit vectors
/// (half the work per instruction; the divider's throughput per lane is the same). Each lane
/// does the scalar arithmetic, so the bits do not depend on the width (tests/test_nn_silu.cpp).
template <class T>
inline void affine_silu_row(const T* x, std::size_t n, T a, T b, T* out) {
#pragma omp simd simdlen(16)
  for (std::size_t i = 0; i < n; ++i) {
    const T v = affine(x[i], a, b);
    out[i] = v * sigmoid(v);
  }
}

}  // namespace detail
}  // namespace softdiff::nn
