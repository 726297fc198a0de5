#pragma once
// The corruption operators of the core on any Backend: backend_operator<B, Op> wraps a host
// operator Op (its parameters, level range and checks) and applies the same C(level) to NCHW
// data in B's memory by the same algorithm the CPU class runs (op/detail/algorithms.hpp), on
// B's primitives. With B = backend::cuda this is the GPU path (cuda_ops.cuh); with
// B = backend::cpu it is the CPU class's own computation, bit for bit.
//
// Every operator accepts y == x (in place). Levels are checked by the host operator, with its
// messages. The separable blurs keep B's separable engine (its plans or axis matrices cached
// per level and size); fft_conv's spectra are computed by the host operator in double, rounded
// to T, copied to B once and kept in a small per-object cache keyed by (level, H, W); workspaces
// grow and are kept, so a steady-state loop does not allocate. A device engine does not scan its
// input for NaN or inf (a scan would stop an asynchronous backend); check inputs before they
// reach the backend. An object is not thread-safe and, on backend::cuda, must be used from one
// stream at a time.
#include <climits>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/detail/lru.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/op/compose.hpp"
#include "softdiff/op/dct_blur.hpp"
#include "softdiff/op/fft_conv.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/mask.hpp"
#include "softdiff/op/scale.hpp"
#include "softdiff/op/detail/algorithms.hpp"

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
    entry& e = backend::detail::lru_slot(entries_, capacity);
    e.level = std::numeric_limits<double>::quiet_NaN();  // matches no level until filled (fill may throw)
    fill(e);
    e.level = level, e.h = h, e.w = w, e.last_use = clock_;
    return e;
  }

private:
  std::vector<entry> entries_;
  std::uint64_t clock_ = 0;
};

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
    mask_apply<B>(host_operator::removed(level, s[2], s[3]), x, y, s);
  }
  host_operator host_;
};

template <Backend B, class T>
class backend_operator<B, op::gaussian_blur<T>> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::gaussian_blur<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = host_operator{}) : host_(std::move(host)) {}
  /// Appendix G: y = B_H X B_W^T with B_ij = g_{|i-j|} (zero padding), level = blur std.
  void apply(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, "gaussian_blur::apply"); }
  /// B_H and B_W are symmetric: C^T = C.
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) {
    run(level, x, y, s, "gaussian_blur::apply_adjoint");
  }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  void run(double level, const T* x, T* y, const shape4& s, const char* where) {
    check_level(host_, level, where);
    check_memory<B>(where, x, y);
    separable_operator_apply<B>(engine_, where, level, [&] { return host_.axes(level); }, x, y, s);
  }
  host_operator host_;
  typename B::template separable<T> engine_;
};

template <Backend B, class T>
class backend_operator<B, op::dct_blur<T>> {
public:
  using scalar_type = T;
  using backend_type = B;
  using host_operator = op::dct_blur<T>;
  static constexpr bool self_adjoint = true;

  explicit backend_operator(host_operator host = {}) : host_(host) {}
  /// C = IDCT diag(exp(-lambda sigma^2 / 2)) DCT = A_H X A_W^T (A = D^T diag(m) D per axis).
  void apply(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, "dct_blur::apply"); }
  void apply_adjoint(double level, const T* x, T* y, const shape4& s) { run(level, x, y, s, "dct_blur::apply_adjoint"); }
  [[nodiscard]] const host_operator& host() const { return host_; }

private:
  void run(double level, const T* x, T* y, const shape4& s, const char* where) {
    check_level(host_, level, where);
    check_memory<B>(where, x, y);
    softdiff::detail::require(s[2] > 0 && s[3] > 0, where, ": empty image ", to_string(s));
    separable_operator_apply<B>(engine_, where, level, [&] { return host_operator::axes(level, s[2], s[3]); }, x, y, s);
  }
  host_operator host_;
  typename B::template separable<T> engine_;
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
      const auto k = host_.spectrum(level, s[2], s[3]);
      fresh.data.upload(reinterpret_cast<const T*>(k->k.data()), 2 * k->k.size());  // (re, im) pairs
      fresh.ph = k->ph, fresh.pw = k->pw;
    });
    const std::size_t nc = static_cast<std::size_t>(e.ph) * static_cast<std::size_t>(e.pw / 2 + 1);
    freq_.resize(2 * planes * nc);
    fft_conv_apply<B>(fft_, e.data.data(), e.ph, e.pw, adjoint, x, y, freq_.data(), s);
  }

  host_operator host_;
  detail::level_cache<B, T> cache_;
  buffer<B, T> freq_;
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
static_assert(std::is_move_constructible_v<backend_operator<backend::cpu, op::gaussian_blur<float>>>);
static_assert(std::is_move_constructible_v<backend_operator<backend::cpu, op::dct_blur<double>>>);

}  // namespace softdiff::op
