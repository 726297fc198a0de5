#pragma once
// Batched 2-D real FFTs through cuFFT: backend::cuda's fft_engine (the Backend::fft of backend/backend.hpp). Plans are
// made with cufftPlanMany for (precision, direction, ph, pw, planes) and kept in a small cache
// per host thread (least recently used destroyed), so steady-state calls make no plan. Like
// FFTW, the inverse is unnormalised: c2r(r2c(x)) = ph pw x; c2r may overwrite its input.
#include <cuda_runtime.h>
#include <cufft.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "softdiff/backend/cuda/check.cuh"
#include "softdiff/backend/cuda/launch.cuh"
#include "softdiff/backend/elementwise.hpp"
#include "softdiff/backend/cuda/stream.cuh"

namespace softdiff::backend {

struct cuda;

namespace detail {

class cufft_plan_cache {
public:
  static constexpr std::size_t capacity = 16;
  cufft_plan_cache() = default;
  cufft_plan_cache(const cufft_plan_cache&) = delete;
  cufft_plan_cache& operator=(const cufft_plan_cache&) = delete;
  ~cufft_plan_cache() {
    for (auto& e : entries_) (void)cufftDestroy(e.plan);
  }

  /// The plan for `type` on `planes` contiguous ph x pw planes, bound to `stream`.
  cufftHandle get(cufftType type, int ph, int pw, std::size_t planes, cudaStream_t stream) {
    softdiff::detail::require(planes <= static_cast<std::size_t>(INT_MAX), "cuda fft: ", planes,
                              " planes exceed cuFFT's batch limit");
    const int batch = static_cast<int>(planes);
    ++clock_;
    entry* hit = nullptr;
    for (auto& e : entries_)
      if (e.type == type && e.ph == ph && e.pw == pw && e.batch == batch) hit = &e;
    if (!hit) {
      if (entries_.size() == capacity) {
        entry* old = &entries_[0];
        for (auto& e : entries_)
          if (e.last_use < old->last_use) old = &e;
        SOFTDIFF_CUDA_CHECK(cudaStreamSynchronize(stream));  // the plan may still be running
        SOFTDIFF_CUDA_CHECK(cufftDestroy(old->plan));
        *old = entries_.back();
        entries_.pop_back();
      }
      cufftHandle plan = 0;
      int dims[2] = {ph, pw};
      SOFTDIFF_CUDA_CHECK(cufftPlanMany(&plan, 2, dims, nullptr, 1, 0, nullptr, 1, 0, type, batch));
      entries_.push_back({type, ph, pw, batch, plan, 0});
      hit = &entries_.back();
    }
    hit->last_use = clock_;
    SOFTDIFF_CUDA_CHECK(cufftSetStream(hit->plan, stream));
    return hit->plan;
  }

private:
  struct entry {
    cufftType type;
    int ph, pw, batch;
    cufftHandle plan;
    std::uint64_t last_use;
  };
  std::vector<entry> entries_;
  std::uint64_t clock_ = 0;
};

inline cufft_plan_cache& cufft_plans() {
  thread_local cufft_plan_cache cache;
  return cache;
}

}  // namespace detail

/// Device memory an engine keeps between calls (grown, never shrunk; freed after the device is idle).
template <class T>
class cufft_scratch {
public:
  cufft_scratch() = default;
  cufft_scratch(const cufft_scratch&) = delete;
  cufft_scratch& operator=(const cufft_scratch&) = delete;
  cufft_scratch(cufft_scratch&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  cufft_scratch& operator=(cufft_scratch&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~cufft_scratch() { release(); }
  T* get(std::size_t n) {
    if (n > n_) {
      release();
      void* p = nullptr;
      SOFTDIFF_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
      p_ = static_cast<T*>(p);
      n_ = n;
    }
    return p_;
  }

private:
  void release() noexcept {
    if (!p_) return;
    (void)cudaDeviceSynchronize();  // a kernel in flight may still use it
    (void)cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

/// backend::cuda's FFT engine (Backend::fft): cuFFT on the calling thread's current stream
/// (backend/cuda/stream.cuh). Zero padding (r2c) and cropping (c2r) are element kernels into and
/// out of a padded scratch array kept by the engine (kernels::pad_planes_fn, crop_planes_fn).
template <class T>
class cufft_engine {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuFFT transforms float or double");

public:
  /// out (planes x ph x (pw/2+1) complex, interleaved) = DFT of each h x w plane of in, zero-padded
  /// to ph x pw.
  void r2c(int h, int w, int ph, int pw, std::size_t planes, const T* in, T* out) {
    check(h, w, ph, pw, "r2c");
    if (planes == 0) return;
    const cudaStream_t s = detail::cuda_thread_stream();
    // cuFFT's out-of-place real-to-complex transform does not write its input
    T* src = const_cast<T*>(in);
    if (h != ph || w != pw) {
      const std::size_t n = planes * static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw);
      src = padded_.get(n);
      detail::cuda_launch_for(n,
                              kernels::pad_planes_fn<T>{in, src, static_cast<std::size_t>(h), static_cast<std::size_t>(w),
                                                        static_cast<std::size_t>(ph), static_cast<std::size_t>(pw)},
                              s);
    }
    if constexpr (std::is_same_v<T, float>)
      SOFTDIFF_CUDA_CHECK(cufftExecR2C(detail::cufft_plans().get(CUFFT_R2C, ph, pw, planes, s),
                                       reinterpret_cast<cufftReal*>(src), reinterpret_cast<cufftComplex*>(out)));
    else
      SOFTDIFF_CUDA_CHECK(cufftExecD2Z(detail::cufft_plans().get(CUFFT_D2Z, ph, pw, planes, s),
                                       reinterpret_cast<cufftDoubleReal*>(src),
                                       reinterpret_cast<cufftDoubleComplex*>(out)));
  }
  /// out (planes x h x w) = the top-left h x w of the unnormalised inverse DFT of each half
  /// spectrum of in (in is overwritten).
  void c2r(int ph, int pw, int h, int w, std::size_t planes, T* in, T* out) {
    check(h, w, ph, pw, "c2r");
    if (planes == 0) return;
    const cudaStream_t s = detail::cuda_thread_stream();
    const bool whole = h == ph && w == pw;
    const std::size_t n = planes * static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw);
    T* dst = whole ? out : padded_.get(n);
    if constexpr (std::is_same_v<T, float>)
      SOFTDIFF_CUDA_CHECK(cufftExecC2R(detail::cufft_plans().get(CUFFT_C2R, ph, pw, planes, s),
                                       reinterpret_cast<cufftComplex*>(in), reinterpret_cast<cufftReal*>(dst)));
    else
      SOFTDIFF_CUDA_CHECK(cufftExecZ2D(detail::cufft_plans().get(CUFFT_Z2D, ph, pw, planes, s),
                                       reinterpret_cast<cufftDoubleComplex*>(in),
                                       reinterpret_cast<cufftDoubleReal*>(dst)));
    if (!whole)
      detail::cuda_launch_for(planes * static_cast<std::size_t>(h) * static_cast<std::size_t>(w),
                              kernels::crop_planes_fn<T>{dst, out, static_cast<std::size_t>(h), static_cast<std::size_t>(w),
                                                         static_cast<std::size_t>(ph), static_cast<std::size_t>(pw)},
                              s);
  }

private:
  static void check(int h, int w, int ph, int pw, const char* where) {
    softdiff::detail::require(h >= 0 && w >= 0 && h <= ph && w <= pw, "cuda fft ", where, ": planes of ", h, " x ", w,
                              " do not fit the transform size ", ph, " x ", pw);
  }
  cufft_scratch<T> padded_;
};

}  // namespace softdiff::backend
