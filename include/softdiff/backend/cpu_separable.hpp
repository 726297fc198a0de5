#pragma once
// backend::cpu's separable primitive (backend/separable.hpp), tuned for the host:
//
//   toeplitz      each axis held as a band of taps, as the two blocks of its even/odd split, or as
//                 those blocks' eigen-decompositions, whichever the cost model finds cheapest for
//                 the plane (backend/detail/toeplitz_plan.hpp). Taps, rows of the blocks and
//                 eigenpairs are dropped only while the dropped part of each axis matrix has
//                 absolute row sums <= beta = epsilon(T) / 100, so with ||A||_inf <= 1 every output
//                 pixel is within (2 beta + beta^2) max|x| of the exact product: about 2.4e-9 max|x|
//                 in float, 4.4e-18 in double, under one unit roundoff of max|x|. The input is
//                 checked for NaN and infinity on the way in, at no extra pass.
//   dct_diagonal  FFTW's REDFT10 and REDFT01 (unnormalised DCT-II and DCT-III, REDFT01(REDFT10(x))
//                 = 2N x per axis), so y = REDFT01(M REDFT10(x)) / (4 H W) with M = m_H m_W^T and
//                 the normalisation folded into the row multipliers; not checked for NaN.
//
// Plans (eigen-decompositions in double) are built once per (spec, H, W) and cached (64 most
// recent, oldest evicted first); planes are spread over OpenMP threads in chunks handed out
// dynamically (a thread that loses its core to another process does not hold up the call), each
// plane prefetching the next; each thread keeps its own workspace, so steady-state calls do not
// allocate. Thread-safe: apply may be called concurrently on one engine (the cache is guarded by
// a mutex, workspaces are per thread).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "softdiff/backend/detail/toeplitz_plane.hpp"
#include "softdiff/backend/fftw.hpp"
#include "softdiff/backend/separable.hpp"
#include "softdiff/error.hpp"

namespace softdiff::backend {

template <class T>
class cpu_separable {
public:
  static constexpr std::size_t capacity = 64;

  std::size_t apply(const separable_spec& spec, const T* x, T* y, std::size_t planes, std::size_t h, std::size_t w) {
    if (planes == 0 || h == 0 || w == 0) return planes;
    if (spec.form == separable_form::dct_diagonal) {
      dct(spec, x, y, planes, h, w);
      return planes;
    }
    check_sides(h, w);
    return toeplitz(*plan(spec, h, w), x, y, planes);
  }

  /// A Toeplitz spec with each axis in the given form (tests and benchmarks; an uncached plan).
  std::size_t apply_forms(detail::axis_kind rows, detail::axis_kind cols, const separable_spec& spec, const T* x, T* y,
                          std::size_t planes, std::size_t h, std::size_t w) {
    require_toeplitz(spec, "cpu_separable::apply_forms");
    if (planes == 0 || h == 0 || w == 0) return planes;
    check_sides(h, w);
    const auto p = detail::make_plane_plan<T>(spec.rows, spec.cols, static_cast<int>(h), static_cast<int>(w), rows, cols);
    return toeplitz(p, x, y, planes);
  }

  /// The forms chosen for a Toeplitz spec on h x w planes, e.g. "rows (H=64): folded-dense(32+32), ...".
  [[nodiscard]] std::string describe(const separable_spec& spec, std::size_t h, std::size_t w) {
    if (spec.form == separable_form::dct_diagonal) return "dct (FFTW REDFT10 / REDFT01)";
    check_sides(h, w);
    return plan(spec, h, w)->describe();
  }

private:
  struct entry {
    separable_spec spec;
    std::size_t h, w;
    std::shared_ptr<const detail::plane_plan<T>> plan;
  };

  static void require_toeplitz(const separable_spec& spec, const char* where) {
    softdiff::detail::require(spec.form == separable_form::toeplitz, where, ": a Toeplitz spec is needed");
  }
  static void check_sides(std::size_t h, std::size_t w) {
    for (std::size_t n : {h, w})
      softdiff::detail::require(n <= static_cast<std::size_t>(std::numeric_limits<int>::max() / 64),
                                "cpu_separable: image side ", n, " is too large");
  }

