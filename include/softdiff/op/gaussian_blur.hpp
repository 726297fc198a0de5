#pragma once
// The paper's Gaussian blur, exactly: C(level) X = B_H X B_W^T on every H x W plane of an
// NCHW batch, level = the blur's standard deviation s in pixels.
//
// Appendix G (docs/equations.md): a Gaussian kernel truncated to (2*80+1)^2
// (CelebA-64) or (2*32+1)^2 (CIFAR-10), normalised to sum 1, applied with zero padding; blur std
// from 0.01 to 23 (CelebA) or 18 (CIFAR). half_size is the 80 or 32. The separable 1-D kernel is
//     g_k = exp(-k^2 / (2 s^2)) / Z,  Z = sum_{|k| <= half_size} exp(-k^2 / (2 s^2)),  |k| <= half_size,
// so along an axis of length n the blur is the symmetric n x n matrix B_ij = g_{i-j}
// (0 where |i - j| > half_size; pixels outside the image are zero), and an image X is
// mapped to B_H X B_W^T. C is symmetric, so C^T = C (self_adjoint); level 0 is the identity.
//
// Exact to the rounding of T (detail/gaussian_plan.hpp): each axis is held as a band of taps,
// as the two blocks of the even/odd split of B, or as those blocks' eigen-decompositions,
// whichever the cost model finds cheapest for the image size. Taps, rows of the blocks and
// eigenpairs are dropped only while the dropped part of each axis matrix has absolute row sums
// <= beta = epsilon(T) / 100, so every output pixel is within (2 beta + beta^2) max|x| of the
// exact zero-padded blur: about 2.4e-9 max|x| in float, 4.4e-18 in double, both well under one
// unit roundoff of max|x|. tests/test_op_gaussian_blur.cpp compares against a direct dense 2-D
// zero-padded convolution in float64 (to 1e-6 relative in float, 1e-12 in double).
//
// Performance: per-(level, H, W) plans are built once (eigen-decompositions in double) and
// cached; planes are spread over OpenMP threads; each thread keeps its own workspace
// (thread_local, grown on first use), so steady-state calls do not allocate.
// Thread-safety: apply may be called concurrently on one object from several threads (the plan
// cache is guarded by a mutex; workspaces are per thread). Copies of an operator share its cache.
// Input: a non-finite value in x raises softdiff::error naming the plane, after the call has run;
// y (and x, when y aliases x) then holds unspecified values.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <omp.h>

#include "softdiff/concepts.hpp"
#include "softdiff/op/detail/axis_kernels.hpp"
#include "softdiff/op/detail/gaussian_plan.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::op {
namespace detail {

/// Recently used plane plans, keyed by (level, H, W); shared by copies of an operator.
template <class T>
class gaussian_plan_cache {
public:
  static constexpr std::size_t capacity = 64;

  std::shared_ptr<const plane_plan<T>> get(double level, int half_size, int h, int w) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& e : entries_)
        if (e.level == level && e.h == h && e.w == w) return e.plan;
    }
    auto plan = std::make_shared<const plane_plan<T>>(make_plane_plan<T>(level, half_size, h, w));
    std::lock_guard<std::mutex> lock(mutex_);
    if (entries_.size() < capacity)
      entries_.push_back({level, h, w, plan});
    else
      entries_[next_++ % capacity] = {level, h, w, plan};  // oldest first
    return plan;
  }

private:
  struct entry {
    double level;
    int h, w;
    std::shared_ptr<const plane_plan<T>> plan;
  };
  std::mutex mutex_;
  std::vector<entry> entries_;
  std::size_t next_ = 0;
};

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

}  // namespace detail

template <class T = float>
class gaussian_blur {
public:
  using scalar_type = T;
  static constexpr bool self_adjoint = true;

  /// half_size: the kernel spans 2 * half_size + 1 taps per axis (80 for CelebA-64, 32 for CIFAR-10).
  explicit gaussian_blur(int half_size = 80)
      : half_size_(half_size), cache_(std::make_shared<detail::gaussian_plan_cache<T>>()) {
    softdiff::detail::require(half_size >= 1, "gaussian_blur: half_size must be at least 1, got ", half_size);
  }

