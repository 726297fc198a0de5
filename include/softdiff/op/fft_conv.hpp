#pragma once
// C(level) x = k_level * x: 2-D convolution of every plane with a kernel from a family
// k_level, through FFTW, with ZERO padding (linear, not circular convolution).
//
// Semantics (the same as tests/support/operator_checks.hpp dense_conv2d_zero_pad):
//   y(i, j) = sum_{a,b} k(a, b) x(i + ra - a, j + rb - b),   ra = kh/2, rb = kw/2,
// with odd kernel sizes kh x kw and x = 0 outside the image. The adjoint is the
// correlation with the same kernel (the convolution with the flipped kernel); in the
// Fourier domain it multiplies by conj(K) instead of K, so it is exact.
//
// Padding: the image is embedded in a Ph x Pw array with Ph >= H + ra and Pw >= W + rb
// (rounded up to a 2-3-5-7-smooth size). That is enough for the circular convolution to
// equal the zero-padded linear one on the H x W output: an output pixel i reads x at
// i + ra - a in [-ra, H - 1 + ra]; indices in [H, H - 1 + ra] stay below Ph (no wrap) and
// land in the zero padding, and indices in [-ra, -1] wrap to [Ph - ra, Ph - 1], which is
// >= H and therefore also zero padding. The full linear size H + kh - 1 is not needed,
// and a kernel larger than the padded array is folded modulo (Ph, Pw) exactly.
//
// Levels: the default family is the paper's blur (appendix G): "a Gaussian kernel
// truncated to (2*80+1)^2, normalised to sum 1, applied with zero padding",
//   g_k = exp(-|k|^2 / (2 s^2)),  k in [-half, half]^2,  level = s (blur std, pixels),
// and level 0 the delta (C_0 = I). A user family std::function<kernel(double level)> on
// [min_level, max_level] plugs in any kernels; every kernel of a family has the shape of
// the kernel at min_level, which must be the delta of that shape.
//
// Kernel spectra are cached per (level, H, W) (a small LRU; a copy of the operator starts
// with an empty cache). The algorithm (pad, FFT, multiply, inverse FFT, crop) is
// op::fft_conv_apply over the backend's FFT (op/detail/algorithms.hpp): this class runs it on
// backend::cpu, 64 planes at a time; op::backend_operator runs it on
// any backend.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "softdiff/backend/fftw.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/algorithms.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {

namespace detail {

/// One cached kernel spectrum: K / (Ph Pw) on the Ph x (Pw/2 + 1) half spectrum.
template <class T>
struct fft_conv_spectrum {
  double level = 0;
  std::size_t h = 0, w = 0;
  int ph = 0, pw = 0;
  backend::fftw::buffer<std::complex<T>> k;
  std::uint64_t last_use = 0;
};

/// The mutable part of an fft_conv: spectrum cache and float64 scratch for new spectra.
template <class T>
struct fft_conv_state {
  static constexpr std::size_t capacity = 16;
  std::mutex m;
  std::vector<std::shared_ptr<fft_conv_spectrum<T>>> entries;
  std::uint64_t clock = 0;
  backend::fftw::buffer<double> scratch_real;
  backend::fftw::buffer<std::complex<double>> scratch_spec;
};

/// Per-thread work arrays of the CPU path: the planes' spectra (fftw_malloc'd, so that FFTW writes
/// them in place where a plane's offset keeps the alignment), and the engine.
template <class T>
struct fft_conv_workspace {
  backend::fftw::buffer<T> freq;
  backend::fftw::engine<T> fft;
};

template <class T>
fft_conv_workspace<T>& fft_conv_thread_workspace() {
  thread_local fft_conv_workspace<T> ws;
  return ws;
}

}  // namespace detail

template <class T = float>
class fft_conv {
public:
  using scalar_type = T;
  using kernel_type = xt::xtensor<double, 2>;
  using kernel_family = std::function<kernel_type(double level)>;
  static constexpr bool self_adjoint = false;

  /// The paper's Gaussian family: level = blur std s, kernel on [-half_size, half_size]^2.
  explicit fft_conv(int half_size = 80)
      : family_([half_size](double s) { return gaussian_kernel(s, half_size); }),
        min_(0.0),
        max_(std::numeric_limits<double>::max()) {
    softdiff::detail::require(half_size >= 0, "fft_conv: half_size ", half_size, " must be >= 0");
    init_shape();
  }

  /// A user family: family(level) is the kernel at level, for level in [min_level, max_level].
  /// Every kernel must have odd sizes, finite entries and the shape of family(min_level),
  /// which must be the delta (1 at the centre, 0 elsewhere).
  fft_conv(kernel_family family, double min_level, double max_level)
      : family_(std::move(family)), min_(min_level), max_(max_level) {
    softdiff::detail::require(static_cast<bool>(family_), "fft_conv: the kernel family is empty");
    softdiff::detail::require(std::isfinite(min_level), "fft_conv: min_level ", min_level, " must be finite");
    softdiff::detail::require(!std::isnan(max_level) && max_level >= min_level, "fft_conv: max_level ", max_level,
                              " must be >= min_level ", min_level);
    init_shape();
  }

