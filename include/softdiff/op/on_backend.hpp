#pragma once
// The corruption operators of the core on any Backend, written once over the backend's
// primitives (backend/backend.hpp) on raw backend pointers: backend_operator<B, Op> wraps a
// host operator Op (its parameters, level range and checks) and applies the same C(level) to
// NCHW data in B's memory. With B = backend::cuda this is the GPU path (cuda_ops.cuh); with
// B = backend::cpu the same code runs on the host, which is how it is tested where no GPU is
// present (tests/test_backend_portable.cpp). The CPU operator classes (op/*.hpp) keep their own
// host kernels, tuned for the CPU (the banded blur of op/detail/axis_kernels.hpp; measured in
// docs/performance.md); SoftDiffusion on backend::cpu uses those, every other backend this file.
//
//   identity, scale, mask   one element-wise pass (op/detail/element_kernels.hpp)
//   gaussian_blur           the paper's exact blur C X = B_H X B_W^T (appendix G) as two GEMMs
//                           with the dense axis matrices: T = X B_W^T over all rows of the batch
//                           at once, then Y_p = B_H T_p, a strided-batched GEMM over planes
//   dct_blur                the same two GEMMs with A = D^T diag(exp(-(pi k/n)^2 s^2/2)) D per axis
//   fft_conv                zero padding, batched real FFT, K (or conj K for the adjoint), inverse
//                           FFT, crop (the circular-equals-linear argument of op/fft_conv.hpp)
//   compose                 inner then outer operator (adjoint: outer^T then inner^T)
//
// Every operator accepts y == x (in place). Levels are checked by the host operator, with its
// messages. Axis matrices and spectra are built on the host in double (op/detail/axis_matrices.hpp),
// rounded to T, copied to the backend once and kept in a small per-object cache keyed by
// (level, H, W); workspaces grow and are kept, so a steady-state loop does not allocate.
// Unlike the CPU Gaussian blur, apply does not scan its input for NaN or inf (a scan would stop
// an asynchronous backend); check inputs before they reach the backend.
// An object is not thread-safe and, on backend::cuda, must be used from one stream at a time.
#include <climits>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "softdiff/backend/buffer.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/compose.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/fft_conv.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/op/detail/axis_matrices.hpp"
#include "softdiff/op/detail/element_kernels.hpp"

