#pragma once
// The device-side API of softdiff's core on backend::cuda: the operators (op/on_backend.hpp)
// and the samplers of sampler/ instantiated with B = backend::cuda. Compiled by nvcc only.
//
// 1. Objects:
//      cuda_ops::device_operator<op::gaussian_blur<float>> blur(op::gaussian_blur<float>(80));
//      blur.apply(level, x_dev, y_dev, shape);             // on the current stream
//      cuda_ops::device_batch<float> x(shape);  cuda_ops::momentum<float> sampler;
//      sampler.step(model, x, t, t_next, noise);          // the CPU sampler's own code
//    with cuda_ops::device_model putting an operator, a schedule and a device denoiser together.
// 2. Thin functions on raw device pointers, extents and an explicit stream, for callers that keep
//    their own parameters and workspaces (axis matrices from backend/detail/axis_matrices.hpp with
//    the operators' axes(level), spectra from op::fft_conv::spectrum, copied to the device):
//      gaussian_blur_apply, dct_blur_apply, fft_conv_apply, mask_apply, scale_apply,
//      naive_update, momentum_update, pf_momentum_update, ddim_update, corrector_update, fill_normal.
// Everything here is the code that runs on the CPU too (op/on_backend.hpp with backend::cpu in
// tests/test_backend_portable.cpp, the samplers everywhere); tests/cuda/test_cuda_backend.cu
// compares the GPU with the CPU.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "softdiff/backend/buffer.hpp"
#include "softdiff/backend/cuda.cuh"
#include "softdiff/op/on_backend.hpp"
#include "softdiff/random.hpp"
#include "softdiff/sampler/backend_model.hpp"
#include "softdiff/sampler/ddim.hpp"
#include "softdiff/sampler/momentum.hpp"
#include "softdiff/sampler/naive.hpp"
#include "softdiff/sampler/pf_momentum.hpp"
#include "softdiff/sampler/predictor_corrector.hpp"