  /// A copy has the same kernel family and a cache of its own (empty).
  fft_conv(const fft_conv& o) : family_(o.family_), min_(o.min_), max_(o.max_), kh_(o.kh_), kw_(o.kw_) {}
  fft_conv& operator=(const fft_conv& o) {
    if (this != &o) {
      family_ = o.family_, min_ = o.min_, max_ = o.max_, kh_ = o.kh_, kw_ = o.kw_;
      state_ = std::make_unique<detail::fft_conv_state<T>>();
    }
    return *this;
  }
  // No move operations: a move copies, so that a moved-from operator keeps a cache and stays usable.

  /// The paper's truncated Gaussian (appendix G): exp(-(a^2 + b^2) / (2 s^2)) for
  /// a, b in [-half, half], normalised to sum 1; s = 0 gives the delta.
  [[nodiscard]] static kernel_type gaussian_kernel(double s, int half_size) {
    softdiff::detail::require(std::isfinite(s) && s >= 0, "fft_conv::gaussian_kernel: blur std ", s,
                              " must be finite and >= 0");
    softdiff::detail::require(half_size >= 0, "fft_conv::gaussian_kernel: half_size ", half_size, " must be >= 0");
    const std::size_t n = 2 * static_cast<std::size_t>(half_size) + 1;
    std::vector<double> g(n, 0.0);
    if (s == 0) {
      g[static_cast<std::size_t>(half_size)] = 1.0;
    } else {
      double sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(i) - half_size;
        g[i] = std::exp(-d * d / (2 * s * s));
        sum += g[i];
      }
      for (double& v : g) v /= sum;
    }
    kernel_type k({n, n});
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = 0; b < n; ++b) k(a, b) = g[a] * g[b];  // separable: (sum g)^2 normalises the 2-D sum
    return k;
  }

  /// The kernel at `level`, validated.
  [[nodiscard]] kernel_type kernel(double level) const {
    check_level(*this, level, "fft_conv");
    kernel_type k = family_(level);
    check_kernel(k, level);
    return k;
  }

  /// y = k_level * x (zero padding).
  void apply(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, false); }
  /// y = k_level (correlation) x, the exact adjoint of apply.
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, true); }

  [[nodiscard]] double min_level() const { return min_; }
  [[nodiscard]] double max_level() const { return max_; }
  [[nodiscard]] std::string name() const { return "fft-conv"; }
  [[nodiscard]] std::size_t kernel_rows() const { return kh_; }
  [[nodiscard]] std::size_t kernel_cols() const { return kw_; }

private:
  void init_shape() {
    kernel_type k0 = family_(min_);
    softdiff::detail::require(k0.dimension() == 2 && k0.size() > 0, "fft_conv: the kernel at min_level ", min_,
                              " is empty");
    kh_ = k0.shape()[0];
    kw_ = k0.shape()[1];
    check_kernel(k0, min_);
    for (std::size_t a = 0; a < kh_; ++a)
      for (std::size_t b = 0; b < kw_; ++b) {
        const double expected = (a == kh_ / 2 && b == kw_ / 2) ? 1.0 : 0.0;
        softdiff::detail::require(k0(a, b) == expected, "fft_conv: the kernel at min_level ", min_,
                                  " must be the delta (1 at the centre, 0 elsewhere) so that min_level is the "
                                  "identity, but entry (", a, ", ", b, ") is ", k0(a, b));
      }
  }

  void check_kernel(const kernel_type& k, double level) const {
    const std::size_t kh = k.shape()[0], kw = k.shape()[1];
    softdiff::detail::require(kh % 2 == 1 && kw % 2 == 1, "fft_conv: the kernel at level ", level, " has size ", kh,
                              " x ", kw, "; kernel sizes must be odd (centre at kh/2, kw/2)");
    softdiff::detail::require(kh == kh_ && kw == kw_, "fft_conv: the kernel at level ", level, " has size ", kh,
                              " x ", kw, ", mismatched with the family's size ", kh_, " x ", kw_,
                              " (the kernel at min_level)");
    for (std::size_t a = 0; a < kh; ++a)
      for (std::size_t b = 0; b < kw; ++b)
        softdiff::detail::require(std::isfinite(k(a, b)), "fft_conv: the kernel at level ", level,
                                  " has a non-finite entry ", k(a, b), " at (", a, ", ", b, ")");
  }

