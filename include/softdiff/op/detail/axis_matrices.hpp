#pragma once
// Host-side parameters of the operators as a backend applies them, computed from the CPU
// operators' own public definitions so that both sides apply the same operator:
//   - the Gaussian blur's axis matrix B (appendix G) from op::gaussian_blur::kernel(level);
//   - the DCT heat blur's axis matrix A = D^T diag(m) D from op::dct_blur::multiplier;
//   - op::fft_conv's kernel spectrum K / (Ph Pw) on the padded Ph x (Pw/2 + 1) half spectrum.
// All are computed in double and rounded to T once.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <numbers>
#include <vector>

#include "softdiff/backend/fftw.hpp"
#include "softdiff/error.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/fft_conv.hpp"

namespace softdiff::op {

/// The paper's blur along one axis of length n (appendix G, zero padding): B_ij = g_{|i-j|} for
/// |i - j| <= R and 0 otherwise, from the one-sided taps g_0..g_R normalised to sum 1 over
/// |k| <= R (op::gaussian_blur::kernel). Row-major n x n, symmetric.
template <class T>
[[nodiscard]] std::vector<T> gaussian_axis_matrix(const std::vector<double>& taps, std::size_t n) {
  softdiff::detail::require(!taps.empty(), "gaussian_axis_matrix: no taps");
  std::vector<T> b(n * n, T(0));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t d = i > j ? i - j : j - i;
      if (d < taps.size()) b[i * n + j] = static_cast<T>(taps[d]);
    }
  return b;
}

/// The DCT heat blur along one axis of length n: A = D^T diag(m) D with the orthonormal DCT-II
/// D[k, i] = s_k cos(pi k (2i + 1) / (2n)) (s_0 = sqrt(1/n), s_k = sqrt(2/n)) and
/// m_k = exp(-(pi k / n)^2 sigma^2 / 2) (op::dct_blur::multiplier). C = A_H X A_W^T is the
/// operator op::dct_blur computes as IDCT diag(exp(-lambda sigma^2 / 2)) DCT. Row-major n x n.
template <class T>
[[nodiscard]] std::vector<T> dct_axis_matrix(double sigma, std::size_t n) {
  std::vector<double> d(n * n), m(n);
  for (std::size_t k = 0; k < n; ++k) {
    const double s = std::sqrt((k == 0 ? 1.0 : 2.0) / static_cast<double>(n));
    for (std::size_t i = 0; i < n; ++i)
      d[k * n + i] = s * std::cos(std::numbers::pi * static_cast<double>(k) * static_cast<double>(2 * i + 1) /
                                  (2.0 * static_cast<double>(n)));
    m[k] = op::dct_blur<T>::multiplier(k, n, sigma);
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

/// op::fft_conv's kernel spectrum at one level for h x w images: the kernel embedded with its
/// centre at the origin of a Ph x Pw array (Ph = good_size(h + kh/2), Pw = good_size(w + kw/2),
/// taps folded modulo the size), transformed in float64 and divided by Ph Pw, as interleaved
/// (re, im) pairs on the Ph x (Pw/2 + 1) half spectrum. The same numbers as op::fft_conv's
/// private spectrum cache (fft_conv.hpp), from its public kernel(level).
template <class T>
struct conv_spectrum {
  int ph = 0, pw = 0;
  std::vector<T> k;  // 2 * ph * (pw/2 + 1) scalars
};

template <class T>
[[nodiscard]] conv_spectrum<T> fft_conv_spectrum(const op::fft_conv<T>& op, double level, std::size_t h,
                                                 std::size_t w) {
  const auto k = op.kernel(level);  // checked: odd sizes, finite entries, the family's shape
  const long kh = static_cast<long>(k.shape()[0]), kw = static_cast<long>(k.shape()[1]);
  const long ra = kh / 2, rb = kw / 2;
  conv_spectrum<T> out;
  out.ph = backend::fftw::good_size(static_cast<int>(h) + static_cast<int>(ra));
  out.pw = backend::fftw::good_size(static_cast<int>(w) + static_cast<int>(rb));
  const long ph = out.ph, pw = out.pw;
  const std::size_t nr = static_cast<std::size_t>(ph * pw), nc = static_cast<std::size_t>(ph * (pw / 2 + 1));
  backend::fftw::buffer<double> r(nr);
  backend::fftw::buffer<std::complex<double>> spec(nc);
  std::fill(r.data(), r.data() + nr, 0.0);
  for (long a = 0; a < kh; ++a) {
    const long pa = (((a - ra) % ph) + ph) % ph;
    for (long b = 0; b < kw; ++b) {
      const long pb = (((b - rb) % pw) + pw) % pw;
      r[static_cast<std::size_t>(pa * pw + pb)] += k(static_cast<std::size_t>(a), static_cast<std::size_t>(b));
    }
  }
  backend::fftw::cached_plan<double>(backend::fftw::transform::r2c, out.ph, out.pw).r2c(r.data(), spec.data());
  const double norm = 1.0 / (static_cast<double>(ph) * static_cast<double>(pw));  // c2r(r2c(x)) = Ph Pw x
  out.k.resize(2 * nc);
  for (std::size_t i = 0; i < nc; ++i) {
    const std::complex<T> v(spec[i] * norm);
    out.k[2 * i] = v.real();
    out.k[2 * i + 1] = v.imag();
  }
  return out;
}

}  // namespace softdiff::op
