#pragma once
// Dense axis matrices of the separable primitive's two forms (backend/separable.hpp), for the
// backends that apply them as GEMMs (backend::dense_separable): computed in double and rounded
// to T once, row-major n x n, symmetric.
#include <cmath>
#include <cstddef>
#include <numbers>
#include <vector>

#include "softdiff/error.hpp"

namespace softdiff::backend::detail {

/// The zero-padded symmetric Toeplitz matrix B_ij = g_{|i-j|} for |i - j| <= R and 0 otherwise,
/// from the one-sided taps g_0..g_R (separable_form::toeplitz).
template <class T>
[[nodiscard]] std::vector<T> toeplitz_axis_matrix(const std::vector<double>& taps, std::size_t n) {
  softdiff::detail::require(!taps.empty(), "toeplitz_axis_matrix: no taps");
  std::vector<T> b(n * n, T(0));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t d = i > j ? i - j : j - i;
      if (d < taps.size()) b[i * n + j] = static_cast<T>(taps[d]);
    }
  return b;
}

/// A = D^T diag(m) D with the orthonormal DCT-II D[k, i] = s_k cos(pi k (2i + 1) / (2n))
/// (s_0 = sqrt(1/n), s_k = sqrt(2/n)), n = m.size() (separable_form::dct_diagonal).
template <class T>
[[nodiscard]] std::vector<T> dct_axis_matrix(const std::vector<double>& m) {
  const std::size_t n = m.size();
  std::vector<double> d(n * n);
  for (std::size_t k = 0; k < n; ++k) {
    const double s = std::sqrt((k == 0 ? 1.0 : 2.0) / static_cast<double>(n));
    for (std::size_t i = 0; i < n; ++i)
      d[k * n + i] = s * std::cos(std::numbers::pi * static_cast<double>(k) * static_cast<double>(2 * i + 1) /
                                  (2.0 * static_cast<double>(n)));
  }
  std::vector<T> a(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::size_t k = 0; k < n; ++k) acc += m[k] * d[k * n + i] * d[k * n + j];
      a[i * n + j] = static_cast<T>(acc);
    }
  return a;
}

}  // namespace softdiff::backend::detail
