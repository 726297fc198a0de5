#pragma once
// The separable primitive (backend/separable.hpp) as two GEMMs with dense axis matrices, for any
// backend with gemm and gemm_strided_batched: T = X A_W^T over all rows of the batch at once,
// then Y_p = A_H T_p, a strided-batched GEMM over planes. backend::cuda's engine; the tests'
// emulated device backend uses it on the host, so that this path runs in CI.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/detail/axis_matrices.hpp"
#include "softdiff/backend/detail/lru.hpp"
#include "softdiff/backend/separable.hpp"
#include "softdiff/error.hpp"

namespace softdiff::backend {

/// y = A_H X A_W^T on every H x W plane X, with row-major axis matrices a_h (H x H) and a_w
/// (W x W) in B's memory; ws holds planes H W scalars; y may alias x.
template <Backend B, class T>
void dense_separable_apply(const T* a_h, const T* a_w, const T* x, T* y, T* ws, std::size_t planes, std::size_t h,
                           std::size_t w) {
  if (planes == 0 || h == 0 || w == 0) return;
  softdiff::detail::require(planes * h <= static_cast<std::size_t>(INT_MAX) && w <= static_cast<std::size_t>(INT_MAX),
                            "dense_separable_apply: ", planes, " planes of ", h, " x ", w,
                            " have more rows than a GEMM takes (", INT_MAX, ")");
  const int rows = static_cast<int>(planes * h), hi = static_cast<int>(h), wi = static_cast<int>(w);
  const auto area = static_cast<std::ptrdiff_t>(h * w);
  // T = X A_W^T for every row of every plane at once: [N C H x W] [W x W]^T
  B::template gemm<T>(false, true, rows, wi, wi, T(1), x, wi, a_w, wi, T(0), ws, wi);
  // Y_p = A_H T_p for every plane p: [H x H] [H x W], A_H shared (stride 0)
  B::template gemm_strided_batched<T>(false, false, hi, wi, hi, T(1), a_h, hi, 0, ws, wi, area, T(0), y, wi, area,
                                      static_cast<int>(planes));
}

/// The engine: axis matrices built on the host in double, rounded to T, copied to B once and
/// kept for the 8 most recently used (spec, H, W); the workspace grows and is kept, so a steady
/// loop does not allocate. Not thread-safe; on an asynchronous backend, one stream at a time.
template <class B, class T>
class dense_separable {
public:
  static constexpr std::size_t capacity = 8;

  std::size_t apply(const separable_spec& spec, const T* x, T* y, std::size_t planes, std::size_t h, std::size_t w) {
    if (planes == 0 || h == 0 || w == 0) return planes;
    const entry& e = matrices(spec, h, w);
    workspace_.resize(planes * h * w);
    dense_separable_apply<B>(e.data.data(), e.data.data() + h * h, x, y, workspace_.data(), planes, h, w);
    return planes;
  }

private:
  struct entry {
    separable_spec spec;
    std::size_t h = 0, w = 0;
    buffer<B, T> data;  // A_H (h x h), then A_W (w x w)
    std::uint64_t last_use = 0;
  };

  static std::vector<T> axis(const separable_spec& spec, const std::vector<double>& c, std::size_t n) {
    if (spec.form == separable_form::toeplitz) return detail::toeplitz_axis_matrix<T>(c, n);
    softdiff::detail::require(c.size() == n, "dense_separable: ", c.size(), " DCT multipliers for an axis of length ", n);
    return detail::dct_axis_matrix<T>(c);
  }

  const entry& matrices(const separable_spec& spec, std::size_t h, std::size_t w) {
    ++clock_;
    for (auto& e : entries_)
      if (e.h == h && e.w == w && e.spec == spec) {
        e.last_use = clock_;
        return e;
      }
    std::vector<T> m = axis(spec, spec.rows, h);
    const std::vector<T> mw = axis(spec, spec.cols, w);
    m.insert(m.end(), mw.begin(), mw.end());
    entry& e = detail::lru_slot(entries_, capacity);
    e.h = 0;  // matches nothing until filled (upload may throw)
    e.data.upload(m.data(), m.size());
    e.spec = spec, e.h = h, e.w = w, e.last_use = clock_;
    return e;
  }

  std::vector<entry> entries_;
  buffer<B, T> workspace_;
  std::uint64_t clock_ = 0;
};

}  // namespace softdiff::backend
