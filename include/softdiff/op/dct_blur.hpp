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
//
// The operator states its axis matrices A = D^T diag(m) D per axis (axes(level)) and applies
// them by the backend's separable primitive (op/detail/algorithms.hpp): on the CPU by FFTW's
// DCTs (backend/cpu_separable.hpp), elsewhere as dense GEMMs. Copies share the engine.
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/separable.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/algorithms.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

template <class T = float>
class dct_blur {
public:
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

  /// C(level) as the backends' separable primitive takes it: the multipliers of each axis.
  [[nodiscard]] static backend::separable_spec axes(double level, std::size_t h, std::size_t w) {
    backend::separable_spec spec{backend::separable_form::dct_diagonal, std::vector<double>(h), std::vector<double>(w)};
    for (std::size_t k = 0; k < h; ++k) spec.rows[k] = multiplier(k, h, level);
    for (std::size_t l = 0; l < w; ++l) spec.cols[l] = multiplier(l, w, level);
    return spec;
  }

private:
  void run(double level, const batch<T>& x, batch<T>& y, const char* where) const {
    check_level(*this, level, where);
    const shape4 s = shape_of(x);
    softdiff::detail::require(s[2] > 0 && s[3] > 0, where, ": empty image ", to_string(s));
    if (&x != &y) ensure_shape(y, s);
    separable_operator_apply<backend::cpu>(*engine_, where, level, [&] { return axes(level, s[2], s[3]); }, x.data(),
                                           y.data(), s);
  }

  std::shared_ptr<backend::cpu_separable<T>> engine_ = std::make_shared<backend::cpu_separable<T>>();
};

static_assert(CorruptionOperator<dct_blur<float>>);
static_assert(CorruptionOperator<dct_blur<double>>);

}  // namespace softdiff::op
