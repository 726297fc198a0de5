#pragma once
// C(level) = IDCT diag(exp(-lambda sigma_B^2 / 2)) DCT: the heat blur with Neumann
// (reflecting) boundary, applied to every plane, level = sigma_B (blur std in pixels).
//
// DCT is the orthonormal 2-D DCT-II D_H (x) D_W, D[k, n] = s_k cos(pi k (2n + 1) / (2N)),
// s_0 = sqrt(1/N), s_k = sqrt(2/N); IDCT = DCT^T is the DCT-III. Then C = D^T M D with a
// diagonal M, so C is symmetric (self_adjoint) and apply_adjoint is apply. FFTW's REDFT10
// and REDFT01 are the unnormalised DCT-II / DCT-III with REDFT01(REDFT10(x)) = 2N x per
// axis, so the code computes C x = REDFT01(M REDFT10(x)) / (4 H W), the same operator.
//
// Eigenvalues: lambda_{k,l} = (pi k / H)^2 + (pi l / W)^2, those of the continuous
// Laplacian on the cosine modes cos(pi k (i + 1/2) / H). With them exp(-lambda s^2 / 2) is
// exactly the Fourier transform of a Gaussian of std s at the mode's frequency, so
// sigma_B means the same blur std as the paper's Gaussian blur (appendix G) away from the
// boundary. (The discrete Laplacian's 4 sin^2(pi k / (2H)) would give the discrete heat
// equation instead; it blurs fine detail less for the same sigma_B.) Both choices give
// C(0) = I, preserve the constant image (lambda_00 = 0: the mean is conserved, Neumann
// boundary) and the semigroup C(s1) C(s2) = C(sqrt(s1^2 + s2^2)).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "softdiff/backend/fftw.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

namespace detail {

/// Per-thread plane buffer (fftw_malloc'd, as the in-place plans require) and the calling
/// thread's separable multipliers.
template <class T>
struct dct_blur_workspace {
  backend::fftw::buffer<T> plane;
  std::vector<T> mh, mw;
};

template <class T>
dct_blur_workspace<T>& dct_blur_thread_workspace() {
  thread_local dct_blur_workspace<T> ws;
  return ws;
}

}  // namespace detail

template <class T = float>
struct dct_blur {
  using scalar_type = T;
  static constexpr bool self_adjoint = true;

  /// The 1-D multiplier exp(-(pi k / n)^2 sigma^2 / 2) of mode k on an axis of length n.
  [[nodiscard]] static double multiplier(std::size_t k, std::size_t n, double sigma) {
    if (k == 0) return 1.0;  // lambda_0 = 0 for every sigma, even where w^2 sigma^2 would overflow
    const double ws = std::numbers::pi * static_cast<double>(k) / static_cast<double>(n) * sigma;
    return std::exp(-ws * ws / 2);
  }

  /// y = C(sigma) x; y may alias x.
  void apply(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, "dct_blur::apply"); }
  /// C is symmetric: the adjoint is apply.
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const {
    run(level, x, y, "dct_blur::apply_adjoint");
  }

  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return std::numeric_limits<double>::max(); }
  [[nodiscard]] std::string name() const { return "dct-blur"; }

private:
  static void run(double level, const batch<T>& x, batch<T>& y, const char* where) {
    check_level(dct_blur{}, level, where);
    const shape4 s = shape_of(x);
    softdiff::detail::require(s[2] > 0 && s[3] > 0, where, ": empty image ", to_string(s));
    if (level == 0) {  // M = I: C = I exactly
      if (&x != &y) {
        ensure_shape(y, s);
        std::copy(x.data(), x.data() + x.size(), y.data());
      }
      return;
    }
    ensure_shape(y, s);
    const std::size_t h = s[2], w = s[3], plane = h * w, planes = s[0] * s[1];
    // exp(-lambda_{k,l} s^2 / 2) = exp(-(pi k/H)^2 s^2/2) exp(-(pi l/W)^2 s^2/2): separable.
    // The normalisation 1 / (4 H W) of the REDFT10 -> REDFT01 round trip is folded into mh.
    auto& own = detail::dct_blur_thread_workspace<T>();
    own.mh.resize(h);
    own.mw.resize(w);
    const double norm = 1.0 / (4.0 * static_cast<double>(h) * static_cast<double>(w));
    for (std::size_t k = 0; k < h; ++k) own.mh[k] = static_cast<T>(norm * multiplier(k, h, level));
    for (std::size_t l = 0; l < w; ++l) own.mw[l] = static_cast<T>(multiplier(l, w, level));
    const T* mh = own.mh.data();
    const T* mw = own.mw.data();
    const int hi = static_cast<int>(h), wi = static_cast<int>(w);
    const auto& fwd = backend::fftw::cached_plan<T>(backend::fftw::transform::dct_ii, hi, wi);
    const auto& inv = backend::fftw::cached_plan<T>(backend::fftw::transform::dct_iii, hi, wi);
    const T* src = x.data();
    T* dst = y.data();
    std::exception_ptr failure;
    const auto count = static_cast<std::int64_t>(planes);
    // Each plane is copied whole into the workspace before its output is written, so y may alias x.
#pragma omp parallel for schedule(static) if (count > 1)
    for (std::int64_t p = 0; p < count; ++p) {
      try {
        auto& ws = detail::dct_blur_thread_workspace<T>();
        ws.plane.resize(plane);
        T* buf = ws.plane.data();
        std::copy(src + static_cast<std::size_t>(p) * plane, src + static_cast<std::size_t>(p + 1) * plane, buf);
        fwd.r2r_in_place(buf);
        for (std::size_t k = 0; k < h; ++k) {
          T* row = buf + k * w;
          const T a = mh[k];
#pragma omp simd
          for (std::size_t l = 0; l < w; ++l) row[l] *= a * mw[l];
        }
        inv.r2r_in_place(buf);
        std::copy(buf, buf + plane, dst + static_cast<std::size_t>(p) * plane);
      } catch (...) {
#pragma omp critical(softdiff_dct_blur_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  }
};

static_assert(CorruptionOperator<dct_blur<float>>);
static_assert(CorruptionOperator<dct_blur<double>>);

}  // namespace softdiff::op