public:
  /// The kernel spectrum at `level` for h x w images, from the cache or computed in float64: the
  /// kernel embedded with its centre at the origin of a Ph x Pw array (Ph = good_size(h + kh/2),
  /// Pw = good_size(w + kw/2), taps folded modulo the size), transformed and divided by Ph Pw, on
  /// the Ph x (Pw/2 + 1) half spectrum. What every backend multiplies by (op::fft_conv_apply).
  std::shared_ptr<const detail::fft_conv_spectrum<T>> spectrum(double level, std::size_t h, std::size_t w) const {
    auto& st = *state_;
    std::lock_guard lock(st.m);
    ++st.clock;
    for (auto& e : st.entries)
      if (e->level == level && e->h == h && e->w == w) {
        e->last_use = st.clock;
        return e;
      }
    const kernel_type k = kernel(level);
    const long ra = static_cast<long>(kh_ / 2), rb = static_cast<long>(kw_ / 2);
    const int ph = backend::fftw::good_size(static_cast<int>(h) + static_cast<int>(ra));
    const int pw = backend::fftw::good_size(static_cast<int>(w) + static_cast<int>(rb));
    const std::size_t nr = static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw);
    const std::size_t nc = static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw / 2 + 1);
    // Tap (a, b) sits at ((a - ra) mod Ph, (b - rb) mod Pw): the centre at the origin.
    st.scratch_real.resize(nr);
    st.scratch_spec.resize(nc);
    double* r = st.scratch_real.data();
    std::fill(r, r + nr, 0.0);
    for (long a = 0; a < static_cast<long>(kh_); ++a) {
      const long pa = (((a - ra) % ph) + ph) % ph;
      for (long b = 0; b < static_cast<long>(kw_); ++b) {
        const long pb = (((b - rb) % pw) + pw) % pw;
        r[pa * pw + pb] += k(static_cast<std::size_t>(a), static_cast<std::size_t>(b));
      }
    }
    backend::fftw::cached_plan<double>(backend::fftw::transform::r2c, ph, pw).r2c(r, st.scratch_spec.data());
    // Reuse the least recently used entry when nobody else holds it; otherwise make a new one.
    std::shared_ptr<detail::fft_conv_spectrum<T>> e;
    if (st.entries.size() < st.capacity) {
      e = std::make_shared<detail::fft_conv_spectrum<T>>();
      st.entries.push_back(e);
    } else {
      auto lru = std::min_element(st.entries.begin(), st.entries.end(),
                                  [](const auto& p, const auto& q) { return p->last_use < q->last_use; });
      if (lru->use_count() != 1) *lru = std::make_shared<detail::fft_conv_spectrum<T>>();
      e = *lru;
    }
    e->level = level, e->h = h, e->w = w, e->ph = ph, e->pw = pw, e->last_use = st.clock;
    e->k.resize(nc);
    const double norm = 1.0 / (static_cast<double>(ph) * static_cast<double>(pw));  // c2r(r2c(x)) = Ph Pw x
    for (std::size_t i = 0; i < nc; ++i) e->k[i] = std::complex<T>(st.scratch_spec[i] * norm);
    return e;
  }

private:
  /// Planes per call of fft_conv_apply on the CPU: bounds the spectra held at once whatever the
  /// batch size; planes are independent, so the result does not depend on it.
  static constexpr std::size_t planes_per_pass = 64;

  void run(double level, const batch<T>& x, batch<T>& y, bool adjoint) const {
    const char* where = adjoint ? "fft_conv::apply_adjoint" : "fft_conv::apply";
    check_level(*this, level, where);
    const shape4 s = shape_of(x);
    softdiff::detail::require(s[2] > 0 && s[3] > 0, where, ": empty image ", to_string(s));
    if (&x != &y) ensure_shape(y, s);
    const std::size_t planes = s[0] * s[1], plane = s[2] * s[3];
    if (level == min_) {  // the delta: C = I exactly
      copy_apply<backend::cpu>(x.data(), y.data(), planes * plane);
      return;
    }
    if (planes == 0) return;
    const auto spec = spectrum(level, s[2], s[3]);
    const std::size_t chunk = std::min(planes, planes_per_pass);
    const std::size_t nc = static_cast<std::size_t>(spec->ph) * static_cast<std::size_t>(spec->pw / 2 + 1);
    auto& ws = detail::fft_conv_thread_workspace<T>();
    if (ws.freq.size() < 2 * chunk * nc) ws.freq.resize(2 * chunk * nc);
    const T* k = reinterpret_cast<const T*>(spec->k.data());  // std::complex<T> is two T (re, im)
    for (std::size_t p = 0; p < planes; p += chunk) {
      const std::size_t n = std::min(chunk, planes - p);
      fft_conv_apply<backend::cpu>(ws.fft, k, spec->ph, spec->pw, adjoint, x.data() + p * plane, y.data() + p * plane,
                                   ws.freq.data(), shape4{n, 1, s[2], s[3]});
    }
  }

  kernel_family family_;
  double min_ = 0, max_ = 0;
  std::size_t kh_ = 1, kw_ = 1;
  std::unique_ptr<detail::fft_conv_state<T>> state_ = std::make_unique<detail::fft_conv_state<T>>();
};

static_assert(CorruptionOperator<fft_conv<float>>);
static_assert(CorruptionOperator<fft_conv<double>>);

}  // namespace softdiff::op