namespace softdiff::op {

using backend::buffer;
using backend::element_count;
using backend::fft_engine;

/// A corruption operator applied in a backend's memory: y = C(level) x and y = C(level)^T x on
/// an NCHW batch of shape s, x and y backend pointers (y may equal x).
template <class D>
concept BackendOperator = requires(D& d, const D& cd, double level, const typename D::scalar_type* x,
                                   typename D::scalar_type* y, const shape4& s) {
  typename D::scalar_type;
  typename D::backend_type;
  typename D::host_operator;
  { D::self_adjoint } -> std::convertible_to<bool>;
  d.apply(level, x, y, s);
  d.apply_adjoint(level, x, y, s);
  { cd.host() } -> std::convertible_to<const typename D::host_operator&>;
};

/// Throws naming `where` unless x and y are memory of backend B (B::require_memory).
template <Backend B, class T>
void check_memory(const char* where, const T* x, const T* y) {
  B::require_memory(x, where);
  B::require_memory(y, where);
}

// ---- the algorithms, on raw backend pointers ----

/// y = x (nothing when y is x).
template <Backend B, class T>
void copy_apply(const T* x, T* y, std::size_t n) {
  if (x != y && n > 0) B::template copy<T>(x, y, n);
}

/// y = alpha x.
template <Backend B, class T>
void scale_apply(T alpha, const T* x, T* y, std::size_t n) {
  if (n > 0) B::parallel_for(n, kernels::scale_fn<T>{x, y, alpha});
}

/// y = x with the rectangle r of every plane zeroed (op::mask).
template <Backend B, class T>
void mask_apply(const typename op::mask<T>::rectangle& r, const T* x, T* y, const shape4& s) {
  const std::size_t n = element_count(s);
  if (n > 0) B::parallel_for(n, kernels::mask_fn<T>{x, y, s[2], s[3], r.top, r.left, r.h, r.w});
}

/// y = A_H X A_W^T on every H x W plane X, with row-major axis matrices a_h (H x H) and a_w
/// (W x W); ws holds N C H W scalars; y may alias x.
template <Backend B, class T>
void separable_apply(const T* a_h, const T* a_w, const T* x, T* y, T* ws, const shape4& s) {
  const std::size_t planes = s[0] * s[1], h = s[2], w = s[3];
  if (planes == 0 || h == 0 || w == 0) return;
  softdiff::detail::require(planes * h <= static_cast<std::size_t>(INT_MAX) && planes <= static_cast<std::size_t>(INT_MAX),
                            "separable_apply: batch ", to_string(s), " has more rows than a GEMM takes (", INT_MAX, ")");
  const int rows = static_cast<int>(planes * h), hi = static_cast<int>(h), wi = static_cast<int>(w);
  const auto area = static_cast<std::ptrdiff_t>(h * w);
  // T = X A_W^T for every row of every plane at once: [N C H x W] [W x W]^T
  B::template gemm<T>(false, true, rows, wi, wi, T(1), x, wi, a_w, wi, T(0), ws, wi);
  // Y_p = A_H T_p for every plane p: [H x H] [H x W], A_H shared (stride 0)
  B::template gemm_strided_batched<T>(false, false, hi, wi, hi, T(1), a_h, hi, 0, ws, wi, area, T(0), y, wi, area,
                                      static_cast<int>(planes));
}

/// y = k * x (adjoint: the correlation) by zero padding to ph x pw, FFT, multiplication by the
/// half spectrum (interleaved, from fft_conv_spectrum), inverse FFT and crop. `padded` holds
/// N C ph pw scalars and `freq` 2 N C ph (pw/2 + 1); y may alias x.
template <Backend B, class T>
void fft_conv_apply(fft_engine<B, T>& fft, const T* spectrum, int ph, int pw, bool adjoint, const T* x, T* y,
                    T* padded, T* freq, const shape4& s) {
  const std::size_t planes = s[0] * s[1], h = s[2], w = s[3];
  if (planes == 0 || h == 0 || w == 0) return;
  const std::size_t nr = static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw);
  const std::size_t nc = static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw / 2 + 1);
  B::parallel_for(planes * nr, kernels::zero_pad_fn<T>{x, padded, h, w, static_cast<std::size_t>(ph),
                                                       static_cast<std::size_t>(pw)});
  fft.r2c(ph, pw, planes, padded, freq);
  B::parallel_for(planes * nc, kernels::spectrum_multiply_fn<T>{freq, spectrum, nc, adjoint});
  fft.c2r(ph, pw, planes, freq, padded);
  B::parallel_for(planes * h * w, kernels::crop_fn<T>{padded, y, h, w, static_cast<std::size_t>(ph),
                                                      static_cast<std::size_t>(pw)});
}

namespace detail {

/// Recently used per-(level, H, W) data in backend memory, least recently used evicted.
template <Backend B, class T>
class level_cache {
public:
  static constexpr std::size_t capacity = 8;
  struct entry {
    double level = 0;
    std::size_t h = 0, w = 0;
    int ph = 0, pw = 0;  // fft_conv's padded size
    buffer<B, T> data;
    std::size_t split = 0;  // offset of the second array in data
    std::uint64_t last_use = 0;
  };

  /// The entry for (level, h, w); `fill(entry&)` fills a new one.
  template <class Fill>
  entry& get(double level, std::size_t h, std::size_t w, Fill&& fill) {
    ++clock_;
    for (auto& e : entries_)
      if (e.level == level && e.h == h && e.w == w) {
        e.last_use = clock_;
        return e;
      }
    entry* e = nullptr;
    if (entries_.size() < capacity) {
      e = &entries_.emplace_back();
    } else {
      e = &entries_[0];
      for (auto& c : entries_)
        if (c.last_use < e->last_use) e = &c;
    }
    e->level = std::numeric_limits<double>::quiet_NaN();  // matches no level until filled (fill may throw)
    fill(*e);
    e->level = level, e->h = h, e->w = w, e->last_use = clock_;
    return *e;
  }

private:
  std::vector<entry> entries_;
  std::uint64_t clock_ = 0;
};

/// The two axis matrices (H x H, then W x W) of a separable operator in one backend buffer.
template <Backend B, class T, class Build>
void fill_axis_pair(typename level_cache<B, T>::entry& e, std::size_t h, std::size_t w, Build&& build) {
  std::vector<T> m = build(h);
  const std::vector<T> mw = build(w);
  m.insert(m.end(), mw.begin(), mw.end());
  e.data.upload(m.data(), m.size());
  e.split = h * h;
}

}  // namespace detail

