#pragma once
// The separable primitive of a backend: y = A_H X A_W^T on every H x W plane of a batch, with
// symmetric axis matrices given by their structure rather than by their entries, so that each
// backend applies them its own way (B::template separable<T>, an engine object):
//
//   separable_form::toeplitz      A_ij = g_{|i-j|} for |i - j| <= R, 0 otherwise (zero padding),
//                                 from one-sided taps g_0..g_R: the paper's blur (appendix G)
//   separable_form::dct_diagonal  A = D^T diag(m) D, D the orthonormal DCT-II of the axis and
//                                 m_0..m_{n-1} one multiplier per mode: the DCT heat blur
//
// backend::cpu holds Toeplitz axes as bands, folded blocks or eigen-decompositions and runs the
// DCT form through FFTW (backend/cpu_separable.hpp); a device backend multiplies dense axis
// matrices by GEMMs (backend/dense_separable.hpp). The operators (op/) state which matrices they
// mean; the engines decide how. Coefficients are doubles, rounded to T by the engine.
#include <concepts>
#include <cstddef>
#include <vector>

namespace softdiff::backend {

enum class separable_form { toeplitz, dct_diagonal };

/// The two axis matrices of y = A_H X A_W^T: for toeplitz the taps g_0..g_R of each axis, for
/// dct_diagonal the H (rows) and W (cols) multipliers.
struct separable_spec {
  separable_form form = separable_form::toeplitz;
  std::vector<double> rows, cols;
  bool operator==(const separable_spec&) const = default;
};

/// An engine of the separable primitive: apply(spec, x, y, planes, h, w) sets every h x w plane
/// of y to A_H X A_W^T (y may equal x) and returns the index of the first plane whose input holds
/// a NaN or an infinity, or `planes` when none does or the engine does not look (the host engine
/// looks at no extra cost; a device engine does not, as a scan would stop an asynchronous queue).
template <class E, class T>
concept SeparableEngine = requires(E& e, const separable_spec& spec, const T* x, T* y, std::size_t n) {
  { e.apply(spec, x, y, n, n, n) } -> std::same_as<std::size_t>;
};

}  // namespace softdiff::backend
