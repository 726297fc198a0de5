#pragma once
// An owned array in a backend's memory (host memory for backend::cpu, device memory for
// backend::cuda), allocated through the Backend trait. Move-only. Its capacity only grows,
// so a workspace resized to the same or a smaller size in a loop never reallocates.
#include <cstddef>
#include <utility>

#include "softdiff/concepts.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::backend::portable {

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
  softdiff::detail::require(d.size() == element_count(s), "portable::to_host: buffer of ", d.size(),
                            " elements for shape ", to_string(s));
  ensure_shape(x, s);
  d.download(x.data());
}

}  // namespace softdiff::backend::portable
