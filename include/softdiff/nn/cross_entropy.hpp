#pragma once
// Softmax cross-entropy of logits z [N, K] against integer labels y_n in [0, K), averaged over
// the batch:
//   L = (1/N) sum_n ( logsumexp(z_n) - z_{n, y_n} ),
//   logsumexp(z_n) = m_n + log sum_k exp(z_{n,k} - m_n),  m_n = max_k z_{n,k}  (no overflow)
// Backward (the gradient rule, once): dL/dz_{n,k} = (softmax(z_n)_k - [k == y_n]) / N.
// Sums are taken in double, also for float logits.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "softdiff/nn/layer_support.hpp"

namespace softdiff::nn {

/// Index of the largest entry of each row of z [N, K] (the first one on ties).
template <class T>
void argmax_rows(const matrix<T>& z, std::span<std::size_t> out) {
  const std::size_t N = z.shape()[0], K = z.shape()[1];
  SOFTDIFF_REQUIRE(out.size() == N, "argmax_rows: ", N, " rows but room for ", out.size());
  for (std::size_t n = 0; n < N; ++n) {
    const T* r = z.data() + n * K;
    out[n] = static_cast<std::size_t>(std::max_element(r, r + K) - r);
  }
}

template <class T = float>
struct softmax_cross_entropy {
  using scalar_type = T;

  matrix<T> probabilities;  // [N, K], softmax of the last forward's logits
  matrix<T> dlogits;        // [N, K], dL/dz of the last backward

  /// The mean loss L of the batch. Throws if a label is out of range or the logits are not finite.
  double forward(const matrix<T>& z, std::span<const std::size_t> labels) {
    const std::size_t N = z.shape()[0], K = z.shape()[1];
    SOFTDIFF_REQUIRE(N > 0 && K > 0, "softmax_cross_entropy: logits [", N, ", ", K, "] are empty");
    SOFTDIFF_REQUIRE(labels.size() == N, "softmax_cross_entropy: logits [", N, ", ", K, "] but ", labels.size(),
                    " labels");
    detail::ensure_shape(probabilities, std::array<std::size_t, 2>{N, K});
    labels_.assign(labels.begin(), labels.end());
    double total = 0;
    for (std::size_t n = 0; n < N; ++n) {
      SOFTDIFF_REQUIRE(labels[n] < K, "softmax_cross_entropy: label ", labels[n], " of row ", n, " is not in [0, ",
                      K, ")");
      const T* zr = z.data() + n * K;
      T* pr = probabilities.data() + n * K;
      const double m = static_cast<double>(*std::max_element(zr, zr + K));
      SOFTDIFF_REQUIRE(std::isfinite(m), "softmax_cross_entropy: row ", n, " of the logits is not finite");
      double sum = 0;
      for (std::size_t k = 0; k < K; ++k) sum += std::exp(static_cast<double>(zr[k]) - m);
      const double lse = m + std::log(sum);
      SOFTDIFF_REQUIRE(std::isfinite(lse), "softmax_cross_entropy: row ", n, " of the logits holds NaN");
      for (std::size_t k = 0; k < K; ++k) pr[k] = static_cast<T>(std::exp(static_cast<double>(zr[k]) - lse));
      total += lse - static_cast<double>(zr[labels[n]]);
    }
    return total / static_cast<double>(N);
  }

  /// dL/dz for the last forward; `scale` multiplies it (1 for the mean loss itself).
  const matrix<T>& backward(double scale = 1.0) {
    SOFTDIFF_REQUIRE(!labels_.empty() && labels_.size() == probabilities.shape()[0],
                    "softmax_cross_entropy::backward: called before forward");
    const std::size_t N = probabilities.shape()[0], K = probabilities.shape()[1];
    detail::ensure_shape(dlogits, std::array<std::size_t, 2>{N, K});
    const T inv = static_cast<T>(scale / static_cast<double>(N));
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t k = 0; k < K; ++k)
        dlogits.data()[n * K + k] = (probabilities.data()[n * K + k] - T(k == labels_[n] ? 1 : 0)) * inv;
    return dlogits;
  }

private:
  std::vector<std::size_t> labels_;
};

}  // namespace softdiff::nn