  /// y = C(level) x; y may alias x.
  void apply(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, nullptr); }
  /// y = C(level)^T x = C(level) x (B_H and B_W are symmetric).
  void apply_adjoint(double level, const batch<T>& x, batch<T>& y) const { run(level, x, y, nullptr); }

  /// y = C(level) x with each axis in the given form (tests and benchmarks; builds an uncached plan).
  void apply_using(detail::axis_kind rows, detail::axis_kind cols, double level, const batch<T>& x, batch<T>& y) const {
    check_level(*this, level, "gaussian_blur::apply_using");
    const shape4 s = shape_of(x);
    if (level == 0 || s[2] == 0 || s[3] == 0) {
      run(level, x, y, nullptr);
      return;
    }
    const auto plan = detail::make_plane_plan<T>(level, half_size_, static_cast<int>(s[2]), static_cast<int>(s[3]), rows, cols);
    run(level, x, y, &plan);
  }

  /// The forms chosen for an h x w plane at `level`, e.g. "rows (H=64): folded-dense(32+32), ...".
  [[nodiscard]] std::string describe(double level, int h, int w) const {
    check_level(*this, level, "gaussian_blur::describe");
    if (level == 0) return "identity";
    return cache_->get(level, half_size_, h, w)->describe();
  }

  /// The paper's one-sided taps g_0..g_half_size at `level` (appendix G), in double.
  [[nodiscard]] std::vector<double> kernel(double level) const {
    check_level(*this, level, "gaussian_blur::kernel");
    if (level == 0) {
      std::vector<double> g(half_size_ + 1, 0.0);
      g[0] = 1.0;
      return g;
    }
    return detail::gaussian_taps(level, half_size_);
  }

  [[nodiscard]] int half_size() const { return half_size_; }
  [[nodiscard]] double min_level() const { return 0.0; }
  [[nodiscard]] double max_level() const { return std::numeric_limits<double>::max(); }
  [[nodiscard]] std::string name() const { return "gaussian-blur"; }

private:
  void run(double level, const batch<T>& x, batch<T>& y, const detail::plane_plan<T>* forced) const {
    check_level(*this, level, "gaussian_blur::apply");
    const shape4 s = shape_of(x);
    for (std::size_t d = 2; d < 4; ++d)
      softdiff::detail::require(s[d] <= static_cast<std::size_t>(std::numeric_limits<int>::max() / 64),
                                "gaussian_blur::apply: image side ", s[d], " is too large");
    if (&x != &y) ensure_shape(y, s);
    const std::size_t planes = s[0] * s[1], h = s[2], w = s[3], area = h * w;
    if (planes == 0 || area == 0) return;
    if (level == 0) {  // C_0 = I exactly
      if (&x != &y) std::copy(x.data(), x.data() + x.size(), y.data());
      return;
    }
    std::shared_ptr<const detail::plane_plan<T>> cached;
    if (!forced) cached = cache_->get(level, half_size_, static_cast<int>(h), static_cast<int>(w));
    const detail::plane_plan<T>& plan = forced ? *forced : *cached;
    const std::size_t ws_size = plan.workspace_size();
    const T* xd = x.data();
    T* yd = y.data();
    std::atomic<std::int64_t> first_bad{static_cast<std::int64_t>(planes)};
    std::atomic<bool> no_memory{false};
    const auto count = static_cast<std::int64_t>(planes);
#pragma omp parallel if (count > 1)
    {
      // chunks of consecutive planes, handed out dynamically (a thread that loses its core to another
      // process does not hold up the call); within a chunk each plane prefetches the next
      const std::int64_t chunks = std::min<std::int64_t>(count, 8 * omp_get_num_threads());
      T* ws = detail::thread_workspace<T>(ws_size);
      if (!ws) no_memory = true;
      if (ws) detail::prepare_workspace(plan, ws);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t c = 0; c < chunks; ++c) {
        const std::int64_t begin = count * c / chunks, end = count * (c + 1) / chunks;
        for (std::int64_t q = begin; ws && q < end; ++q) {
          const std::ptrdiff_t o = q * static_cast<std::ptrdiff_t>(area);
          const bool more = q + 1 < end;
          if (!detail::blur_plane(plan, xd + o, yd + o, ws, more ? xd + o + area : nullptr)) {
            std::int64_t prev = first_bad.load();
            while (q < prev && !first_bad.compare_exchange_weak(prev, q)) {
            }
          }
        }
      }
    }
    softdiff::detail::require(!no_memory.load(), "gaussian_blur::apply: out of memory for a ", h, " x ", w,
                              " plane's workspace (", ws_size * sizeof(T), " bytes per thread)");
    const std::int64_t bad = first_bad.load();
    softdiff::detail::require(bad == count, "gaussian_blur::apply: non-finite value (NaN or inf) in input plane ", bad,
                              " (sample ", bad / static_cast<std::int64_t>(std::max<std::size_t>(s[1], 1)),
                              ", channel ", bad % static_cast<std::int64_t>(std::max<std::size_t>(s[1], 1)),
                              ") of shape ", to_string(s));
  }

  int half_size_;
  std::shared_ptr<detail::gaussian_plan_cache<T>> cache_;
};

static_assert(CorruptionOperator<gaussian_blur<float>>);
static_assert(CorruptionOperator<gaussian_blur<double>>);

}  // namespace softdiff::op
