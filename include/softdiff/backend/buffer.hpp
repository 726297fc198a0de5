#pragma once
// Arrays in a backend's memory (host memory for backend::cpu, device memory for backend::cuda),
// allocated through the Backend trait:
//   buffer<B, T>        an owned, move-only array whose capacity only grows, so a workspace
//                       resized to the same or a smaller size in a loop never reallocates;
//   device_batch<B, T>  a buffer with an NCHW shape: the batch type of a backend other than the
//                       CPU, with the same free functions as softdiff::batch (shape_of,
//                       ensure_shape, data(), size());
//   batch_t<B, T>       the batch of backend B: softdiff::batch<T> on backend::cpu (so that
//                       everything written over backends takes the CPU's own batches there),
//                       device_batch<B, T> elsewhere.
#include <cstddef>
#include <type_traits>
#include <utility>

#include "softdiff/backend/backend.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::backend {

template <Backend B, class T>
class buffer {
public:
  using backend_type = B;
  using value_type = T;

  buffer() = default;
  explicit buffer(std::size_t n) { resize(n); }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  buffer(buffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)), cap_(std::exchange(o.cap_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }
  ~buffer() { release(); }

  /// n elements; reallocates (contents lost) only when n exceeds the capacity.
  void resize(std::size_t n) {
    if (n > cap_) {
      release();
      p_ = B::template allocate<T>(n);
      cap_ = n;
    }
    n_ = n;
  }
  [[nodiscard]] T* data() noexcept { return p_; }
  [[nodiscard]] const T* data() const noexcept { return p_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }

  /// Resizes to n and copies n elements from host memory.
  void upload(const T* host, std::size_t n) {
    resize(n);
    B::template copy<T>(host, p_, n);
  }
  /// Copies size() elements to host memory (complete when this returns).
  void download(T* host) const { B::template copy<T>(p_, host, n_); }

private:
  void release() noexcept {
    if (p_) B::template deallocate<T>(p_, cap_);
    p_ = nullptr;
    n_ = cap_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
};

/// Elements of an NCHW shape.
[[nodiscard]] inline std::size_t element_count(const shape4& s) { return s[0] * s[1] * s[2] * s[3]; }

// softdiff::batch's own functions, beside the device_batch overloads below.
using ::softdiff::ensure_shape;
using ::softdiff::shape_of;

/// An NCHW batch in backend B's memory.
template <Backend B, class T>
class device_batch {
public:
  using backend_type = B;
  using value_type = T;

  device_batch() = default;
  explicit device_batch(const shape4& s) { resize(s); }

  /// Shape s; reallocates (contents lost) only when s holds more elements than the capacity.
  void resize(const shape4& s) {
    buf_.resize(element_count(s));
    shape_ = s;
  }
  [[nodiscard]] T* data() noexcept { return buf_.data(); }
  [[nodiscard]] const T* data() const noexcept { return buf_.data(); }
  [[nodiscard]] std::size_t size() const noexcept { return buf_.size(); }
  [[nodiscard]] const shape4& shape() const noexcept { return shape_; }

private:
  buffer<B, T> buf_;
  shape4 shape_{0, 0, 0, 0};
};

template <Backend B, class T>
[[nodiscard]] shape4 shape_of(const device_batch<B, T>& x) {
  return x.shape();
}
/// Gives x shape s (contents unspecified when the shape changes).
template <Backend B, class T>
void ensure_shape(device_batch<B, T>& x, const shape4& s) {
  if (x.shape() != s) x.resize(s);
}

namespace detail {
template <class B, class T>
struct batch_of {
  using type = device_batch<B, T>;
};
template <class T>
struct batch_of<cpu, T> {
  using type = ::softdiff::batch<T>;
};
}  // namespace detail

/// The batch type of backend B.
template <Backend B, class T>
using batch_t = typename detail::batch_of<B, T>::type;

/// dst = src on backend B (dst takes src's shape; no allocation when it already has it).
template <Backend B, class A>
void copy_batch(const A& src, A& dst) {
  if (&src == &dst) return;
  ensure_shape(dst, shape_of(src));
  B::copy(src.data(), dst.data(), src.size());
}

/// A host batch copied into a new backend buffer.
template <Backend B, class T>
[[nodiscard]] buffer<B, T> to_backend(const batch<T>& x) {
  buffer<B, T> d;
  d.upload(x.data(), x.size());
  return d;
}

/// A backend buffer copied into a host batch of shape s (resized if needed).
template <Backend B, class T>
void to_host(const buffer<B, T>& d, const shape4& s, batch<T>& x) {
  softdiff::detail::require(d.size() == element_count(s), "backend::to_host: buffer of ", d.size(),
                            " elements for shape ", to_string(s));
  ensure_shape(x, s);
  d.download(x.data());
}

}  // namespace softdiff::backend

namespace softdiff::backend {

/// A host batch copied into a new batch of backend B.
template <Backend B, class T>
[[nodiscard]] batch_t<B, T> to_backend_batch(const batch<T>& x) {
  batch_t<B, T> d;
  ensure_shape(d, shape_of(x));
  B::copy(x.data(), d.data(), x.size());
  return d;
}

/// A batch of backend B copied into a host batch (resized if needed).
template <Backend B, class A, class T>
void to_host(const A& d, batch<T>& x) {
  ensure_shape(x, shape_of(d));
  B::copy(d.data(), x.data(), d.size());
}

}  // namespace softdiff::backend
