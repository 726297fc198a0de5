#pragma once
// One plane through a Toeplitz plan (backend/detail/toeplitz_plan.hpp) on the CPU: the even/odd
// folds in and out of a row-major workspace and the row and column stages between them. The
// workspace of a plan is per thread and prepared once per call (backend/cpu_separable.hpp).
#include <algorithm>
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

#include "softdiff/backend/detail/separable_kernels.hpp"
#include "softdiff/backend/detail/toeplitz_plan.hpp"

namespace softdiff::backend::detail {

/// This thread's workspace of at least n scalars (grown, never shrunk), or nullptr when out of memory.
template <class T>
T* thread_workspace(std::size_t n) noexcept {
  static thread_local std::vector<T> buffer;
  try {
    if (buffer.size() < n) buffer.resize(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  return buffer.data();
}

/// Rows of x, even/odd folded when the row axis is folded, and columns folded when the column
/// axis is, into `out` (row stride ld, padding zeroed). Returns false if x holds a NaN or an
/// infinity (v - v is 0 for every finite v and NaN otherwise), checked on the way at no extra pass.
template <class T>
bool ingest_plane(const plane_plan<T>& p, const T* x, T* out) {
  using S = simd<T>;
  using V = typename S::type;
  const axis_rep<T>& rh = *p.rows;
  const bool wf = p.cols->folded();
  const int h = p.h, w = p.w, ld = p.ld, odd = wf ? p.cols->odd_offset() : 0;
  V bad = S::zero();
  T bad_tail = 0;
  const auto row = [&](int i) { return x + static_cast<std::ptrdiff_t>(i) * w; };
  const auto dst = [&](int i) { return out + static_cast<std::ptrdiff_t>(i) * ld; };
  const auto put_plain = [&](const T* a, T* d) {
    put_row<T>([&](int j) { const V u = S::load(a + j); bad += u - u; return u; },
               [&](int j) { bad_tail += a[j] - a[j]; return a[j]; }, w, wf, odd, ld, d);
  };
  if (!rh.folded()) {
    for (int i = 0; i < h; ++i) put_plain(row(i), dst(i));
  } else {
    for (int i = 0; i < rh.mo; ++i) {
      const T* a = row(i);
      const T* b = row(h - 1 - i);
      if (wf) {
        put_row_pair(a, b, w, odd, ld, dst(i), dst(rh.me + i), bad, bad_tail);
        continue;
      }
      put_row<T>([&](int j) { const V u = S::load(a + j), v = S::load(b + j); bad += (u - u) + (v - v); return u + v; },
                 [&](int j) { bad_tail += (a[j] - a[j]) + (b[j] - b[j]); return a[j] + b[j]; }, w, wf, odd, ld,
                 dst(i));
      put_row<T>([&](int j) { return S::load(a + j) - S::load(b + j); }, [&](int j) { return a[j] - b[j]; }, w, wf,
                 odd, ld, dst(rh.me + i));
    }
    if (rh.me > rh.mo) put_plain(row(rh.mo), dst(rh.mo));
  }
  T lanes[S::width];
  S::store(lanes, bad);
  for (T v : lanes) bad_tail += v;
  return bad_tail == T(0);
}

/// The inverse layout change: unfold the rows and columns of `in` into the plane y, writing the
/// output rows in increasing order (one forward stream of stores, which the memory system
/// handles better than the two ends of the plane at once).
template <class T>
void emit_plane(const plane_plan<T>& p, const T* in, T* y) {
  using S = simd<T>;
  const axis_rep<T>& rh = *p.rows;
  const bool wf = p.cols->folded();
  const int h = p.h, w = p.w, ld = p.ld, odd = wf ? p.cols->odd_offset() : 0;
  const auto src = [&](int i) { return in + static_cast<std::ptrdiff_t>(i) * ld; };
  const auto dst = [&](int i) { return y + static_cast<std::ptrdiff_t>(i) * w; };
  const auto take_plain = [&](const T* q, T* d) {
    take_row<T>([&](int j) { return S::load(q + j); }, [&](int j) { return q[j]; }, w, wf, odd, d);
  };
  if (!rh.folded()) {
    for (int i = 0; i < h; ++i) take_plain(src(i), dst(i));
    return;
  }
  const auto take_pair = [&](int i, T sign, T* d) {  // row i (sign +1) or h-1-i (sign -1) of a folded pair
    const T* a = src(i);
    const T* b = src(rh.me + i);
    if (wf)
      take_row_sum(a, b, sign, w, odd, d);
    else
      take_row<T>([&](int j) { return S::load(a + j) + S::load(b + j) * sign; }, [&](int j) { return a[j] + b[j] * sign; },
                  w, false, 0, d);
  };
  for (int i = 0; i < rh.mo; ++i) take_pair(i, T(1), dst(i));
  if (rh.me > rh.mo) take_plain(src(rh.mo), dst(rh.mo));
  for (int i = rh.mo - 1; i >= 0; --i) take_pair(i, T(-1), dst(h - 1 - i));
}

/// Zeroes the margins of the rows that the column convolution reads; blur_plane never writes them.
template <class T>
void prepare_workspace(const plane_plan<T>& p, T* ws) {
  if (p.cols->folded()) return;
  const int margin = p.margin(), mld = p.margin_ld();
  T* framed = ws + p.framed_offset();
  for (int i = 0; i < p.h; ++i) {
    T* row = framed + static_cast<std::ptrdiff_t>(i) * mld;
    std::fill(row, row + margin, T(0));
    std::fill(row + margin + p.ld, row + mld, T(0));
  }
}

/// y = B~_H x B~_W^T for one plane. Rows (H) are compressed first: by the Toeplitz band, by the
/// folded blocks one at a time, or by the low-rank compress matrices; then columns (W): the row
/// convolution, the folded blocks' transposes, or compress and expand; then, for a low-rank row
/// axis, the rows are expanded. The workspace must have been prepared for this plan. Returns false
/// if x holds a NaN or an infinity.
template <class T>
bool blur_plane(const plane_plan<T>& p, const T* x, T* y, T* ws, const T* next_x = nullptr) {
  const axis_rep<T>& rh = *p.rows;
  const axis_rep<T>& rw = *p.cols;
  const int h = p.h, w = p.w, ld = p.ld, w0 = ld;
  const std::ptrdiff_t sld = ld;
  T* const a = ws;                 // the ingested plane, then the result
  T* const b = ws + h * sld;       // row-stage output
  T* const b_cols = b + h * sld;   // column-stage output when the rows are low rank
  T* const b_comp = b + 2 * h * sld;  // compressed columns when the columns are low rank
  // band columns: the row stage writes into rows with zero margins, read in place by the convolution
  T* const t1 = rw.folded() ? b : ws + p.framed_offset() + p.margin();
  const std::ptrdiff_t ld1 = rw.folded() ? sld : p.margin_ld();
  const auto full = [](int k) { return [k](int) { return std::pair<int, int>{0, k}; }; };
  const auto rows_of = [](const coeff_matrix<T>& c) {
    return [&c](int i) { return std::pair<int, int>{c.lo[i], c.hi[i]}; };
  };
  const auto vecs_of = [](const coeff_matrix<T>& c) {
    return [&c](int v) { return std::pair<int, int>{c.vlo[v], c.vhi[v]}; };
  };
  // columns of m rows of t1 into out (row stride ld)
  const auto columns = [&](int m, T* out) {
    if (!rw.folded()) {
      convolve_rows(m, w, t1, ld1, out, sld, rw.taps.data() + rw.centre - rw.radius, rw.radius);
      return;
    }
    T* comp = rw.low_rank() ? b_comp : out;
    const int in_off[2] = {0, rw.odd_offset()}, out_off[2] = {0, padded<T>(rw.ke)};
    for (int k = 0; k < 2; ++k) {
      const coeff_matrix<T>& c = rw.compress[k];
      if (c.rows > 0)
        gemm_windowed(m, c.rows, t1 + in_off[k], sld, c.transposed(), c.ldt, comp + out_off[k], sld, full(c.cols),
                      vecs_of(c));
    }
    if (!rw.low_rank()) return;
    for (int k = 0; k < 2; ++k) {  // expand (S V)^T
      const coeff_matrix<T>& e = rw.expand[k];
      T* dst = out + in_off[k];
      if (e.rows == 0) continue;
      if (e.cols == 0) {
        for (int i = 0; i < m; ++i) std::fill(dst + i * sld, dst + i * sld + padded<T>(e.rows), T(0));
        continue;
      }
      gemm_windowed(m, e.rows, comp + out_off[k], sld, e.transposed(), e.ldt, dst, sld, full(e.cols), full(e.cols));
    }
  };

  if (next_x) prefetch_plane(next_x, static_cast<std::size_t>(h) * w);
  const bool finite = ingest_plane(p, x, a);
  if (!rh.folded()) {  // B_H as Toeplitz taps with row stride -1
    gemm_windowed(h, w0, rh.taps.data() + rh.centre, -1, a, sld, t1, ld1, [&](int i) { return rh.band_window(i); },
                  full(h), rh.band_tile_rows());
    columns(h, a);
  } else if (!rh.low_rank()) {  // the even block, then the odd block, each through rows and columns
    const int off[2] = {0, rh.me};
    for (int k = 0; k < 2; ++k) {
      const coeff_matrix<T>& c = rh.compress[k];
      if (c.rows == 0) continue;
      gemm_windowed(c.rows, w0, c.a.data(), c.lda, a + off[k] * sld, sld, t1, ld1, rows_of(c), full(c.cols));
      columns(c.rows, a + off[k] * sld);
    }
  } else {  // compress both blocks, columns, expand S V into a
    const int in_off[2] = {0, rh.me}, out_off[2] = {0, rh.ke};
    for (int k = 0; k < 2; ++k) {
      const coeff_matrix<T>& c = rh.compress[k];
      if (c.rows > 0)
        gemm_windowed(c.rows, w0, c.a.data(), c.lda, a + in_off[k] * sld, sld, t1 + out_off[k] * ld1, ld1, rows_of(c),
                      full(c.cols));
    }
    columns(rh.ke + rh.ko, b_cols);
    for (int k = 0; k < 2; ++k) {
      const coeff_matrix<T>& e = rh.expand[k];
      T* dst = a + in_off[k] * sld;
      if (e.rows == 0) continue;
      if (e.cols == 0) {
        std::fill(dst, dst + e.rows * sld, T(0));
        continue;
      }
      gemm_windowed(e.rows, w0, e.a.data(), e.lda, b_cols + out_off[k] * sld, sld, dst, sld, full(e.cols),
                    full(e.cols));
    }
  }
  emit_plane(p, a, y);
  return finite;
}


}  // namespace softdiff::backend::detail