namespace softdiff::cuda_ops {

using backend::cuda;
using backend::cuda_stream_scope;

template <class Op>
using device_operator = op::backend_operator<cuda, Op>;
template <class T>
using device_buffer = backend::buffer<cuda, T>;
template <class T>
using device_batch = backend::device_batch<cuda, T>;

template <class T = float>
using naive = sampler::naive<T, cuda>;
template <class T = float>
using momentum = sampler::momentum<T, cuda>;
template <class T = float>
using pf_momentum = sampler::pf_momentum<T, cuda>;
template <class T = float>
using ddim = sampler::ddim<T, cuda>;
template <class T = float>
using predictor_corrector = sampler::predictor_corrector<T, cuda>;
template <CorruptionOperator Op, Schedule Sched, class Denoise>
using device_model = sampler::backend_model<cuda, Op, Sched, Denoise>;
using zero_residual = sampler::zero_residual<cuda>;

template <CorruptionOperator Op>
[[nodiscard]] device_operator<Op> make_device_operator(Op host) {
  return device_operator<Op>(std::move(host));
}

/// A host batch copied to a new device buffer (complete on return).
template <class T>
[[nodiscard]] device_buffer<T> to_device(const batch<T>& x) {
  return backend::to_backend<cuda>(x);
}
/// A host batch copied to a new device batch (complete on return).
template <class T>
[[nodiscard]] device_batch<T> to_device_batch(const batch<T>& x) {
  return backend::to_backend_batch<cuda>(x);
}
/// A device buffer copied into a host batch of shape s (complete on return).
template <class T>
void to_host(const device_buffer<T>& d, const shape4& s, batch<T>& x) {
  backend::to_host(d, s, x);
}
/// A device batch copied into a host batch (complete on return).
template <class T>
void to_host(const device_batch<T>& d, batch<T>& x) {
  backend::to_host<cuda>(d, x);
}

/// Throws softdiff::error naming `where` unless every pointer is memory the device can use
/// (backend::cuda::require_memory): a host array handed to the thin API is refused, not read.
template <class... P>
void require_device(const char* where, const P*... p) {
  (cuda::require_memory(p, where), ...);
}

// ---- operators on raw device pointers; y may equal x ----

/// The paper's blur (appendix G): y = B_H X B_W^T per plane; b_h (H x H) and b_w (W x W) are
/// backend::detail::toeplitz_axis_matrix of op::gaussian_blur::kernel(level) on the device;
/// workspace holds N C H W scalars.
template <class T>
void gaussian_blur_apply(const T* b_h, const T* b_w, const T* x, T* y, T* workspace, const shape4& s,
                         cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::gaussian_blur_apply", b_h, b_w, x, y, workspace);
  backend::dense_separable_apply<cuda>(b_h, b_w, x, y, workspace, s[0] * s[1], s[2], s[3]);
}

/// The DCT heat blur: y = A_H X A_W^T with A = backend::detail::dct_axis_matrix of the
/// multipliers of op::dct_blur::axes(level, H, W) on the device.
template <class T>
void dct_blur_apply(const T* a_h, const T* a_w, const T* x, T* y, T* workspace, const shape4& s, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::dct_blur_apply", a_h, a_w, x, y, workspace);
  backend::dense_separable_apply<cuda>(a_h, a_w, x, y, workspace, s[0] * s[1], s[2], s[3]);
}

/// Zero-padded FFT convolution (adjoint: correlation) with the interleaved half spectrum of
/// op::fft_conv::spectrum (as (re, im) pairs) on the device; freq holds 2 N C ph (pw/2+1) scalars
/// (the padded planes are the FFT engine's own scratch).
template <class T>
void fft_conv_apply(const T* spectrum, int ph, int pw, bool adjoint, const T* x, T* y, T* freq, const shape4& s,
                    cudaStream_t stream) {
  thread_local backend::fft_engine<cuda, T> fft;
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::fft_conv_apply", spectrum, x, y, freq);
  op::fft_conv_apply<cuda>(fft, spectrum, ph, pw, adjoint, x, y, freq, s);
}

/// The centred mask: rectangle r (op::mask<T>::removed(level, H, W)) of every plane zeroed.
template <class T>
void mask_apply(const typename op::mask<T>::rectangle& r, const T* x, T* y, const shape4& s, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::mask_apply", x, y);
  op::mask_apply<cuda>(r, x, y, s);
}

/// y = alpha x (op::scale, alpha = 1 - level).
template <class T>
void scale_apply(T alpha, const T* x, T* y, std::size_t n, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::scale_apply", x, y);
  op::scale_apply<cuda>(alpha, x, y, n);
}

// ---- sampler updates on raw device pointers (s = sigma_t, s' = sigma_{t'}) ----

/// Algorithm 1: x = c + s' eta, c = C_{t'} h.
template <class T>
void naive_update(T* x, const T* c, std::size_t n, double sigma_next, const noise_source& noise, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::naive_update", x, c);
  naive<T>::update(x, c, n, sigma_next, noise);
}

/// Eq. 17: x = x - ((s'^2 - s^2)/s^2)(y - x) + sqrt(s^2 - s'^2) eta + (c - y), y = C_t x0, c = C_{t'} x0.
template <class T>
void momentum_update(T* x, const T* y, const T* c, std::size_t n, double sigma, double sigma_next,
                     const noise_source& noise, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::momentum_update", x, y, c);
  momentum<T>::update(x, x, y, c, n, sigma, sigma_next, noise);
}

/// Eq. 51: x = x - (1/2)((s'^2 - s^2)/s^2)(y - x) + (c - y).
template <class T>
void pf_momentum_update(T* x, const T* y, const T* c, std::size_t n, double sigma, double sigma_next,
                        cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::pf_momentum_update", x, y, c);
  pf_momentum<T>::update(x, y, c, n, sigma, sigma_next);
}

/// Eq. 52: out = c + sqrt(s'^2 - k^2)(x - y)/s + k eta, k = k_ratio s', y = C_t h, c = C_{t'} h.
template <class T>
void ddim_update(const T* x, T* out, const T* y, const T* c, std::size_t n, double sigma, double sigma_next,
                 double k_ratio, const noise_source& noise, cudaStream_t stream) {
  sampler::rules::check_k_ratio("cuda_ops::ddim_update", k_ratio);
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::ddim_update", x, out, y, c);
  sampler::detail::ddim_update<cuda, T>(x, out, y, c, n, sigma, sigma_next, k_ratio, noise);
}

/// The predictor-corrector's corrector (eq. 51 with hb = (h + h~)/2): y1, c1 = C_t h, C_{t'} h;
/// y2, c2 = C_t h~, C_{t'} h~.
template <class T>
void corrector_update(T* x, const T* y1, const T* c1, const T* y2, const T* c2, std::size_t n, double sigma,
                      double sigma_next, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::corrector_update", x, y1, c1, y2, c2);
  predictor_corrector<T>::correct(x, y1, c1, y2, c2, n, sigma, sigma_next);
}

/// out = noise.fill at flat indices [offset, offset + n) (after the source's own offset), on the device.
template <class T>
void fill_normal(const noise_source& noise, T* out, std::size_t n, std::uint64_t offset, cudaStream_t stream) {
  cuda_stream_scope scope(stream);
  require_device("cuda_ops::fill_normal", out);
  cuda::fill_normal<T>(noise.seed, noise.stream, out, n, noise.offset + offset);
}

static_assert(op::BackendOperator<device_operator<op::gaussian_blur<float>>>);
static_assert(op::BackendOperator<device_operator<op::fft_conv<double>>>);
static_assert(op::BackendOperator<device_operator<op::compose<op::mask<float>, op::dct_blur<float>>>>);
static_assert(Sampler<momentum<float>, sampler::detail::model_archetype<float, device_batch<float>>>);
static_assert(Sampler<predictor_corrector<double>, sampler::detail::model_archetype<double, device_batch<double>>>);

}  // namespace softdiff::cuda_ops
