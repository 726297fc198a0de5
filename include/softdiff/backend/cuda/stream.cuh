#pragma once
// The CUDA stream that backend::cuda works on. backend::cuda's static functions (the Backend
// trait has no stream argument) enqueue on the calling thread's current stream: the per-thread
// default stream (cudaStreamPerThread) unless a cuda_stream_scope names another. Work on one
// stream runs in order; backend::cuda::copy to or from host memory waits for the stream.
#include <cuda_runtime.h>

#include <utility>

#include "softdiff/backend/cuda/check.cuh"

namespace softdiff::backend {

namespace detail {

inline cudaStream_t& cuda_thread_stream() {
  thread_local cudaStream_t s = cudaStreamPerThread;
  return s;
}

}  // namespace detail

/// An owned, non-blocking CUDA stream. Move-only.
class cuda_stream {
public:
  cuda_stream() { SOFTDIFF_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  cuda_stream(const cuda_stream&) = delete;
  cuda_stream& operator=(const cuda_stream&) = delete;
  cuda_stream(cuda_stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  cuda_stream& operator=(cuda_stream&& o) noexcept {
    if (this != &o) {
      release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~cuda_stream() { release(); }

  [[nodiscard]] cudaStream_t get() const noexcept { return s_; }
  void synchronize() const { SOFTDIFF_CUDA_CHECK(cudaStreamSynchronize(s_)); }

private:
  void release() noexcept {
    if (s_) (void)cudaStreamDestroy(s_);  // a destructor cannot report; later checked calls will
    s_ = nullptr;
  }
  cudaStream_t s_ = nullptr;
};

/// Makes `s` the calling thread's stream for backend::cuda until the scope ends.
class cuda_stream_scope {
public:
  explicit cuda_stream_scope(cudaStream_t s) : previous_(std::exchange(detail::cuda_thread_stream(), s)) {}
  cuda_stream_scope(const cuda_stream_scope&) = delete;
  cuda_stream_scope& operator=(const cuda_stream_scope&) = delete;
  ~cuda_stream_scope() { detail::cuda_thread_stream() = previous_; }

private:
  cudaStream_t previous_;
};

/// CUDA devices visible to this process: 0 when there is no device or no driver (the error is
/// consumed); any other failure throws softdiff::error.
[[nodiscard]] inline int cuda_device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    (void)cudaGetLastError();
    return 0;
  }
  SOFTDIFF_CUDA_CHECK(e);
  return n;
}

}  // namespace softdiff::backend
