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
template <class T>
struct channel_affine {
  const T* scale = nullptr;
  const T* shift = nullptr;
  std::size_t channels = 0;
  [[nodiscard]] bool empty() const { return scale == nullptr; }
  /// The map restricted to sample n: pointers to its C scales and shifts.
  [[nodiscard]] channel_affine sample(std::size_t n) const {
    return empty() ? channel_affine{} : channel_affine{scale + n * channels, shift + n * channels, channels};
  }
};

namespace detail {

/// a x + b: the normalised, affine GroupNorm output (the pre-activation).
template <class T>
inline T affine(T x, T a, T b) {
  return x * a + b;
}

/// out[i] = SiLU(a x[i] + b), i < n.
template <class T>
inline void affine_silu_row(const T* x, std::size_t n, T a, T b, T* out) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const T v = affine(x[i], a, b);
    out[i] = v * sigmoid(v);
  }
}

}  // namespace detail
}  // namespace softdiff::nn