/// The backend form of host operator Op; specialised for every operator family of the core.
template <Backend B, class Op>
class backend_operator;

template <Backend B, class T>
class backend_operator<B, op::identity<T>> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::identity<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = {}) : host_(host) {}
  void apply(double level, const T* x, T* y, const shape4& s) {
    check_level(host_, level, "identity");
    check_memory<B>("identity", x, y);
    copy_apply<B>(x, y, element_count(s));
  }
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { apply(level, x, y, s); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  host_operator host_;
};

template <Backend B, class T>
class backend_operator<B, op::scale<T>> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::scale<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = {}) : host_(host) {}
  /// y = alpha x, alpha = 1 - level.
  void apply(double level, const T* x, T* y, const shape4& s) {
    check_level(host_, level, "scale");
    check_memory<B>("scale", x, y);
    scale_apply<B>(static_cast<T>(host_operator::factor(level)), x, y, element_count(s));
  }
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { apply(level, x, y, s); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  host_operator host_;
};

template <Backend B, class T>
class backend_operator<B, op::mask<T>> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::mask<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = {}) : host_(host) {}
  /// Zeroes the centred rectangle op::mask::removed(level, H, W) of every plane.
  void apply(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, "mask::apply"); }
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, "mask::apply_adjoint"); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  void run(double level, const T* x, T* y, const shape4& s, const char* where) {
    check_level(host_, level, where);
    check_memory<B>(where, x, y);
    if (element_count(s) == 0) return;
    const auto r = host_operator::removed(level, s[2], s[3]);
    if (r.h == 0)
      copy_apply<B>(x, y, element_count(s));
    else
      mask_apply<B>(r, x, y, s);
  }
  host_operator host_;
};

/// Shared by the Gaussian and DCT blurs: C X = A_H X A_W^T with cached axis matrices.
template <Backend B, class T>
class separable_operator_base {
protected:
  template <class Build>
  void run(double level, const T* x, T* y, const shape4& s, Build&& build) {
    const std::size_t n = element_count(s);
    if (n == 0) return;
    if (level == 0) {  // C_0 = I exactly
      copy_apply<B>(x, y, n);
      return;
    }
    auto& e = cache_.get(level, s[2], s[3], [&](auto& fresh) {
      detail::fill_axis_pair<B, T>(fresh, s[2], s[3], build);
    });
    workspace_.resize(n);
    separable_apply<B>(e.data.data(), e.data.data() + e.split, x, y, workspace_.data(), s);
  }

private:
  detail::level_cache<B, T> cache_;
  buffer<B, T> workspace_;
};

template <Backend B, class T>
class backend_operator<B, op::gaussian_blur<T>> : separable_operator_base<B, T> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::gaussian_blur<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = host_operator{}) : host_(std::move(host)) {}
  /// Appendix G: y = B_H X B_W^T with B_ij = g_{|i-j|} (zero padding), level = blur std.
  void apply(double level, const T* x, T* y, const shape4& s) {
    check_level(host_, level, "gaussian_blur::apply");
    check_memory<B>("gaussian_blur::apply", x, y);
    this->run(level, x, y, s, [&](std::size_t n) { return gaussian_axis_matrix<T>(host_.kernel(level), n); });
  }
  /// B_H and B_W are symmetric: C^T = C.
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { apply(level, x, y, s); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  host_operator host_;
};

template <Backend B, class T>
class backend_operator<B, op::dct_blur<T>> : separable_operator_base<B, T> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::dct_blur<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = {}) : host_(host) {}
  /// C = IDCT diag(exp(-lambda sigma^2 / 2)) DCT, applied as A_H X A_W^T (A = D^T diag(m) D).
  void apply(double level, const T* x, T* y, const shape4& s) {
    check_level(host_, level, "dct_blur::apply");
    check_memory<B>("dct_blur::apply", x, y);
    softdiff::detail::require(s[2] > 0 && s[3] > 0, "dct_blur::apply: empty image ", to_string(s));
    this->run(level, x, y, s, [&](std::size_t n) { return dct_axis_matrix<T>(level, n); });
  }
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { apply(level, x, y, s); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  host_operator host_;
};