  std::shared_ptr<const detail::plane_plan<T>> plan(const separable_spec& spec, std::size_t h, std::size_t w) {
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      for (const auto& e : cache_->entries)
        if (e.h == h && e.w == w && e.spec == spec) return e.plan;
    }
    softdiff::detail::require(!spec.rows.empty() && !spec.cols.empty(), "cpu_separable: a Toeplitz axis without taps");
    auto p = std::make_shared<const detail::plane_plan<T>>(
        detail::make_plane_plan<T>(spec.rows, spec.cols, static_cast<int>(h), static_cast<int>(w)));
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto& c = *cache_;
    if (c.entries.size() < capacity)
      c.entries.push_back({spec, h, w, p});
    else
      c.entries[c.next++ % capacity] = {spec, h, w, p};  // oldest first
    return p;
  }

  static std::size_t toeplitz(const detail::plane_plan<T>& plan, const T* x, T* y, std::size_t planes) {
    const std::size_t area = static_cast<std::size_t>(plan.h) * static_cast<std::size_t>(plan.w);
    const std::size_t ws_size = plan.workspace_size();
    const auto count = static_cast<std::int64_t>(planes);
    std::atomic<std::int64_t> first_bad{count};
    std::atomic<bool> no_memory{false};
#pragma omp parallel if (count > 1)
    {
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
          if (!detail::blur_plane(plan, x + o, y + o, ws, more ? x + o + area : nullptr)) {
            std::int64_t prev = first_bad.load();
            while (q < prev && !first_bad.compare_exchange_weak(prev, q)) {
            }
          }
        }
      }
    }
    softdiff::detail::require(!no_memory.load(), "cpu_separable: out of memory for a ", plan.h, " x ", plan.w,
                              " plane's workspace (", ws_size * sizeof(T), " bytes per thread)");
    return static_cast<std::size_t>(first_bad.load());
  }

  /// Per-thread plane buffer (fftw_malloc'd, as the in-place plans require) and multipliers.
  struct dct_workspace {
    fftw::buffer<T> plane;
    std::vector<T> mh, mw;
  };
  static dct_workspace& dct_thread_workspace() {
    thread_local dct_workspace ws;
    return ws;
  }

  static void dct(const separable_spec& spec, const T* x, T* y, std::size_t planes, std::size_t h, std::size_t w) {
    softdiff::detail::require(spec.rows.size() == h && spec.cols.size() == w, "cpu_separable: ", spec.rows.size(),
                              " x ", spec.cols.size(), " DCT multipliers for ", h, " x ", w, " planes");
    const std::size_t plane = h * w;
    auto& own = dct_thread_workspace();
    own.mh.resize(h);
    own.mw.resize(w);
    const double norm = 1.0 / (4.0 * static_cast<double>(h) * static_cast<double>(w));
    for (std::size_t k = 0; k < h; ++k) own.mh[k] = static_cast<T>(norm * spec.rows[k]);
    for (std::size_t l = 0; l < w; ++l) own.mw[l] = static_cast<T>(spec.cols[l]);
    const T* mh = own.mh.data();
    const T* mw = own.mw.data();
    const int hi = static_cast<int>(h), wi = static_cast<int>(w);
    const auto& fwd = fftw::cached_plan<T>(fftw::transform::dct_ii, hi, wi);
    const auto& inv = fftw::cached_plan<T>(fftw::transform::dct_iii, hi, wi);
    std::exception_ptr failure;
    const auto count = static_cast<std::int64_t>(planes);
    // Each plane is copied whole into the workspace before its output is written, so y may alias x.
#pragma omp parallel for schedule(static) if (count > 1)
    for (std::int64_t p = 0; p < count; ++p) {
      try {
        auto& ws = dct_thread_workspace();
        ws.plane.resize(plane);
        T* buf = ws.plane.data();
        std::copy(x + static_cast<std::size_t>(p) * plane, x + static_cast<std::size_t>(p + 1) * plane, buf);
        fwd.r2r_in_place(buf);
        for (std::size_t k = 0; k < h; ++k) {
          T* row = buf + k * w;
          const T a = mh[k];
#pragma omp simd
          for (std::size_t l = 0; l < w; ++l) row[l] *= a * mw[l];
        }
        inv.r2r_in_place(buf);
        std::copy(buf, buf + plane, y + static_cast<std::size_t>(p) * plane);
      } catch (...) {
#pragma omp critical(softdiff_cpu_separable_dct_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  }

  struct plan_cache {  // behind a pointer: the engine stays movable (a mutex is not)
    std::mutex mutex;
    std::vector<entry> entries;
    std::size_t next = 0;
  };
  std::unique_ptr<plan_cache> cache_ = std::make_unique<plan_cache>();
};

static_assert(SeparableEngine<cpu_separable<float>, float>);
static_assert(std::is_nothrow_move_constructible_v<cpu_separable<float>>);
static_assert(SeparableEngine<cpu_separable<double>, double>);

}  // namespace softdiff::backend
