#pragma once
// RAII wrappers over FFTW3 for float (fftwf_*) and double (fftw_*): aligned buffers,
// move-only plans, and a process-wide plan cache keyed by transform and shape.
//
// FFTW's planner (plan creation and destruction) is not thread-safe; only the
// fftw_execute family is. Every plan is therefore created and destroyed under
// planner_mutex(), with FFTW_ESTIMATE (deterministic, never touches the arrays),
// and executed through the new-array interface (fftw_execute_dft_r2c, ...), which is
// thread-safe. New-array execution requires arrays with the alignment of the ones the
// plan was made with: plans here are made on fftw_malloc'd arrays, so callers execute
// them on fftw::buffer storage (also fftw_malloc'd), never on an offset into a tensor.
#include <algorithm>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fftw3.h>

#include "softdiff/error.hpp"

namespace softdiff::backend::fftw {

/// Guards every call into FFTW's planner, for both precisions.
inline std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

/// The precision-specific FFTW entry points, selected by T.
template <class T>
struct api;

template <>
struct api<float> {
  using plan_type = fftwf_plan;
  using complex_type = fftwf_complex;
  static void* malloc(std::size_t bytes) { return fftwf_malloc(bytes); }
  static void free(void* p) { fftwf_free(p); }
  static plan_type r2c_2d(int n0, int n1, float* in, complex_type* out, unsigned flags) {
    return fftwf_plan_dft_r2c_2d(n0, n1, in, out, flags);
  }
  static plan_type c2r_2d(int n0, int n1, complex_type* in, float* out, unsigned flags) {
    return fftwf_plan_dft_c2r_2d(n0, n1, in, out, flags);
  }
  static plan_type r2r_2d(int n0, int n1, float* in, float* out, fftw_r2r_kind k0, fftw_r2r_kind k1, unsigned flags) {
    return fftwf_plan_r2r_2d(n0, n1, in, out, k0, k1, flags);
  }
  static void execute_r2c(plan_type p, float* in, complex_type* out) { fftwf_execute_dft_r2c(p, in, out); }
  static void execute_c2r(plan_type p, complex_type* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
  static void execute_r2r(plan_type p, float* in, float* out) { fftwf_execute_r2r(p, in, out); }
  static int alignment_of(float* p) { return fftwf_alignment_of(p); }
  static void destroy(plan_type p) { fftwf_destroy_plan(p); }
};

template <>
struct api<double> {
  using plan_type = fftw_plan;
  using complex_type = fftw_complex;
  static void* malloc(std::size_t bytes) { return fftw_malloc(bytes); }
  static void free(void* p) { fftw_free(p); }
  static plan_type r2c_2d(int n0, int n1, double* in, complex_type* out, unsigned flags) {
    return fftw_plan_dft_r2c_2d(n0, n1, in, out, flags);
  }
  static plan_type c2r_2d(int n0, int n1, complex_type* in, double* out, unsigned flags) {
    return fftw_plan_dft_c2r_2d(n0, n1, in, out, flags);
  }
  static plan_type r2r_2d(int n0, int n1, double* in, double* out, fftw_r2r_kind k0, fftw_r2r_kind k1, unsigned flags) {
    return fftw_plan_r2r_2d(n0, n1, in, out, k0, k1, flags);
  }
  static void execute_r2c(plan_type p, double* in, complex_type* out) { fftw_execute_dft_r2c(p, in, out); }
  static void execute_c2r(plan_type p, complex_type* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
  static void execute_r2r(plan_type p, double* in, double* out) { fftw_execute_r2r(p, in, out); }
  static int alignment_of(double* p) { return fftw_alignment_of(p); }
  static void destroy(plan_type p) { fftw_destroy_plan(p); }
};

namespace detail {
template <class E>
struct real_of {
  using type = E;
};
template <class T>
struct real_of<std::complex<T>> {
  using type = T;
};
}  // namespace detail

/// An fftw_malloc'd array of E (float, double, std::complex<float>, std::complex<double>;
/// std::complex<T> is layout-compatible with fftw_complex). Move-only; contents uninitialised.
template <class E>
class buffer {
  using R = typename detail::real_of<E>::type;
  static_assert(std::is_same_v<R, float> || std::is_same_v<R, double>, "fftw::buffer holds float or double data");

public:
  buffer() = default;
  explicit buffer(std::size_t n) { resize(n); }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  buffer(buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~buffer() { release(); }

  /// Reallocates only when the size changes; the contents are then undefined.
  void resize(std::size_t n) {
    if (n == n_) return;
    release();
    if (n == 0) return;
    p_ = static_cast<E*>(api<R>::malloc(n * sizeof(E)));
    if (!p_) throw error(softdiff::detail::concat("fftw::buffer: fftw_malloc of ", n * sizeof(E), " bytes failed"));
    n_ = n;
  }
  [[nodiscard]] E* data() noexcept { return p_; }
  [[nodiscard]] const E* data() const noexcept { return p_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  E& operator[](std::size_t i) noexcept { return p_[i]; }
  const E& operator[](std::size_t i) const noexcept { return p_[i]; }

  /// The same memory as FFTW's complex type (only for complex buffers).
  [[nodiscard]] auto* fftw_data() noexcept
    requires(!std::is_same_v<E, R>)
  {
    return reinterpret_cast<typename api<R>::complex_type*>(p_);
  }

private:
  void release() noexcept {
    if (p_) api<R>::free(p_);
    p_ = nullptr;
    n_ = 0;
  }
  E* p_ = nullptr;
  std::size_t n_ = 0;
};

/// The transforms softdiff uses, all two-dimensional on an n0 x n1 row-major array.
enum class transform {
  r2c,     // real -> half-spectrum complex, n0 x (n1/2+1) outputs, out of place
  c2r,     // inverse of r2c, unnormalised (a round trip multiplies by n0 n1), out of place; destroys its input
  dct_ii,  // REDFT10 on both axes (DCT-II, unnormalised), in place
  dct_iii, // REDFT01 on both axes (DCT-III, unnormalised; dct_iii(dct_ii(x)) = 4 n0 n1 x), in place
};

/// An owned FFTW plan (move-only), destroyed under planner_mutex().
template <class T>
class plan {
  using A = api<T>;

public:
  plan() = default;
  plan(transform kind, int n0, int n1) : kind_(kind), n0_(n0), n1_(n1) {
    softdiff::detail::require(n0 > 0 && n1 > 0, "fftw::plan: transform size ", n0, " x ", n1, " must be positive");
    const std::size_t real_n = static_cast<std::size_t>(n0) * static_cast<std::size_t>(n1);
    const std::size_t cplx_n = static_cast<std::size_t>(n0) * static_cast<std::size_t>(n1 / 2 + 1);
    buffer<T> r(real_n);
    buffer<std::complex<T>> c(cplx_n);
    const unsigned flags = FFTW_ESTIMATE;
    std::lock_guard lock(planner_mutex());
    switch (kind) {
      case transform::r2c: p_ = A::r2c_2d(n0, n1, r.data(), c.fftw_data(), flags); break;
      case transform::c2r: p_ = A::c2r_2d(n0, n1, c.fftw_data(), r.data(), flags); break;
      case transform::dct_ii: p_ = A::r2r_2d(n0, n1, r.data(), r.data(), FFTW_REDFT10, FFTW_REDFT10, flags); break;
      case transform::dct_iii: p_ = A::r2r_2d(n0, n1, r.data(), r.data(), FFTW_REDFT01, FFTW_REDFT01, flags); break;
    }
    softdiff::detail::require(p_ != nullptr, "fftw::plan: FFTW could not plan a ", n0, " x ", n1, " transform");
  }
  plan(const plan&) = delete;
  plan& operator=(const plan&) = delete;
  plan(plan&& o) noexcept : p_(std::exchange(o.p_, nullptr)), kind_(o.kind_), n0_(o.n0_), n1_(o.n1_) {}
  plan& operator=(plan&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      kind_ = o.kind_;
      n0_ = o.n0_;
      n1_ = o.n1_;
    }
    return *this;
  }
  ~plan() { release(); }

  [[nodiscard]] transform kind() const noexcept { return kind_; }
  [[nodiscard]] int rows() const noexcept { return n0_; }
  [[nodiscard]] int cols() const noexcept { return n1_; }

  // Thread-safe executions on fftw_malloc'd arrays of the planned sizes.
  void r2c(T* in, std::complex<T>* out) const {
    A::execute_r2c(p_, in, reinterpret_cast<typename A::complex_type*>(out));
  }
  void c2r(std::complex<T>* in, T* out) const {
    A::execute_c2r(p_, reinterpret_cast<typename A::complex_type*>(in), out);
  }
  void r2r_in_place(T* inout) const { A::execute_r2r(p_, inout, inout); }

private:
  void release() noexcept {
    if (p_) {
      std::lock_guard lock(planner_mutex());
      A::destroy(p_);
    }
    p_ = nullptr;
  }
  typename A::plan_type p_ = nullptr;
  transform kind_ = transform::r2c;
  int n0_ = 0, n1_ = 0;
};

/// A plan for (kind, n0, n1) made once per process and kept: the returned reference
/// stays valid until exit. Safe to call from any thread.
template <class T>
const plan<T>& cached_plan(transform kind, int n0, int n1) {
  // planner_mutex() is constructed first so that it outlives `plans`, whose plans lock it when destroyed at exit.
  static std::mutex& planner = planner_mutex();
  (void)planner;
  static std::mutex m;
  static std::map<std::tuple<int, int, int>, plan<T>> plans;  // node-based: references stay valid
  std::lock_guard lock(m);
  const auto key = std::make_tuple(static_cast<int>(kind), n0, n1);
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, plan<T>(kind, n0, n1)).first;
  return it->second;
}

/// The smallest n' >= n whose only prime factors are 2, 3, 5 and 7 (sizes FFTW transforms fastest).
[[nodiscard]] inline int good_size(int n) {
  softdiff::detail::require(n > 0, "fftw::good_size: size ", n, " must be positive");
  for (int m = n;; ++m) {
    int r = m;
    for (int p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    if (r == 1) return m;
  }
}

/// backend::cpu's FFT engine (Backend::fft): batched 2-D real transforms, plane by plane through
/// the cached plans, planes spread over OpenMP threads. Each thread pads a plane into its own
/// aligned work array (whose zero margins it keeps between planes and calls), transforms it, and
/// crops the inverse on the way out, so padding and cropping cost no pass of their own; where a
/// plane needs neither and its address keeps FFTW's alignment, FFTW runs on it directly. Any thread
/// may use its own engine; the results do not depend on the thread count.
template <class T>
class engine {
public:
  /// out (planes x ph x (pw/2+1) complex, interleaved) = DFT of each h x w plane of in,
  /// zero-padded to ph x pw (h <= ph, w <= pw).
  void r2c(int h, int w, int ph, int pw, std::size_t planes, const T* in, T* out) {
    check(h, w, ph, pw, "r2c");
    const auto& plan = cached_plan<T>(fftw::transform::r2c, ph, pw);
    const std::size_t hw = static_cast<std::size_t>(h) * static_cast<std::size_t>(w), nc = complex_size(ph, pw);
    const bool whole = h == ph && w == pw;
    for_planes<true>(planes, h, w, ph, pw, [&](work& wk, std::size_t p) {
      const T* src = in + p * hw;
      T* dst = out + p * 2 * nc;
      if (whole && planned_alignment(src) && planned_alignment(dst)) {  // r2c keeps its input (FFTW_PRESERVE_INPUT)
        plan.r2c(const_cast<T*>(src), reinterpret_cast<std::complex<T>*>(dst));
        return;
      }
      T* real = wk.real.data();
      for (int r = 0; r < h; ++r) std::copy(src + r * w, src + (r + 1) * w, real + static_cast<std::size_t>(r) * pw);
      if (planned_alignment(dst)) {
        plan.r2c(real, reinterpret_cast<std::complex<T>*>(dst));
        return;
      }
      plan.r2c(real, wk.spec.data());
      const T* s = reinterpret_cast<const T*>(wk.spec.data());
      std::copy(s, s + 2 * nc, dst);
    });
  }
  /// out (planes x h x w) = the top-left h x w of the unnormalised inverse DFT of each half
  /// spectrum of in (ph x (pw/2+1) complex per plane). in is left as it was.
  void c2r(int ph, int pw, int h, int w, std::size_t planes, const T* in, T* out) {
    check(h, w, ph, pw, "c2r");
    const auto& plan = cached_plan<T>(fftw::transform::c2r, ph, pw);
    const std::size_t hw = static_cast<std::size_t>(h) * static_cast<std::size_t>(w), nc = complex_size(ph, pw);
    const bool whole = h == ph && w == pw;
    for_planes<false>(planes, h, w, ph, pw, [&](work& wk, std::size_t p) {
      T* s = reinterpret_cast<T*>(wk.spec.data());
      std::copy(in + p * 2 * nc, in + (p + 1) * 2 * nc, s);  // c2r destroys its input: work on a copy
      T* dst = out + p * hw;
      if (whole && planned_alignment(dst)) {
        plan.c2r(wk.spec.data(), dst);
        return;
      }
      T* real = wk.real.data();
      plan.c2r(wk.spec.data(), real);
      for (int r = 0; r < h; ++r) {
        const T* row = real + static_cast<std::size_t>(r) * pw;
        std::copy(row, row + w, dst + r * w);
      }
    });
  }

private:
  // FFTW executes plans only on arrays aligned like the ones they were made on (fftw.hpp).
  struct work {
    buffer<T> real;
    buffer<std::complex<T>> spec;
    int h = 0, w = 0, ph = 0, pw = 0;  // the sizes real was last zeroed for
  };
  static std::size_t complex_size(int ph, int pw) {
    return static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw / 2 + 1);
  }
  static void check(int h, int w, int ph, int pw, const char* where) {
    softdiff::detail::require(h > 0 && w > 0 && h <= ph && w <= pw, "fftw::engine::", where, ": planes of ", h, " x ",
                              w, " do not fit the transform size ", ph, " x ", pw);
  }
  /// Whether a plan made on fftw_malloc'd arrays may run on p directly (FFTW's new-array rule:
  /// the same alignment as the planned arrays, which fftw_malloc aligns fully).
  static bool planned_alignment(const T* p) { return api<T>::alignment_of(const_cast<T*>(p)) == 0; }
  /// f(this thread's work arrays, p) for every plane p; the first exception is rethrown. The
  /// forward and inverse transforms have work arrays of their own: the forward one's real array is
  /// zeroed whenever the sizes change and in between written only in its top-left h x w (the rows
  /// of each plane; FFTW's r2c keeps its input), so its margins stay zero; the inverse one writes
  /// all of it.
  template <bool Forward, class F>
  static void for_planes(std::size_t planes, int h, int w, int ph, int pw, F&& f) {
    std::exception_ptr failure;
    const auto count = static_cast<std::int64_t>(planes);
#pragma omp parallel for schedule(static) if (count > 1)
    for (std::int64_t p = 0; p < count; ++p) {
      try {
        thread_local work wk;
        if (wk.ph != ph || wk.pw != pw || wk.h != h || wk.w != w) {
          wk.real.resize(static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw));
          wk.spec.resize(complex_size(ph, pw));
          std::fill(wk.real.data(), wk.real.data() + wk.real.size(), T(0));
          wk.h = h, wk.w = w, wk.ph = ph, wk.pw = pw;
        }
        f(wk, static_cast<std::size_t>(p));
      } catch (...) {
#pragma omp critical(softdiff_fftw_engine_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  }
};

}  // namespace softdiff::backend::fftw