template <Backend B, class T>
class backend_operator<B, op::fft_conv<T>> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::fft_conv<T>;
  static constexpr bool self_adjoint = false;

  explicit backend_operator(host_operator host = host_operator{}) : host_(std::move(host)) {}
  /// y = k_level * x, zero padding.
  void apply(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, false); }
  /// y = k_level correlated with x: multiplication by conj(K), the exact adjoint.
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, true); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  void run(double level, const T* x, T* y, const shape4& s, bool adjoint) {
    const char* where = adjoint ? "fft_conv::apply_adjoint" : "fft_conv::apply";
    check_level(host_, level, where);
    check_memory<B>(where, x, y);
    softdiff::detail::require(s[2] > 0 && s[3] > 0, where, ": empty image ", to_string(s));
    const std::size_t n = element_count(s), planes = s[0] * s[1];
    if (level == host_.min_level()) {  // the delta: C = I exactly
      copy_apply<B>(x, y, n);
      return;
    }
    if (n == 0) return;
    auto& e = cache_.get(level, s[2], s[3], [&](auto& fresh) {
      const conv_spectrum<T> k = fft_conv_spectrum<T>(host_, level, s[2], s[3]);
      fresh.data.upload(k.k.data(), k.k.size());
      fresh.ph = k.ph, fresh.pw = k.pw;
    });
    const std::size_t nr = static_cast<std::size_t>(e.ph) * static_cast<std::size_t>(e.pw);
    const std::size_t nc = static_cast<std::size_t>(e.ph) * static_cast<std::size_t>(e.pw / 2 + 1);
    padded_.resize(planes * nr);
    freq_.resize(2 * planes * nc);
    fft_conv_apply<B>(fft_, e.data.data(), e.ph, e.pw, adjoint, x, y, padded_.data(), freq_.data(), s);
  }

  host_operator host_;
  detail::level_cache<B, T> cache_;
  buffer<B, T> padded_, freq_;
  fft_engine<B, T> fft_;
};

/// C = A(map_a(level)) B(map_b(level)): inner operator, then outer (op::compose).
template <Backend B, CorruptionOperator A, CorruptionOperator C>
class backend_operator<B, op::compose<A, C>> {
public:
  using host_operator = op::compose<A, C>;
  using scalar_type = typename host_operator::scalar_type;
  using backend_type = B;
  static constexpr bool self_adjoint = false;

  explicit backend_operator(host_operator host)
      : host_(std::move(host)), outer_(host_.outer()), inner_(host_.inner()) {}
  void apply(double level, const scalar_type* x, scalar_type* y, const shape4& s) {
    check_level(host_, level, "compose::apply");
    inner_.apply(host_.level_b(level), x, y, s);
    outer_.apply(host_.level_a(level), y, y, s);
  }
  /// C^T = B^T A^T.
  void apply_adjoint(double level, const scalar_type* x, scalar_type* y, const shape4& s) {
    check_level(host_, level, "compose::apply_adjoint");
    outer_.apply_adjoint(host_.level_a(level), x, y, s);
    inner_.apply_adjoint(host_.level_b(level), y, y, s);
  }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  host_operator host_;
  backend_operator<B, A> outer_;
  backend_operator<B, C> inner_;
};

/// backend_operator<B, Op> for a host operator, e.g. make_backend_operator<backend::cuda>(op::gaussian_blur<>(80)).
template <Backend B, CorruptionOperator Op>
[[nodiscard]] backend_operator<B, Op> make_backend_operator(Op host) {
  return backend_operator<B, Op>(std::move(host));
}

static_assert(BackendOperator<backend_operator<backend::cpu, op::identity<float>>>);
static_assert(BackendOperator<backend_operator<backend::cpu, op::scale<double>>>);
static_assert(BackendOperator<backend_operator<backend::cpu, op::mask<float>>>);
static_assert(BackendOperator<backend_operator<backend::cpu, op::gaussian_blur<float>>>);
static_assert(BackendOperator<backend_operator<backend::cpu, op::dct_blur<double>>>);
static_assert(BackendOperator<backend_operator<backend::cpu, op::fft_conv<float>>>);
static_assert(BackendOperator<backend_operator<backend::cpu, op::compose<op::mask<float>, op::gaussian_blur<float>>>>);

}  // namespace softdiff::op
